"""PROVIDER=http: messages POSTed to the provider, signed events back, per docs/openapi.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate as validate_spec
from sqlalchemy import select

from bot.providers import sign
from bot.store.models import Message
from tests.conftest import ROOT, drain
from tests.fakes import FakeServer, Served
from tests.test_compose import worker_texts
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
