"""Where each person is in the conversation: a small JSON value in Redis, with a lock.

Redis is a cache of position only. Everything that took effort to type or costs money is
in SQL; when a key expires or Redis is emptied the person lands on the menu.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

logger = logging.getLogger(__name__)

# Delete the lock only if we still own it (a slow turn must not free someone else's lock).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass
class Conversation:
    """The flow and step a phone number is at, plus a small context."""

    flow: str
    state: str
    ctx: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> str:
        """Compact JSON for Redis."""
        return json.dumps({"f": self.flow, "s": self.state, "c": self.ctx}, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> Conversation | None:
        """Parse a stored value; ``None`` when it is not one of ours."""
        try:
            data = json.loads(raw)
            return cls(flow=str(data["f"]), state=str(data["s"]), ctx=dict(data.get("c") or {}))
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable conversation state dropped")
            return None


class ConversationStore:
    """Conversation state and the per-conversation turn lock, keyed by (From, To)."""

    def __init__(self, redis: Redis, idle_seconds: int, prefix: str = "kinline") -> None:
        self.redis = redis
        self.idle_seconds = idle_seconds
        self.prefix = prefix
        self._release = redis.register_script(_RELEASE)

    def _key(self, kind: str, from_number: str, to_number: str) -> str:
        return f"{self.prefix}:{kind}:{from_number}:{to_number}"

    def load(self, from_number: str, to_number: str) -> Conversation | None:
        """The saved conversation, or ``None`` when there is none or it expired."""
        raw = self.redis.get(self._key("conv", from_number, to_number))
        return Conversation.loads(raw) if raw is not None else None

    def save(self, from_number: str, to_number: str, conversation: Conversation) -> None:
        """Store the conversation and restart its idle expiry."""
        key = self._key("conv", from_number, to_number)
        self.redis.set(key, conversation.dumps(), ex=self.idle_seconds)

    def clear(self, from_number: str, to_number: str) -> None:
        """Forget where the person was."""
        self.redis.delete(self._key("conv", from_number, to_number))

    @contextmanager
    def lock(self, from_number: str, to_number: str, wait: float) -> Iterator[bool]:
        """Hold the turn lock for (From, To); yields False when it could not be had in time.

        The lock expires by itself after a minute, so a crashed process cannot block a
        conversation for longer than that.

        Args:
            from_number: The person's number.
            to_number: Our number they texted.
            wait: Seconds to wait for the lock before giving up.
        """
        key = self._key("lock", from_number, to_number)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        delay = 0.005
        acquired = bool(self.redis.set(key, token, nx=True, px=60_000))
        while not acquired and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            acquired = bool(self.redis.set(key, token, nx=True, px=60_000))
        try:
            yield acquired
        finally:
            if acquired:
                self._release(keys=[key], args=[token])
