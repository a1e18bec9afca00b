"""The shared outbound pace: evenly spaced slots in a real Redis, counted in segments.

Waits are read from the schedule, never timed: test machines are shared and noisy. Each
bound allows for the few milliseconds between two calls.
"""

from __future__ import annotations

import threading

import pytest

from bot import runtime
from bot.pace import Pace

SENDER = "+15005550006"


def redis_now(rt: runtime.Runtime) -> float:
    seconds, micros = rt.redis.time()
    return seconds + micros / 1_000_000


def test_slots_are_evenly_spaced_and_the_first_is_now(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10, headroom=1)

    waits = [pace.reserve(SENDER, 1) for _ in range(4)]

    assert all(reserved for reserved, _ in waits)
    assert waits[0][1] == 0.0
    for index, (_, wait) in enumerate(waits[1:], start=1):
        assert index * 0.1 - 0.05 < wait <= index * 0.1


def test_segments_are_what_is_counted(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10, headroom=1)

    assert pace.reserve(SENDER, 3) == (True, 0.0)
    reserved, wait = pace.reserve(SENDER, 1)  # after the 3 segments: 0.3 s on

    assert reserved and 0.25 < wait <= 0.3


def test_headroom_keeps_the_pace_under_the_rate(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=10, headroom=0.5)
    pace.reserve(SENDER, 1)

    _, wait = pace.reserve(SENDER, 1)

    assert 0.15 < wait <= 0.2


def test_each_sender_has_its_own_schedule(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=1)
    assert pace.reserve("+15125550100", 5) == (True, 0.0)
    assert pace.reserve("+15125550100", 1)[1] > 4

    assert pace.reserve("+15125550101", 1) == (True, 0.0)


def test_a_wait_past_max_wait_reserves_nothing(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=1, headroom=1, max_wait=5)
    assert pace.reserve(SENDER, 10) == (True, 0.0)  # a long text books 10 s

    refused, wait = pace.reserve(SENDER, 1)
    again, wait_again = pace.reserve(SENDER, 1)

    assert not refused and 9.5 < wait <= 10
    assert not again and 9.5 < wait_again <= wait  # the first refusal took nothing


def test_an_idle_schedule_expires(rt: runtime.Runtime) -> None:
    pace = Pace(rt.redis, rate=2, headroom=1, prefix="test")
    pace.reserve(SENDER, 10)  # the sender is busy for 5 s

    ttl = rt.redis.pttl(f"test:pace:{SENDER}")

    assert 5_000 < ttl <= 6_000  # until then, plus a margin


def test_nonsense_is_refused(rt: runtime.Runtime) -> None:
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=0)
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=1, headroom=1.5)
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=1, max_wait=-1)
    with pytest.raises(ValueError):
        Pace(rt.redis, rate=1).reserve(SENDER, 0)


def test_concurrent_workers_get_distinct_slots_at_the_rate(rt: runtime.Runtime) -> None:
    rate, threads, takes = 100, 8, 50
    pace = Pace(rt.redis, rate=rate, headroom=1)
    start = threading.Barrier(threads)
    answers: list[tuple[bool, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        for _ in range(takes):
            answer = pace.reserve(SENDER, 1)
            with lock:
                answers.append(answer)

    began = redis_now(rt)
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    booked_until = float(rt.redis.get(pace.key(SENDER)) or 0)

    assert all(reserved for reserved, _ in answers)
    # Every slot was paid for: the schedule moved on by exactly one interval per take.
    assert booked_until - began >= threads * takes / rate
    assert booked_until - redis_now(rt) <= threads * takes / rate
