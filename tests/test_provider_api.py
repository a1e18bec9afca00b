"""PROVIDER=http: messages POSTed to the provider, signed events back, per docs/openapi.yaml."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate as validate_spec
from sqlalchemy import select

from bot import delivery
from bot.providers import sign
from bot.store.models import (
    Contact,
    DirectoryEvent,
    Inmate,
    LedgerEntry,
    Message,
    MessageEvent,
    OutboundSms,
    Reply,
)
from tests.conftest import ROOT, at_once, drain
from tests.fakes import FakeServer, Served
from tests.test_compose import ready_to_write, worker_texts
from tests.test_delivery import balance, history, send_message

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
SECRET = "provider-shared-secret"


def schema(name: str) -> Draft202012Validator:
    """A validator for one schema of the spec (its $refs resolve inside the spec)."""
    return Draft202012Validator({**SPEC, "$ref": f"#/components/schemas/{name}"})


@dataclass
class FakeProvider(FakeServer):
    """A provider's API: takes messages (checking the signature), can fail on demand."""

    received: list[dict[str, Any]] = field(default_factory=list)
    fail: int = 0

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        if headers.get("X-Kinline-Signature") != sign(SECRET, body):
            return Served(b'{"error": "bad signature"}', "application/json", 401)
        if self.fail:
            self.fail -= 1
            return Served(b'{"error": "busy"}', "application/json", 503)
        self.received.append(json.loads(body))
        return Served(b'{"ok": true}', "application/json", 202)


@pytest.fixture
def provider(rt):
    with FakeProvider().running() as server:
        rt.settings = replace(
            rt.settings, provider="http", provider_url=server.url, provider_secret=SECRET
        )
        yield server


def post_event(client, event: dict, secret: str = SECRET):
    schema("Event").validate(event)  # what we send is what the spec promises
    body = json.dumps(event).encode()
    response = client.post(
        "/provider/events",
        data=body,
        headers={"X-Kinline-Signature": sign(secret, body), "Content-Type": "application/json"},
    )
    answer = response.get_json()
    schema("EventResult" if response.status_code == 200 else "Error").validate(answer)
    return response.status_code, answer


def test_the_spec_is_valid_openapi():
    validate_spec(SPEC)


def test_messages_are_posted_signed_and_retried(rt, provider, phone, sample_directory):
    provider.fail = 1  # the first attempt meets a 503: the job is retried
    ref = send_message(rt, phone)
    [posted] = provider.received
    schema("OutgoingMessage").validate(posted)
    assert (posted["id"], posted["inmate_id"], posted["facility_id"]) == (ref, "01234567", "TX-HV")
    with rt.db.session() as session:
        assert session.scalars(select(Message.status)).one() == "submitted"


def test_events_drive_the_message_to_delivered(rt, provider, client, phone, sample_directory):
    ref = send_message(rt, phone)
    assert post_event(client, {"id": "e1", "type": "message.in_review", "message_id": ref}) == (
        200,
        {"result": "applied"},
    )
    # The provider skips "approved": delivered implies it.
    delivered = {
        "id": "e2", "type": "message.delivered", "message_id": ref,
        "occurred_at": "2026-11-24T00:02:00Z",
    }  # fmt: skip
    assert post_event(client, delivered) == (200, {"result": "applied"})
    late = {"id": "e3", "type": "message.approved", "message_id": ref}
    assert post_event(client, late) == (200, {"result": "refused"})  # late: logged, no-op
    assert post_event(client, delivered) == (200, {"result": "duplicate"})
    again = {**delivered, "id": "e5"}
    assert post_event(client, again) == (200, {"result": "repeat"})
    rejected = {"id": "e6", "type": "message.rejected", "message_id": ref, "reason": "other"}
    assert post_event(client, rejected) == (200, {"result": "refused"})  # too late to reject
    drain(rt)
    delivered_texts = [t for t in worker_texts(rt, phone.number) if t.startswith("Delivered")]
    assert delivered_texts == [
        f"Delivered: your message {ref} reached Ana at Huntsville Unit on Mon 6:02 PM."
    ]
    assert history(rt, ref) == ["queued", "submitted", "in_review", "approved", "delivered"]


def test_rejection_reply_and_transfer_events(rt, provider, client, phone, sample_directory):
    ref = send_message(rt, phone)
    post_event(
        client, {"id": "r1", "type": "message.rejected", "message_id": ref, "reason": "other"}
    )
    drain(rt)
    assert balance(rt, phone.number) == 10
    reply = {"id": "r2", "type": "message.reply", "message_id": ref, "body": "Love you mom"}
    assert post_event(client, reply) == (200, {"result": "applied"})
    moved = {
        "id": "r3", "type": "person.transferred", "state": "TX", "inmate_id": "01234567",
        "facility_id": "TX-MV",
    }  # fmt: skip
    assert post_event(client, moved) == (200, {"result": "applied"})
    drain(rt)
    texts = worker_texts(rt, phone.number)
    assert texts[-2].startswith("Ana replied (") and texts[-2].endswith("): Love you mom")
    assert texts[-1].startswith("Ana was moved to Mountain View Unit.")


def test_bad_events_get_clear_answers(rt, provider, client, phone, sample_directory):
    ref = send_message(rt, phone)
    body = json.dumps({"id": "b1", "type": "message.approved", "message_id": ref}).encode()
    forged = client.post(
        "/provider/events", data=body, headers={"X-Kinline-Signature": sign("wrong", body)}
    )
    assert forged.status_code == 401
    assert (
        post_event(client, {"id": "b2", "type": "message.approved", "message_id": "NOPE2"})[0]
        == 404
    )
    bad_reason = {"id": "b3", "type": "message.rejected", "message_id": ref, "reason": "content"}
    bad_reason["reason"] = "because"
    with pytest.raises(ValidationError):  # the spec refuses it, and so does the server:
        schema("Event").validate(bad_reason)
    raw = json.dumps(bad_reason).encode()
    answer = client.post(
        "/provider/events", data=raw, headers={"X-Kinline-Signature": sign(SECRET, raw)}
    )
    assert answer.status_code == 400 and "reason must be one of" in answer.get_json()["error"]
    junk = b"[1, 2"
    broken = client.post(
        "/provider/events", data=junk, headers={"X-Kinline-Signature": sign(SECRET, junk)}
    )
    assert broken.status_code == 400
    with rt.db.session() as session:
        assert session.scalars(select(Message.status)).one() == "submitted"


def test_events_are_refused_when_the_http_provider_is_off(rt, client):
    body = b"{}"
    response = client.post(
        "/provider/events", data=body, headers={"X-Kinline-Signature": sign(SECRET, body)}
    )
    assert response.status_code == 404


# --- replays and events out of order ----------------------------------------------------


def post_at_once(app, events: list[dict]) -> list[object]:
    """Post every event at the same moment, each from its own thread and test client.

    Returns:
        Per event, ``(status, answer)``, or the exception the request raised (the app is
        in TESTING mode, so an error that would be a 500 arrives here instead).
    """
    return at_once(app, [lambda client, e=e: post_event(client, e) for e in events])


def results(answers: list[object]) -> list[str]:
    """The sorted ``result`` of each answer; fails on anything but a 200."""
    assert all(isinstance(a, tuple) and a[0] == 200 for a in answers), answers
    return sorted(a[1]["result"] for a in answers)


def texts_to(rt, number: str, prefix: str) -> list[str]:
    """Every text queued for a number that starts with ``prefix`` (sent or not)."""
    with rt.db.session() as session:
        bodies = session.scalars(
            select(OutboundSms.body).where(OutboundSms.to_number == number).order_by(OutboundSms.id)
        )
        return [body for body in bodies if body.startswith(prefix)]


def ledger(rt, ref: str) -> list[tuple[str, int, str | None]]:
    """The ledger rows of a message: (kind, delta, reason)."""
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.delta, LedgerEntry.reason)
            .where(LedgerEntry.message_id == found.id)
            .order_by(LedgerEntry.id)
        )
        return [tuple(row) for row in rows]


def assert_valid_history(steps: list[str]) -> None:
    """Each status once, each step one the lifecycle allows."""
    assert steps[0] == "queued" and len(set(steps)) == len(steps), steps
    allowed = {
        (source, dest)
        for _, sources, dest in delivery.TRANSITIONS
        for source in ([sources] if isinstance(sources, str) else sources)
    }
    assert all(pair in allowed for pair in itertools.pairwise(steps)), steps


def test_a_replayed_rejection_refunds_and_texts_once(rt, provider, app, phone, sample_directory):
    ref = send_message(rt, phone)
    assert balance(rt, phone.number) == 9
    rejected = {"id": "rj1", "type": "message.rejected", "message_id": ref, "reason": "other"}
    assert results(post_at_once(app, [rejected] * 8)) == ["applied"] + ["duplicate"] * 7
    client = app.test_client()
    assert post_event(client, rejected) == (200, {"result": "duplicate"})
    assert post_event(client, {**rejected, "id": "rj2"}) == (200, {"result": "repeat"})
    content = {**rejected, "id": "rj3", "reason": "content"}  # another reason, later
    assert post_event(client, content) == (200, {"result": "repeat"})
    drain(rt)
    assert ledger(rt, ref) == [("debit", -1, None), ("refund", 1, "rejected")]
    assert balance(rt, phone.number) == 10
    assert texts_to(rt, phone.number, "Huntsville Unit did not accept") == [
        f"Huntsville Unit did not accept {ref}. Your 1 stamp is back: 10 TX stamps."
        " Reply MENU to write again."
    ]
    assert history(rt, ref) == ["queued", "submitted", "rejected"]


def test_a_replayed_reply_reaches_the_family_once(rt, provider, app, phone, sample_directory):
    ref = send_message(rt, phone)
    reply = {"id": "rp1", "type": "message.reply", "message_id": ref, "body": "Love you mom"}
    assert results(post_at_once(app, [reply] * 8)) == ["applied"] + ["duplicate"] * 7
    assert post_event(app.test_client(), reply) == (200, {"result": "duplicate"})
    drain(rt)
    with rt.db.session() as session:
        [(reply_ref, body)] = session.execute(select(Reply.ref, Reply.body)).all()
    assert body == "Love you mom"
    assert texts_to(rt, phone.number, "Ana replied") == [f"Ana replied ({reply_ref}): Love you mom"]
    assert worker_texts(rt, phone.number).count(f"Ana replied ({reply_ref}): Love you mom") == 1
    assert history(rt, ref) == ["queued", "submitted"]  # a reply is no step


def test_a_replayed_transfer_moves_and_texts_once(rt, provider, app, phone, sample_directory):
    ref = send_message(rt, phone)
    moved = {
        "id": "tr1", "type": "person.transferred", "state": "TX", "inmate_id": "01234567",
        "facility_id": "TX-MV",
    }  # fmt: skip
    # The same event, and the same move under another id, all at once.
    answers = results(post_at_once(app, [moved] * 5 + [{**moved, "id": "tr2"}] * 3))
    assert answers == ["applied"] + ["duplicate"] * 6 + ["repeat"]
    client = app.test_client()
    assert post_event(client, moved) == (200, {"result": "duplicate"})
    assert post_event(client, {**moved, "id": "tr3"}) == (200, {"result": "repeat"})
    drain(rt)
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        assert ana.facility_id == "TX-MV"
        moves = session.scalars(
            select(DirectoryEvent.kind).where(DirectoryEvent.inmate_pk == ana.id)
        ).all()
        assert moves == ["transfer"]
        contact = session.scalars(select(Contact).where(Contact.inmate_pk == ana.id)).one()
        assert contact.inmate.facility.name == "Mountain View Unit"
        sent = session.scalars(select(Message).where(Message.ref == ref)).one()
        assert sent.facility_id == "TX-MV"  # the message on its way follows
        reasons = session.scalars(
            select(MessageEvent.reason).where(MessageEvent.message_id == sent.id)
        ).all()
        assert reasons.count("transferred") == 1
    assert texts_to(rt, phone.number, "Ana was moved") == [
        "Ana was moved to Mountain View Unit. Your list is updated, and messages go there now."
    ]
    assert ledger(rt, ref) == [("debit", -1, None)]
    assert history(rt, ref) == ["queued", "submitted", "submitted"]  # the move is noted


def test_a_replayed_release_returns_the_message_once(rt, provider, app, phone, sample_directory):
    ref = send_message(rt, phone)
    released = {"id": "rl1", "type": "person.released", "state": "TX", "inmate_id": "01234567"}
    answers = results(post_at_once(app, [released] * 5 + [{**released, "id": "rl2"}] * 3))
    assert answers == ["applied"] + ["duplicate"] * 6 + ["repeat"]
    drain(rt)
    assert history(rt, ref) == ["queued", "submitted", "returned"]
    assert ledger(rt, ref) == [("debit", -1, None), ("refund", 1, "released")]
    assert balance(rt, phone.number) == 10
    assert texts_to(rt, phone.number, f"{ref} could not be delivered") == [
        f"{ref} could not be delivered: Ana was released from Huntsville Unit."
        " Your 1 stamp is back: 10 TX stamps. Reply MENU."
    ]


def test_delivered_before_approved_and_other_late_steps(
    rt, provider, client, phone, sample_directory
):
    ref = send_message(rt, phone)
    delivered = {
        "id": "o1", "type": "message.delivered", "message_id": ref,
        "occurred_at": "2026-11-24T00:02:00Z",
    }  # fmt: skip
    assert post_event(client, delivered) == (200, {"result": "applied"})
    late = [
        ({"id": "o2", "type": "message.approved", "message_id": ref}, "refused"),
        ({"id": "o3", "type": "message.in_review", "message_id": ref}, "refused"),
        ({"id": "o4", "type": "message.rejected", "message_id": ref, "reason": "other"}, "refused"),
        ({**delivered, "id": "o5"}, "repeat"),
        ({"id": "o6", "type": "message.read", "message_id": ref}, "applied"),
        ({"id": "o7", "type": "message.delivered", "message_id": ref}, "refused"),  # after read
        ({"id": "o8", "type": "message.returned", "message_id": ref, "reason": "released"},
         "refused"),
    ]  # fmt: skip
    for event, expected in late:
        assert post_event(client, event) == (200, {"result": expected}), event
    drain(rt)
    assert history(rt, ref) == ["queued", "submitted", "in_review", "approved", "delivered", "read"]
    assert texts_to(rt, phone.number, "Delivered") == [
        f"Delivered: your message {ref} reached Ana at Huntsville Unit on Mon 6:02 PM."
    ]
    assert ledger(rt, ref) == [("debit", -1, None)]  # nothing refunded for a late rejection


def test_steps_of_one_message_at_once_in_any_order(rt, provider, app, phone, sample_directory):
    ref = send_message(rt, phone)
    steps = [
        {"id": "c1", "type": "message.in_review", "message_id": ref},
        {"id": "c2", "type": "message.approved", "message_id": ref},
        {"id": "c3", "type": "message.delivered", "message_id": ref},
        {"id": "c4", "type": "message.read", "message_id": ref},
        {"id": "c3", "type": "message.delivered", "message_id": ref},
    ]
    answers = results(post_at_once(app, steps))
    assert answers.count("duplicate") == 1 and "applied" in answers
    drain(rt)
    steps_taken = history(rt, ref)
    assert_valid_history(steps_taken)
    assert steps_taken[-3:] == ["approved", "delivered", "read"]  # implied when skipped
    assert len(texts_to(rt, phone.number, "Delivered: your message")) == 1
    assert ledger(rt, ref) == [("debit", -1, None)]


def test_a_reply_before_delivered_and_a_rejection_before_review(
    rt, provider, client, phone, sample_directory
):
    ref = send_message(rt, phone)
    reply = {"id": "q1", "type": "message.reply", "message_id": ref, "body": "Got it early"}
    assert post_event(client, reply) == (200, {"result": "applied"})
    delivered = {"id": "q2", "type": "message.delivered", "message_id": ref}
    assert post_event(client, delivered) == (200, {"result": "applied"})
    assert post_event(client, {**reply, "id": "q3", "body": "And again"}) == (
        200,
        {"result": "applied"},
    )  # a second reply, a new event: texted too
    drain(rt)
    replies = texts_to(rt, phone.number, "Ana replied")
    assert [text.partition(": ")[2] for text in replies] == ["Got it early", "And again"]
    assert len(texts_to(rt, phone.number, "Delivered: your message")) == 1
    assert history(rt, ref) == ["queued", "submitted", "in_review", "approved", "delivered"]
    assert history(rt, ref).count("delivered") == 1

    second = send_message(rt, phone, body="Another one.")
    rejected = {"id": "q4", "type": "message.rejected", "message_id": second, "reason": "other"}
    review = {"id": "q5", "type": "message.in_review", "message_id": second}
    assert post_event(client, rejected) == (200, {"result": "applied"})
    assert post_event(client, review) == (200, {"result": "refused"})  # late
    assert post_event(client, {**delivered, "id": "q6", "message_id": second}) == (
        200,
        {"result": "refused"},
    )
    drain(rt)
    assert ledger(rt, second) == [("debit", -1, None), ("refund", 1, "rejected")]
    assert history(rt, second) == ["queued", "submitted", "rejected"]
    assert len(texts_to(rt, phone.number, "Delivered: your message")) == 1


def test_every_move_is_texted_once_even_back_and_forth(
    rt, provider, client, phone, sample_directory
):
    ready_to_write(phone)
    moves = ["TX-MV", "TX-HV", "TX-MV", "TX-MV"]
    for number, facility in enumerate(moves):
        moved = {
            "id": f"m{number}", "type": "person.transferred", "state": "TX",
            "inmate_id": "01234567", "facility_id": facility,
        }  # fmt: skip
        expected = "repeat" if number == 3 else "applied"
        assert post_event(client, moved) == (200, {"result": expected})
    drain(rt)
    assert [text.split(".")[0] for text in texts_to(rt, phone.number, "Ana was moved")] == [
        "Ana was moved to Mountain View Unit",
        "Ana was moved to Huntsville Unit",
        "Ana was moved to Mountain View Unit",
    ]
