"""The resources one process uses, built once from settings and passed explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis
from rq import Queue

from bot.config import Settings
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.transport import Sender, make_sender

logger = logging.getLogger(__name__)

QUEUE_NAME = "kinline"


@dataclass
class Runtime:
    """Settings, SQL, Redis, the job queue and the SMS sender of one process."""

    settings: Settings
    db: Database
    redis: Redis
    conversations: ConversationStore
    queue: Queue
    sender: Sender

    @classmethod
    def create(cls, settings: Settings, sender: Sender | None = None) -> Runtime:
        """Connect to what ``settings`` name. Nothing is contacted until first use."""
        if not settings.redis_url:
            raise RuntimeError(
                "REDIS_URL is not set: start Kinline with `make run`, which provides one"
            )
        redis = Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            redis=redis,
            conversations=ConversationStore(redis, settings.conversation_idle_seconds),
            queue=Queue(QUEUE_NAME, connection=redis),
            sender=sender or make_sender(settings),
        )

    def close(self) -> None:
        """Release pooled connections."""
        self.db.dispose()
        self.redis.close()


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one job functions use in this process."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The installed runtime, or one built from the environment on first use."""
    global _current
    if _current is None:
        _current = Runtime.create(Settings.from_env())
    return _current
