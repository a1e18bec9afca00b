"""The directory at scale (1.2 million synthetic people in 50 states: ID lookup and name
search through the real ``bot.directory`` functions, on SQLite and PostgreSQL) and Redis
bytes per idle conversation."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from bench.common import embedded_redis, percentiles
from bot import directory
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Facility, Inmate

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


def synthetic_people(
    rng: random.Random, count: int = PEOPLE
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
    per_state = count // len(states)
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
        if db.is_sqlite:
            for start in range(0, len(people), 50_000):
                connection.execute(insert(Inmate.__table__), people[start : start + 50_000])
        else:  # COPY, as a real directory import of this size would
            columns = [*people[0], "updated_at"]
            now = datetime.now(UTC)
            raw = connection.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cursor:
                statement = f"COPY inmates ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for person in people:
                        copy.write_row([*person.values(), now])
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


def bench_redis_conversation() -> dict[str, Any]:
    """Bytes Redis holds per idle conversation (a person in the middle of a lookup)."""
    from bot.store.conversations import Conversation, ConversationStore

    with embedded_redis() as redis:
        store = ConversationStore(redis, 1800)
        count = 1000
        before = int(redis.info("memory")["used_memory"])
        for n in range(count):
            conversation = Conversation("lookup", "pick", {"st": "TX", "q": "Garcia", "off": 5})
            store.save(f"+1512555{n:04d}", "+15005550006", conversation)
        after = int(redis.info("memory")["used_memory"])
        sample = int(redis.memory_usage("kinline:conv:+15125550001:+15005550006") or 0)
    return {
        "conversations": count,
        "bytes_per_conversation_used_memory": round((after - before) / count),
        "bytes_per_key_memory_usage": sample,
    }
