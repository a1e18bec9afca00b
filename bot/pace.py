"""Outbound pace: a token bucket in Redis, counted in SMS segments per second.

The carrier limits each sender (a long code, a toll-free number, a short code) to so many
segments per second, whatever the number of workers. Every worker asks the same bucket in
Redis before it sends: one Lua script refills it by the time elapsed (Redis ``TIME``, so the
clocks of the workers do not matter), then takes the segments or says how long to wait. A
text that must wait is rescheduled by its caller, never slept on inside a worker.

A bucket that is not in Redis is full: keys expire once idle long enough to refill, so an
idle sender costs nothing.
"""

from __future__ import annotations

import logging

from redis import Redis

logger = logging.getLogger(__name__)

# KEYS[1]: the sender's bucket (a hash: tokens, ts).
# ARGV: rate (tokens per second), capacity, segments wanted.
# Returns the seconds to wait as a string ("0" when the segments were taken): a Lua number
# would be truncated to an integer on its way back.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1])
local ts = tonumber(saved[2])
if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
end
if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * rate)
    ts = now
end
local wait = 0
if tokens >= want then
    tokens = tokens - want
else
    wait = (want - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'ts', string.format('%.6f', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""


class Pace:
    """A token bucket per sender, shared by every worker through Redis.

    Tokens are SMS segments. The bucket holds ``burst`` tokens at most and refills at
    ``rate`` tokens per second. A take larger than ``burst`` is allowed once the bucket holds
    that many (its capacity is raised to the segments asked for that take), so a 10-segment
    text at 1 MPS does go, after 10 seconds of quiet.

    Args:
        redis: The Redis connection shared by the workers.
        rate: Segments per second allowed for one sender (the carrier's MPS).
        burst: Segments the bucket can hold; defaults to ``rate``.
        prefix: The first part of every key.

    Raises:
        ValueError: When ``rate`` or ``burst`` is not positive.
    """

    def __init__(
        self, redis: Redis, rate: float, burst: float | None = None, prefix: str = "kinline"
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if burst is None:
            burst = rate
        if not burst > 0:
            raise ValueError(f"burst must be positive, not {burst!r}")
        self.redis = redis
        self.rate = float(rate)
        self.burst = float(burst)
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)

    def key(self, sender: str) -> str:
        """The Redis key of ``sender``'s bucket."""
        return f"{self.prefix}:pace:{sender}"

    def take(self, sender: str, segments: int) -> float:
        """Take ``segments`` tokens from ``sender``'s bucket, or say how long to wait.

        Atomic across workers: the refill, the check and the take are one Lua script.

        Args:
            sender: The sending number or Messaging Service the limit applies to.
            segments: The segments of the text about to be sent (at least 1).

        Returns:
            ``0.0`` when the tokens were taken and the text may go now; otherwise nothing
            was taken and the value is the seconds until enough tokens will be there (ask
            again then: others may take them first).

        Raises:
            ValueError: When ``segments`` is less than 1.
        """
        if segments < 1:
            raise ValueError(f"segments must be at least 1, not {segments!r}")
        capacity = max(self.burst, float(segments))
        raw = self._take(
            keys=[self.key(sender)], args=[repr(self.rate), repr(capacity), str(segments)]
        )
        wait = float(raw.decode() if isinstance(raw, bytes) else raw)
        if wait > 0:
            logger.debug("pace: %s waits %.3f s for %d segments", sender, wait, segments)
            return wait
        return 0.0
