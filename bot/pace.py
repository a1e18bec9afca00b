"""Outbound pace: time slots reserved in Redis, counted in SMS segments per second.

The carrier limits each sender (a long code, a toll-free number, a short code) to so many
segments per second, whatever the number of workers. Every worker asks the same schedule in
Redis before it sends. It is the generic cell rate algorithm (GCRA): Redis keeps one time
per sender, the *theoretical arrival time*, when the sender is next free. A text of ``n``
segments gets the slot ``max(now, tat)`` and pushes the time on by ``n / rate`` seconds,
in one Lua script (Redis ``TIME``, so the clocks of the workers do not matter).

A slot is a promise kept in order: the worker waits until it, then sends. Nobody polls and
nobody loses their turn, so a crowd of texts that wake together (a mail run's delivery
notices, the end of quiet hours) goes out at the rate, first come first served, and a long
text waits its turn like a short one. Each worker holds one slot at a time, so the wait is
short (about workers × segments / rate); only a wait longer than ``max_wait`` is refused,
for the caller to come back later.

The slots are spaced evenly with no burst allowance: then no 1-second window holds more
than ``rate`` segments, which is what a carrier's meter counts. ``headroom`` keeps the
pace a little under the carrier's rate, so the jitter between our clock and the carrier's
(a send is a network call after the slot) does not push a second over.

A sender idle long enough costs nothing: its key expires once its time has passed.
"""

from __future__ import annotations

import logging

from redis import Redis

logger = logging.getLogger(__name__)

# KEYS[1]: the sender's theoretical arrival time (seconds, as a string).
# ARGV: seconds per segment, segments wanted, the longest wait to reserve.
# Returns the seconds to wait as a string, prefixed "+" when the slot was reserved and "-"
# when it was refused (a Lua number would be truncated to an integer on its way back).
_RESERVE = """
local interval = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local wait = tat - now
if wait > max_wait then
    return '-' .. string.format('%.6f', wait)
end
local after = tat + want * interval
redis.call('SET', KEYS[1], string.format('%.6f', after),
           'PX', math.ceil((after - now) * 1000) + 1000)
return '+' .. string.format('%.6f', wait)
"""


class Pace:
    """Evenly spaced sending slots per sender, shared by every worker through Redis.

    Args:
        redis: The Redis connection shared by the workers.
        rate: Segments per second allowed for one sender (the carrier's MPS).
        headroom: The share of ``rate`` actually used (0.98: 2 % kept for jitter).
        max_wait: The longest wait a slot is reserved for, in seconds.
        prefix: The first part of every key.

    Raises:
        ValueError: When ``rate`` is not positive, ``headroom`` not in (0, 1] or
            ``max_wait`` negative.
    """

    def __init__(
        self,
        redis: Redis,
        rate: float,
        headroom: float = 0.98,
        max_wait: float = 60.0,
        prefix: str = "kinline",
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if not 0 < headroom <= 1:
            raise ValueError(f"headroom must be in (0, 1], not {headroom!r}")
        if max_wait < 0:
            raise ValueError(f"max_wait cannot be negative, not {max_wait!r}")
        self.redis = redis
        self.rate = float(rate) * headroom
        self.max_wait = float(max_wait)
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)

    def key(self, sender: str) -> str:
        """The Redis key of ``sender``'s schedule."""
        return f"{self.prefix}:pace:{sender}"

    def reserve(self, sender: str, segments: int) -> tuple[bool, float]:
        """Reserve the next slot for a text of ``segments`` segments.

        Atomic across workers: reading the schedule and moving it on are one Lua script.

        Args:
            sender: The sending number or Messaging Service the limit applies to.
            segments: The segments of the text about to be sent (at least 1).

        Returns:
            ``(True, wait)``: the slot is the caller's, ``wait`` seconds from now (0 when
            the sender is free): wait that long, then send. ``(False, wait)``: the next free
            slot is more than ``max_wait`` away and nothing was reserved: come back in
            about ``wait`` seconds.

        Raises:
            ValueError: When ``segments`` is less than 1.
        """
        if segments < 1:
            raise ValueError(f"segments must be at least 1, not {segments!r}")
        raw = self._reserve(
            keys=[self.key(sender)],
            args=[repr(1.0 / self.rate), str(segments), repr(self.max_wait)],
        )
        answer = raw.decode() if isinstance(raw, bytes) else str(raw)
        reserved, wait = answer[0] == "+", max(float(answer[1:]), 0.0)
        if wait > 0:
            logger.debug(
                "pace: %s %s %.3f s for %d segments",
                sender,
                "waits" if reserved else "is busy for",
                wait,
                segments,
            )
        return reserved, wait
