"""SQL rows and bytes per delivered message: families go through the whole story.

Each family texts the bot from the first "Hi" to SEND (three fragments), buys stamps on
the TEST MODE checkout page, and sends; the worker's jobs run (in this process, as
``SimpleWorker`` runs them); staff approve (``delivery.advance``, what the desk calls) and a
mail run delivers, which texts the family. What the database grew by, divided by the
messages, is the cost of one message, every table and index included (the directory's
own tables excepted: they are loaded before the count starts).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text

from bot import delivery, directory, providers
from bot.config import Settings
from bot.runtime import Runtime
from bot.store.migrate import upgrade
from bot.store.models import Base, Message
from tests.conftest import drain

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
LINK = re.compile(r"https?://[^ ]+(/buy/[A-Za-z0-9_.\-]+)")
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
DIRECTORY_TABLES = {"facilities", "inmates", "alembic_version"}
FRAGMENTS = [
    "Hi Ana, it's Mom. We all miss you and think about you every day.",
    "Your sister had the baby, a girl, 7 pounds. Her name is Lucia.",
    "I put money on your books Friday. Write back when you can. Love you.",
]
_sids = itertools.count(1)


def table_bytes(rt: Runtime) -> dict[str, int]:
    """Bytes each table takes with its indexes (PostgreSQL: with its TOAST too)."""
    names = [n for n in inspect(rt.db.engine).get_table_names() if n not in DIRECTORY_TABLES]
    sizes = {}
    with rt.db.engine.connect() as connection:
        for name in names:
            if rt.db.is_sqlite:  # dbstat: the pages of the table and of its indexes
                query = text(
                    "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :t"
                    " OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = :t)"
                )
                sizes[name] = int(connection.execute(query, {"t": name}).scalar() or 0)
            else:
                query = text("SELECT pg_total_relation_size(CAST(:t AS regclass))")
                sizes[name] = int(connection.execute(query, {"t": name}).scalar() or 0)
    return sizes


def table_rows(rt: Runtime) -> dict[str, int]:
    """Rows in every table but the directory's."""
    counts = {}
    with rt.db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name not in DIRECTORY_TABLES:
                counts[table.name] = int(
                    session.scalar(select(func.count()).select_from(table)) or 0
                )
    return counts


def family(rt: Runtime, client: Any, number: int) -> None:
    """A new family's whole story, up to their first message waiting for review."""
    phone = f"+1512{number:07d}"
    for body in ["Hi", "YES", "Texas", "01234567", "yes", "1", *FRAGMENTS, "DONE", "SEND"]:
        say(client, rt, phone, body)
    link = LINK.search(say(client, rt, phone, "1"))
    assert link is not None, "no payment link"
    page = client.get(link.group(1)).get_data(as_text=True)
    token = TOKEN.search(page)
    assert token is not None, "no checkout form"
    paid = client.post(
        link.group(1), data={"csrf_token": token.group(1), "card": "4242424242424242"}
    )
    assert paid.status_code == 200
    assert "Sent for review" in say(client, rt, phone, "SEND")


def say(client: Any, rt: Runtime, phone: str, body: str) -> str:
    """A text from ``phone`` to the webhook (console mode: unsigned, from this machine)."""
    sid = f"SM{next(_sids):032x}"
    form = {"MessageSid": sid, "From": phone, "To": rt.settings.bot_number, "Body": body}
    response = client.post("/sms/inbound", data={**form, "NumMedia": "0"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_data(as_text=True))


def approve_and_deliver(rt: Runtime) -> int:
    """The worker hands every sent message on; staff approve; the mail run delivers."""
    drain(rt)
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        waiting = session.scalars(select(Message).where(Message.status == "in_review")).all()
        for message in waiting:
            delivery.advance(rt, session, outbox, message, "approve")
        session.commit()
    outbox.send(rt)
    delivered = providers.deliver_approved(rt, "TX-HV")
    drain(rt)
    return delivered


def bench_storage(
    database_url: str, redis_url: str, media_dir: str, label: str, families: int
) -> dict[str, Any]:
    """Rows and bytes per delivered message, over ``families`` whole stories."""
    from webhooks import create_app

    upgrade(database_url)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MEDIA_DIR": media_dir,
        "QUIET_HOURS": "off",
        "TALLY_DELAY_SECONDS": "0",
        "TWILIO_MPS": "1000",  # the pace is not what this section measures
    }
    settings = Settings.from_env(env)
    rt = Runtime.create(settings)
    rt.redis.flushdb()
    from bot import runtime

    runtime.install(rt)
    with (
        rt.db.session() as session,
        (SAMPLE / "facilities.csv").open(newline="", encoding="utf-8") as facilities,
        (SAMPLE / "inmates.csv").open(newline="", encoding="utf-8") as inmates,
    ):
        directory.import_directory(session, facilities, inmates)
        session.commit()
    client = create_app(runtime=rt).test_client()
    family(rt, client, 0)  # the first pages of every table and index are there after this
    approve_and_deliver(rt)
    first = measured(rt, lambda: [family(rt, client, n) for n in range(1, families + 1)])
    again = measured(rt, lambda: [write_again(rt, client, n) for n in range(1, families + 1)])
    rt.close()
    runtime._current = None
    return {"database": label, "first_message": first, "next_message": again}


def measured(rt: Runtime, story: Callable[[], object]) -> dict[str, Any]:
    """What ``story`` and the delivery of its messages added, per delivered message."""
    settle(rt)
    rows_before, bytes_before = table_rows(rt), table_bytes(rt)
    story()
    delivered = approve_and_deliver(rt)
    settle(rt)
    rows_after, bytes_after = table_rows(rt), table_bytes(rt)

    def per(after: dict[str, int], before: dict[str, int]) -> dict[str, float]:
        return {
            name: round((after[name] - before.get(name, 0)) / delivered, 2)
            for name in sorted(after)
            if after[name] != before.get(name, 0)
        }

    rows, sizes = per(rows_after, rows_before), per(bytes_after, bytes_before)
    return {
        "delivered": delivered,
        "rows_per_message": round(sum(rows.values()), 1),
        "bytes_per_message": round(sum(sizes.values())),
        "rows_by_table": rows,
        "bytes_by_table": sizes,
    }


def settle(rt: Runtime) -> None:
    """PostgreSQL: dead row versions (from updates) made reusable, so sizes are live data."""
    if not rt.db.is_sqlite:
        with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))


def write_again(rt: Runtime, client: Any, number: int) -> None:
    """A family that has written before sends another message with the stamps left."""
    phone = f"+1512{number:07d}"
    for body in ["1", *FRAGMENTS[:2], "DONE"]:
        say(client, rt, phone, body)
    assert "Sent for review" in say(client, rt, phone, "SEND")
