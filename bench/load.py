"""A small HTTP/1.1 load generator on asyncio streams, for the webhook bench.

Requests are built (and signed) before the clock starts and sent over keep-alive
connections. Each phone number belongs to one connection, so a person's texts arrive in
order, one at a time, with other people's texts in between, as they would from Twilio.

- Closed loop (``rate=None``): every connection sends its next request when the answer to
  the last one is in: the most the server can take.
- Open loop (``rate``): request ``k`` is due at ``k / rate`` seconds; it goes when due or,
  if its connection is still busy, as soon as the connection is free, and its latency is
  counted from when it was due (so a slow answer is not hidden by the requests it held up).
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass, field
from typing import Any

# Connections open one after another, this far apart, as a client's pool grows. Opened all
# in the same instant, they all go to whichever gunicorn process wakes first (seen here:
# 63 of 64 in one process), which then serves everything on one core.
CONNECT_GAP = 0.005


@dataclass
class Outcome:
    """What a run measured."""

    sent: int = 0
    errors: int = 0
    reconnects: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.sent / self.seconds if self.seconds else 0.0


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP response; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    outcome: Outcome,
    began: float,
    until: float,
    due: list[float] | None,
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> None:
    if streams is None:  # an HTTP client connects when it has a request to send
        if due is not None and requests:
            wait = began + due[0] - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        streams = await asyncio.open_connection(host, port)
    reader, writer = streams
    try:
        for index, request in enumerate(requests):
            if due is not None:
                wait = began + due[index] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            start = time.perf_counter()
            if start >= until:
                break
            try:
                writer.write(request)
                status = await _answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection (gunicorn does after 2 s):
                # send again on a new one, as HTTP clients do (the webhook is idempotent).
                writer.close()
                outcome.reconnects += 1
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(request)
                    status = await _answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    outcome.errors += 1
                    continue
            done = time.perf_counter()
            outcome.sent += 1
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            if status != 200:
                outcome.errors += 1
            counted_from = began + due[index] if due is not None else start
            outcome.latencies.append(done - counted_from)
    finally:
        writer.close()


def run(
    host: str,
    port: int,
    lanes: list[list[bytes]],
    seconds: float,
    rate: float | None = None,
) -> Outcome:
    """Send each lane's requests in order on a connection of its own, for ``seconds``.

    Args:
        host: The server's address.
        port: The server's port.
        lanes: One list of raw requests per connection.
        seconds: How long the run lasts.
        rate: Requests per second over all lanes (open loop), or None (closed loop).

    Returns:
        The outcome, with the load generator's own CPU time.
    """
    outcome = Outcome()
    count = len(lanes)

    async def main() -> None:
        opened: list[Any] = [None] * count
        if rate is None:  # every connection open before the clock starts, one at a time
            for number in range(count):
                opened[number] = await asyncio.open_connection(host, port)
                await asyncio.sleep(CONNECT_GAP)
        began = time.perf_counter()
        until = began + seconds
        tasks = []
        for number, lane in enumerate(lanes):
            due = None
            if rate is not None:  # lane n takes requests n, n + count, n + 2 count, ...
                due = [(number + i * count) / rate for i in range(len(lane))]
            tasks.append(_connection(host, port, lane, outcome, began, until, due, opened[number]))
        await asyncio.gather(*tasks)
        outcome.seconds = time.perf_counter() - began

    usage = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(main())
    after = resource.getrusage(resource.RUSAGE_SELF)
    outcome.cpu_seconds = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return outcome
