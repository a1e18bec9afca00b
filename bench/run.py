"""``make bench``: measurements of Kinline, printed as tables and kept in bench/results.json.

Sections (issue 5), each standing alone; PostgreSQL is used where it answers, else SQLite:
- ``webhook``: Kinline under gunicorn against a bare Flask app, the same signed requests
  from the same load generator: the most each takes, and latency at half Kinline's most;
- ``outbound``: 5,000 notifications through RQ and two real workers to a Twilio API double
  at ``TWILIO_MPS=100``;
- ``storage``: SQL rows and bytes per delivered message, on SQLite and PostgreSQL;
- ``directory``: 1.2 million synthetic people in 50 states, ID lookup and name search on
  SQLite and PostgreSQL, and Redis bytes per idle conversation.

``python -m bench.run outbound`` (or ``make bench SECTIONS=outbound``) runs only those named.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, embedded_redis, scratch_postgres

TEXTS = int(os.environ.get("BENCH_TEXTS", "5000"))
SECTIONS = ("webhook", "outbound", "storage", "directory")
FAMILIES = int(os.environ.get("BENCH_FAMILIES", "50"))


def database(name: str, folder: str) -> tuple[str, str]:
    """A scratch PostgreSQL database when the server answers, else a SQLite file."""
    url = scratch_postgres(f"kinline_bench_{name}")
    if url is None:
        return f"sqlite:///{Path(folder) / f'{name}.db'}", "SQLite"
    return url, "PostgreSQL"


def run_webhook(results: dict[str, Any]) -> None:
    from bench.webhook import bench_webhook

    with tempfile.TemporaryDirectory() as folder, embedded_redis() as redis:
        url, label = database("webhook", folder)
        row = bench_webhook(url, f"unix://{redis.socket_file}", label)
        results["webhook"] = row
    print(
        f"\nwebhook: gunicorn {row['gunicorn']}, {row['connections']} connections,"
        f" {row['database']}; latency at {row['fixed_rate']}/s ({row['rate_is']})"
    )
    print(f"{'app':<10}{'most/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'gen CPU':>9}")
    for name in ("kinline", "bare"):
        top, fixed = row[name]["max"], row[name]["fixed"]
        print(
            f"{name:<10}{top['per_second']:>10}{fixed['latency']['p50_ms']:>10}"
            f"{fixed['latency']['p99_ms']:>10}{top['errors'] + fixed['errors']:>8}"
            f"{top['load_generator_cpu']:>9}"
        )
    print(f"Kinline / bare throughput: {row['ratio']}")


def run_outbound(results: dict[str, Any]) -> None:
    from bench.outbound import bench_outbound

    with tempfile.TemporaryDirectory() as folder, embedded_redis() as redis:
        url, label = database("outbound", folder)
        results["outbound"] = bench_outbound(
            url, f"unix://{redis.socket_file}", label, TEXTS, 100, 2
        )
    row = results["outbound"]
    print(
        f"\noutbound: {row['texts']} notifications ({row['segments']} segments), "
        f"{row['workers']} workers, TWILIO_MPS={row['mps']:g}, {row['database']}\n"
        f"  {row['segments_per_second']} segments/s over {row['sending_seconds']} s; "
        f"busiest 1-s window {row['busiest_window_segments']} segments; "
        f"duplicates {row['duplicates']}, lost {row['lost']}; statuses {row['statuses']}"
    )


def run_storage(results: dict[str, Any]) -> None:
    from bench.storage import bench_storage

    results["storage"] = []
    with tempfile.TemporaryDirectory() as folder, embedded_redis() as redis:
        redis_url = f"unix://{redis.socket_file}"
        sqlite_url = f"sqlite:///{Path(folder) / 'storage.db'}"
        media = str(Path(folder) / "media")
        results["storage"].append(bench_storage(sqlite_url, redis_url, media, "SQLite", FAMILIES))
        pg = scratch_postgres("kinline_bench_storage")
        if pg is not None:
            results["storage"].append(bench_storage(pg, redis_url, media, "PostgreSQL", FAMILIES))
    for row in results["storage"]:
        for phase, title in (("first_message", "a new family"), ("next_message", "then")):
            part = row[phase]
            tables = ", ".join(f"{name} {n:g}" for name, n in part["rows_by_table"].items())
            print(
                f"storage {row['database']}, {title}: {part['rows_per_message']} rows and"
                f" {part['bytes_per_message']} bytes per delivered message ({tables})"
            )


def run_directory(results: dict[str, Any]) -> None:
    from bench.directory import bench_directory, bench_redis_conversation, synthetic_people

    rng = random.Random(20261126)
    data = synthetic_people(rng)
    results["directory"] = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        results["directory"].append(bench_directory(sqlite_url, "SQLite", data, rng))
    pg = scratch_postgres("kinline_bench")
    if pg is not None:
        results["directory"].append(bench_directory(pg, "PostgreSQL", data, rng))
    results["redis"] = bench_redis_conversation()
    columns = ["people", "load s", "ID p50", "ID p99", "name p50", "name p99"]
    print(f"\n{'directory':<12}" + "".join(f"{name:>10}" for name in columns))
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


RUNNERS = {
    "webhook": run_webhook,
    "outbound": run_outbound,
    "storage": run_storage,
    "directory": run_directory,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SECTIONS)
    unknown = [name for name in chosen if name not in RUNNERS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
        return 2
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    logging.basicConfig(level=logging.WARNING)  # rq logs every job at INFO
    print(f"Kinline bench on {os.cpu_count()} CPUs, Python {platform.python_version()}")
    began = time.perf_counter()
    for name in chosen:
        started = time.perf_counter()
        RUNNERS[name](results)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)")
    results["seconds"] = round(time.perf_counter() - began, 1)
    print(f"({results['seconds']} s in all; milliseconds are wall-clock on a shared machine)")
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
