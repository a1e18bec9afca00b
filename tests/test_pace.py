"""The shared outbound pace: a token bucket in a real Redis, counted in segments.

Timing bounds are loose on purpose: test machines are shared and noisy.
"""

from __future__ import annotations

import threading
import time

import pytest

from bot import runtime
from bot.pace import Pace

SENDER = "+15005550006"


def test_a_burst_goes_then_the_next_waits_for_one_token(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10)

    assert [pace.take(SENDER, 1) for _ in range(10)] == [0.0] * 10
    wait = pace.take(SENDER, 1)

    assert 0.05 < wait <= 0.11


def test_a_waiting_take_takes_nothing(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10)
    for _ in range(10):
        pace.take(SENDER, 1)

    first = pace.take(SENDER, 1)
    second = pace.take(SENDER, 1)

    assert 0 < second <= first <= 0.11


def test_segments_are_what_is_counted(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10)

    assert pace.take(SENDER, 3) == 0.0
    # About 7 left: 8 would need one more token, a tenth of a second away.
    assert 0.05 < pace.take(SENDER, 8) <= 0.11
    assert pace.take(SENDER, 7) == 0.0
    assert 0.05 < pace.take(SENDER, 1) <= 0.11


def test_each_sender_has_its_own_bucket(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10)
    assert pace.take("+15125550100", 10) == 0.0
    assert pace.take("+15125550100", 1) > 0

    assert pace.take("+15125550101", 10) == 0.0


def test_the_bucket_refills_with_time(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10)
    assert pace.take(SENDER, 10) == 0.0

    time.sleep(0.2)
    # A take of 10 cannot go; what it would wait for tells what is in the bucket.
    tokens = 10 - 10 * pace.take(SENDER, 10)

    assert 1.95 <= tokens < 3.5
    assert pace.take(SENDER, 2) == 0.0


def test_a_long_text_goes_at_a_slow_rate(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=1)

    assert pace.take(SENDER, 10) == 0.0
    wait = pace.take(SENDER, 10)

    assert 9.5 < wait <= 10.0


def test_burst_sets_the_capacity(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10, burst=3)

    assert [pace.take(SENDER, 1) for _ in range(3)] == [0.0] * 3
    assert 0.05 < pace.take(SENDER, 1) <= 0.11


def test_idle_buckets_expire(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=2, burst=10, prefix="test")
    pace.take(SENDER, 1)

    ttl = rt.redis.pttl(f"test:pace:{SENDER}")

    # Long enough to refill (5 s), plus a margin.
    assert 5_000 <= ttl <= 6_000


def test_nonsense_is_refused(rt: runtime.Runtime) -> None:
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=0)
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=1, burst=-1)
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=1).take(SENDER, 0)


def test_concurrent_workers_never_exceed_the_rate(rt: runtime.Runtime) -> None:
    rate, threads, takes = 100, 8, 50
    pace = Pace(rt.redis, rate=rate)
    start = threading.Barrier(threads)
    granted = [0] * threads

    def worker(index: int) -> None:
        start.wait()
        for _ in range(takes):
            if pace.take(SENDER, 1) == 0.0:
                granted[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    began = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - began

    total = sum(granted)
    assert total >= rate  # the full bucket was there to take
    assert total <= rate + rate * elapsed
