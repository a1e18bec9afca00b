"""The inbound webhook: signatures, bad input, repeats, concurrency, never losing a text."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.config import Settings
from bot.exceptions import ConfigError
from bot.runtime import Runtime
from bot.store.models import Account, InboundSms, OutboundSms
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, Phone, drain, twiml_messages
from tests.twilio_sign import twilio_signature

# Twilio's published vectors (twilio-python tests/unit/test_request_validator.py).
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_published_signature_vectors():
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS.items()) == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", VECTOR_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert RequestValidator("12345").validate(
        VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def count(rt, model) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_signed_request_is_answered_in_twiml(phone):
    response = phone.post(phone.form("Hi"))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert twiml_messages(response.data)[0].startswith("Kinline:")


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "not-a-signature",
        twilio_signature("wrong-token", PUBLIC_BASE_URL + "/sms/inbound", [("Body", "Hi")]),
    ],
)
def test_missing_or_bad_signature_is_refused(rt, phone, signature):
    response = phone.post(phone.form("Hi"), signature=signature)
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.get_data(as_text=True)
    assert count(rt, InboundSms) == 0


def test_signature_over_another_url_or_tampered_body_is_refused(rt, phone):
    form = phone.form("Hi")
    internal = twilio_signature(AUTH_TOKEN, "http://localhost/sms/inbound", form.items())
    assert phone.post(form, signature=internal).status_code == 403
    signed = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + "/sms/inbound", form.items())
    form["Body"] = "STOP"
    assert phone.post(form, signature=signed).status_code == 403
    assert count(rt, Account) == 0


def test_query_string_is_part_of_the_signed_url(phone):
    form = phone.form("Hi")
    path = "/sms/inbound?campaign=flyer"
    signature = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + path, form.items())
    assert phone.post(form, signature=signature, path=path).status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"From": ""}, "missing parameter From"),
        ({"MessageSid": ""}, "missing parameter MessageSid"),
        ({"From": "not a number"}, "From is not a phone number"),
        ({"NumMedia": "two"}, "NumMedia must be a whole number"),
        ({"NumMedia": "1"}, "MediaUrl0 is missing"),
        ({"MessageSid": "SM<script>"}, "MessageSid must be"),
        ({"Body": "x" * 6000}, "Body is longer than"),
    ],
)
def test_garbled_parameters_get_400_with_a_reason(rt, phone, change, reason):
    form = phone.form("Hi")
    form.update(change)
    response = phone.post(form)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert count(rt, InboundSms) == 0


def test_missing_body_is_400(phone):
    form = phone.form("Hi")
    del form["Body"]
    response = phone.post(form)
    assert response.status_code == 400
    assert "Body" in response.get_data(as_text=True)


def test_wrong_method_and_unknown_path_answer_plainly(client):
    assert client.get("/sms/inbound").status_code == 405
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.mimetype == "text/plain"


def test_repeated_message_sid_gets_the_same_reply_and_changes_nothing(rt, phone, sample_directory):
    phone.text("Hi")
    first = phone.send("YES", sid="SM" + "a" * 32)
    again = phone.send("YES", sid="SM" + "a" * 32)
    assert again == first
    assert count(rt, InboundSms) == 2
    assert count(rt, OutboundSms) == 2
    # the conversation did not move twice: it still waits for a state
    assert phone.text("TX").startswith("Texas: send")


def test_concurrent_repeats_of_one_message_are_handled_once(rt, phone):
    form = phone.form("Hi", sid="SM" + "b" * 32)
    results: list[list[str]] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        client = phone.client.application.test_client()
        barrier.wait()
        response = Phone(client, phone.number).post(form)
        assert response.status_code == 200
        results.append(twiml_messages(response.data))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result == results[0] for result in results)
    assert count(rt, InboundSms) == 1 and count(rt, OutboundSms) == 1 and count(rt, Account) == 1


def test_texts_sent_together_are_read_in_the_order_they_arrived(rt, phone, sample_directory):
    phone.text("Hi")
    phone.text("YES")
    texts = ["Texas", "Ruiz, Ana", "2", "yes"]
    barrier = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def deliver(body: str) -> None:
        try:
            client = phone.client.application.test_client()
            barrier.wait()
            response = Phone(client, phone.number).post(phone.form(body))
            assert response.status_code == 200
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=deliver, args=(body,)) for body in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with rt.db.session() as session:
        rows = session.scalars(select(InboundSms).order_by(InboundSms.id)).all()[2:]
    assert all(row.processed_at for row in rows)
    # Whatever order they arrived in, each was read in the state its predecessor left.
    order = [row.body for row in rows]
    replies = {row.body: row.reply for row in rows}
    assert len(order) == 4
    first = replies[order[0]]
    assert first, "the first text of the burst got an answer"
    if order == texts:
        assert replies["Texas"][0].startswith("Texas: send")
        assert replies["Ruiz, Ana"][0].startswith("Found 2 in Texas")
        assert replies["2"][0].startswith("Ana Ruiz #07654321")
        assert replies["yes"][0].startswith("Saved: Ana Ruiz")
    previous_processed = [row.processed_at for row in rows]
    assert previous_processed == sorted(previous_processed)


def test_busy_conversation_hands_the_text_to_the_worker(rt, app, phone, sample_directory):
    phone.text("Hi")
    rt.settings = replace(rt.settings, lock_wait_seconds=0.2)
    with rt.conversations.lock(phone.number, phone.to, wait=1) as got:
        assert got
        replies = phone.send("YES")
    assert replies == []  # the webhook could not take the turn in time
    with rt.db.session() as session:
        row = session.scalars(select(InboundSms).where(InboundSms.body == "YES")).one()
        assert row.processed_at is None and row.reply_via == "api"
    drain(rt)
    with rt.db.session() as session:
        row = session.scalars(select(InboundSms).where(InboundSms.body == "YES")).one()
        assert row.processed_at is not None
        sent = session.scalars(select(OutboundSms).where(OutboundSms.inbound_id == row.id)).all()
    assert [out.status for out in sent] == ["sent"]
    assert sent[0].body.startswith("Thank you. Which state")
    assert sent[0].provider_sid.startswith("SMconsole")


def test_unsigned_requests_are_accepted_only_in_console_mode_without_a_token(
    rt, settings, database_url, redis_url
):
    from webhooks import create_app

    console = replace(settings, twilio_auth_token=None)
    client = create_app(runtime=replace(rt, settings=console)).test_client()
    phone = Phone(client, "+15125550111")
    assert phone.post(phone.form("Hi"), signature="").status_code == 200

    with pytest.raises(ConfigError):
        Settings.from_env({"TWILIO_ACCOUNT_SID": "AC123"}, database_url=database_url)


def test_healthz_reports_sql_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["ok"] is True


def test_turn_that_fails_still_answers_and_keeps_the_text(rt, phone, sample_directory):
    phone.text("Hi")
    phone.text("YES")
    # A conversation pointing at a person who is not in the directory makes the flow fail.
    from bot.store.conversations import Conversation

    rt.conversations.save(phone.number, phone.to, Conversation("lookup", "confirm", {"pick": 999}))
    reply = phone.text("YES")
    assert reply.startswith("Sorry, something went wrong on our side.")
    with rt.db.session() as session:
        row = session.scalars(select(InboundSms).order_by(InboundSms.id.desc())).first()
        assert row.body == "YES" and row.processed_at is not None


def test_runtime_refuses_to_start_without_redis(settings):
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        Runtime.create(replace(settings, redis_url=None))
