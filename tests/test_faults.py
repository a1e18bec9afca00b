"""Faults: bursts, a database that is gone. Each ends with nothing lost and nothing twice."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from sqlalchemy import select

from bot.runtime import Runtime
from bot.store.models import Draft, InboundSms
from tests.conftest import Phone, drain
from tests.test_compose import ready_to_write, worker_texts


def test_ten_fragments_at_once_all_land_in_order_with_one_tally(rt, app, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    parts = [f"part {i:02d}." for i in range(10)]
    barrier = threading.Barrier(len(parts))
    statuses: list[int] = []

    def deliver(body: str) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(Phone(client, phone.number).post(phone.form(body)).status_code)

    threads = [threading.Thread(target=deliver, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 10
    drain(rt)
    with rt.db.session() as session:
        draft = session.scalars(select(Draft)).one()
        arrival = [
            row.body
            for row in session.scalars(select(InboundSms).order_by(InboundSms.id))
            if row.body.startswith("part")
        ]
    assert sorted(draft.body.split("\n")) == sorted(parts)  # nothing lost, nothing twice
    assert draft.body.split("\n") == arrival  # in the order they arrived
    assert len([t for t in worker_texts(rt, phone.number) if t.startswith("Got it")]) == 1


def test_database_unreachable_is_a_503_with_a_log_line(rt, phone, caplog):
    from webhooks import create_app

    gone = Runtime.create(
        replace(rt.settings, database_url="postgresql+psycopg://kinline@127.0.0.1:9/none")
    )
    client = create_app(runtime=gone).test_client()
    with caplog.at_level(logging.ERROR):
        response = Phone(client, phone.number).post(phone.form("Hi"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "temporarily unavailable" in response.get_data(as_text=True)
    assert any("backing service unavailable" in r.message for r in caplog.records)
    assert client.get("/healthz").status_code == 503
    with rt.db.session() as session:  # nothing was half-written where the data lives
        assert session.scalars(select(InboundSms)).all() == []
