"""The inbound webhook: signatures, bad input, repeats, concurrency, never losing a text."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.config import Settings
from bot.exceptions import ConfigError
from bot.runtime import Runtime
from bot.store.models import Account, Facility, InboundSms, OutboundSms
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, Phone, at_once, drain, twiml_messages
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


def test_concurrent_repeats_of_one_message_are_handled_once(rt, app, phone):
    form = phone.form("Hi", sid="SM" + "b" * 32)
    responses = at_once(app, [lambda client: Phone(client, phone.number).post(form)] * 8)
    assert [response.status_code for response in responses] == [200] * 8
    results = [twiml_messages(response.data) for response in responses]
    assert all(result == results[0] for result in results)
    assert count(rt, InboundSms) == 1 and count(rt, OutboundSms) == 1 and count(rt, Account) == 1


def test_texts_sent_together_are_read_in_the_order_they_arrived(rt, phone, sample_directory):
    phone.text("Hi")
    phone.text("YES")
    texts = ["Texas", "Ruiz, Ana", "2", "yes"]
    results: dict[str, list[str]] = {}

    def deliver(body: str) -> None:
        client = phone.client.application.test_client()
        response = Phone(client, phone.number).post(phone.form(body))
        results[body] = twiml_messages(response.data)

    def arrived() -> int:
        return count(rt, InboundSms)

    threads = []
    # Hold the conversation as a slow turn would; the texts arrive one after another
    # and all wait for it.
    with rt.conversations.lock(phone.number, phone.to, wait=1):
        for body in texts:
            before = arrived()
            thread = threading.Thread(target=deliver, args=(body,))
            thread.start()
            threads.append(thread)
            while arrived() == before:
                time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert results["Texas"][0].startswith("Texas: send")
    assert results["Ruiz, Ana"][0].startswith("Found 2 in Texas")
    assert results["2"][0].startswith("Ana Ruiz #07654321")
    assert results["yes"][0].startswith("Saved: Ana Ruiz at Mountain View Unit")


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


def test_without_redis_sql_commands_work_and_redis_use_says_why(rt, tmp_path):
    from webhooks import create_app

    bare = Runtime.create(replace(rt.settings, redis_url=None))
    app = create_app(runtime=bare)
    result = app.test_cli_runner().invoke(
        args=["directory", "import", "--facilities", "data/sample/facilities.csv"]
    )
    assert result.exit_code == 0, result.output
    assert count(rt, Facility) > 0
    with pytest.raises(ConfigError, match="REDIS_URL"):
        bare.queue  # noqa: B018
    assert app.test_client().get("/healthz").status_code == 503


def test_repeat_of_a_text_answered_by_the_worker_is_not_answered_twice(rt, phone, sample_directory):
    phone.text("Hi")
    rt.settings = replace(rt.settings, lock_wait_seconds=0.2)
    sid = "SM" + "c" * 32
    with rt.conversations.lock(phone.number, phone.to, wait=1):
        assert phone.send("YES", sid=sid) == []
    drain(rt)
    assert phone.send("YES", sid=sid) == []  # Twilio's retry: the answer went out already
    with rt.db.session() as session:
        sent = session.scalars(select(OutboundSms).where(OutboundSms.status == "sent")).all()
    assert len(sent) == 1


def test_stop_handled_by_the_worker_still_sends_its_one_confirmation(rt, phone):
    phone.text("Hi")
    rt.settings = replace(rt.settings, lock_wait_seconds=0.2)
    with rt.conversations.lock(phone.number, phone.to, wait=1):
        assert phone.send("STOP") == []
    drain(rt)
    with rt.db.session() as session:
        out = session.scalars(select(OutboundSms).order_by(OutboundSms.id.desc())).first()
    assert out.status == "sent" and "unsubscribed" in out.body


def test_text_whose_webhook_died_is_answered_by_a_new_text(rt, phone, sample_directory):
    from datetime import timedelta

    from bot.store.models import utcnow

    phone.text("Hi")
    with rt.db.session() as session:  # a web process died right after recording this
        session.add(
            InboundSms(
                message_sid="SM" + "d" * 32,
                from_number=phone.number,
                to_number=phone.to,
                body="YES",
                received_at=utcnow() - timedelta(minutes=2),
            )
        )
        session.commit()
    assert phone.text("Texas").startswith("Texas: send")  # read after the lost YES
    drain(rt)
    with rt.db.session() as session:
        lost = session.scalars(
            select(OutboundSms).where(OutboundSms.idempotency_key.startswith("reply:SMddd"))
        ).one()
    assert lost.status == "sent" and lost.body.startswith("Thank you. Which state")


def test_a_turn_on_a_text_another_turn_handled_keeps_the_first_answer(rt, phone):
    from bot import engine

    text = engine.Inbound("SM" + "e" * 32, phone.number, phone.to, "Hi")
    row_id, done = engine.record(rt, text)
    assert not done
    with rt.db.session() as session:
        stale = session.get(InboundSms, row_id)  # read before the other turn took the text
        assert engine.process_pending(rt, phone.number, phone.to) == 1  # the other turn
        took, replies = engine.take_turn(rt, session, stale)  # a lock that ran out
    assert (took, replies) == (False, None)
    [welcome] = engine.answer_of(rt, row_id)
    assert welcome.startswith("Kinline: write to a loved one")
    with rt.db.session() as session:  # one answer, not two
        assert session.scalar(select(func.count()).select_from(OutboundSms)) == 1
    # A repeat of the webhook gets that answer as TwiML, not silence.
    assert phone.send("Hi", sid="SM" + "e" * 32) == [welcome]


def test_message_sid_reused_by_another_number_is_refused(rt, phone, new_phone):
    sid = "SM" + "e" * 32
    phone.send("Hi", sid=sid)
    other = new_phone("+13105550199")
    response = other.post(other.form("Hi", sid=sid))
    assert response.status_code == 400
    assert count(rt, Account) == 1


def test_worker_start_sweeps_texts_left_pending(rt, phone, sample_directory):
    from datetime import timedelta

    from bot import jobs
    from bot.store.models import utcnow

    phone.text("Hi")
    with rt.db.session() as session:
        session.add(
            InboundSms(
                message_sid="SM" + "f" * 32,
                from_number=phone.number,
                to_number=phone.to,
                body="YES",
                received_at=utcnow() - timedelta(minutes=5),
            )
        )
        session.commit()
    assert jobs.sweep_stale(rt) == 1
    drain(rt)
    with rt.db.session() as session:
        out = session.scalars(select(OutboundSms).order_by(OutboundSms.id.desc())).first()
    assert out.status == "sent" and out.body.startswith("Thank you. Which state")


def test_maintenance_is_scheduled_once_per_slot_and_sweeps(rt, sample_directory):
    from bot import jobs

    jobs.schedule_maintenance(rt)
    jobs.schedule_maintenance(rt)
    slots = [j for j in rt.queue.scheduled_job_registry.get_job_ids() if j.startswith("maint")]
    assert len(slots) == 1
    assert jobs.maintenance() == 0  # nothing left behind; the next run is scheduled
    assert any(
        j.startswith("mailrun-TX-HV-") for j in rt.queue.scheduled_job_registry.get_job_ids()
    )
