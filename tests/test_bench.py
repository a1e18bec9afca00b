"""The benchmark's own arithmetic: what the README's figures rest on."""

from __future__ import annotations

from bench.outbound import busiest_window
from bench.webhook import lanes_of


def test_the_busiest_window_is_half_open_and_counts_segments() -> None:
    arrivals = [(0.0, 1), (0.5, 2), (0.999, 1), (1.0, 3), (1.4, 1)]

    # [0, 1) holds 4 segments; [0.5, 1.5) holds 2 + 1 + 3 + 1 = 7.
    assert busiest_window(arrivals) == 7
    assert busiest_window([(t, 1) for t in (0.0, 0.01, 0.02)], width=0.015) == 2
    assert busiest_window([]) == 0


def test_each_number_keeps_its_order_on_one_connection() -> None:
    people = [[f"p{n}-t{step}".encode() for step in range(3 + n % 2)] for n in range(10)]

    lanes = lanes_of(people, 4)

    assert sorted(request for lane in lanes for request in lane) == sorted(
        request for texts in people for request in texts
    )
    for n, texts in enumerate(people):
        [lane] = [lane for lane in lanes if texts[0] in lane]
        assert [r for r in lane if r.startswith(f"p{n}-".encode())] == texts
    # Turns: everyone's first text before anyone's second on a connection.
    assert lanes[0][:3] == [b"p0-t0", b"p4-t0", b"p8-t0"]
