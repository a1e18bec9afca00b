"""Sending through Twilio's REST API (a local double): once, at pace, in allowed hours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import select

from bot import jobs, notify
from bot.pace import Pace
from bot.store.models import Account, OutboundSms
from bot.transport import SendError, TwilioSender
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, ROOT, drain, worker_env
from tests.fakes import FakeTwilioApi
from tests.twilio_sign import twilio_signature


@pytest.fixture
def twilio(rt):
    """The runtime in Twilio mode, against a local Twilio API double."""
    with FakeTwilioApi(auth_token=AUTH_TOKEN).running() as api:
        rt.settings = replace(
            rt.settings,
            twilio_account_sid=api.account_sid,
            twilio_auth_token=AUTH_TOKEN,
            twilio_from="+15005550006",
            twilio_api_base=api.url,
            allow_test_payments=True,
            twilio_mps=100,
        )
        rt.sender = TwilioSender(rt.settings)
        yield api


def daytime(rt):
    """Quiet hours on, and the runtime's clock at 11:00 in Texas."""
    rt.settings = replace(rt.settings, quiet_hours=True)
    rt.clock = lambda: datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


def texts(rt) -> list[OutboundSms]:
    with rt.db.session() as session:
        return list(session.scalars(select(OutboundSms).where(OutboundSms.kind == "notification")))


def onboarded(phone) -> None:
    phone.text("Hi")
    phone.text("YES")


def test_a_notification_goes_out_once_with_a_status_callback(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    assert notify.send_text(rt, phone.number, "menu.empty", "t:1")
    drain(rt)
    drain(rt)
    [sent] = twilio.messages
    assert (sent["to"], sent["from"]) == (phone.number, "+15005550006")
    assert sent["status_callback"] == f"{PUBLIC_BASE_URL}/sms/status?o={texts(rt)[0].id}"
    [row] = texts(rt)
    assert (row.status, row.provider_sid, row.attempts) == ("sent", sent["sid"], 1)


def test_429_then_success_sends_one_text(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    twilio.errors = [(429, 20429), (503, 20500)]
    notify.send_text(rt, phone.number, "menu.empty", "t:2")
    drain(rt)  # retried with backoff (the scheduled retries are run as they come due)
    assert len(twilio.messages) == 1
    [row] = texts(rt)
    assert row.status == "sent" and row.attempts == 3


def test_21610_marks_the_number_opted_out_and_stops(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    twilio.refuse[phone.number] = (400, 21610)
    notify.send_text(rt, phone.number, "menu.empty", "t:3")
    drain(rt)
    assert twilio.messages == []
    [row] = texts(rt)
    assert (row.status, row.error_code) == ("failed", "21610")
    with rt.db.session() as session:
        assert session.scalars(select(Account)).one().opted_out_at is not None
    assert not notify.send_text(rt, phone.number, "menu.empty", "t:4")


@pytest.mark.parametrize("code", [21211, 21614])
def test_invalid_numbers_are_marked_unreachable(rt, twilio, phone, code):
    daytime(rt)
    onboarded(phone)
    twilio.refuse[phone.number] = (400, code)
    notify.send_text(rt, phone.number, "menu.empty", "t:5")
    drain(rt)
    twilio.refuse.clear()
    notify.send_text(rt, phone.number, "menu.empty", "t:6")
    drain(rt)
    assert twilio.messages == []
    assert [row.status for row in texts(rt)] == ["unreachable", "unreachable"]


def status(client, sid: str, value: str, error: str = "") -> str:
    form = {"MessageSid": sid, "MessageStatus": value, "AccountSid": "AC1"}
    if error:
        form["ErrorCode"] = error
    signature = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + "/sms/status", form.items())
    response = client.post("/sms/status", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    return response.get_data(as_text=True).strip()


def test_status_callbacks_out_of_order_and_a_transient_failure(rt, twilio, client, phone):
    daytime(rt)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:7")
    drain(rt)
    sid = twilio.messages[0]["sid"]
    assert status(client, sid, "delivered") == "updated"
    assert status(client, sid, "sent") == "stale"  # late: delivered stays
    assert texts(rt)[0].status == "delivered"
    notify.send_text(rt, phone.number, "menu.empty", "t:8")
    drain(rt)
    second = twilio.messages[1]["sid"]
    assert status(client, second, "undelivered", "30003") == "resent"
    drain(rt)
    assert len(twilio.messages) == 3  # sent again, once
    assert status(client, "SMunknown", "delivered") == "unknown"
    unsigned = client.post("/sms/status", data={"MessageSid": sid, "MessageStatus": "failed"})
    assert unsigned.status_code == 403


def test_quiet_hours_hold_notifications_but_not_replies(rt, twilio, phone):
    rt.settings = replace(rt.settings, quiet_hours=True)
    rt.clock = lambda: datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 02:00 in Texas
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:9")
    assert jobs.send_sms(texts(rt)[0].id) == "deferred"
    assert twilio.messages == []
    assert rt.queue.scheduled_job_registry.get_job_ids() == []  # notifications wait in bulk
    [job_id] = rt.bulk_queue.scheduled_job_registry.get_job_ids()
    assert job_id.startswith(f"sms-{texts(rt)[0].id}-at-20261124T1400")  # 08:00 in Texas


def test_a_text_waits_for_its_slot_in_the_shared_pace(rt, twilio, phone):
    daytime(rt)
    rt.settings = replace(rt.settings, twilio_mps=1)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:10")
    notify.send_text(rt, phone.number, "menu.empty", "t:11")
    first, second = (row.id for row in texts(rt))
    began = time.monotonic()
    assert jobs.send_sms(first) == "sent"
    assert jobs.send_sms(second) == "sent"  # 1 segment a second: it waited its turn
    assert time.monotonic() - began >= 1.0
    assert [m["body"] for m in twilio.messages] == [texts(rt)[0].body, texts(rt)[1].body]


def test_answers_go_out_before_waiting_notifications(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    for n in range(3):  # a mail run's notices, queued first
        notify.send_text(rt, phone.number, "menu.empty", f"t:notice:{n}")
    with rt.db.session() as session:  # then an answer the worker sends (a busy webhook's)
        answer = OutboundSms(
            idempotency_key="reply:t15", to_number=phone.number, from_number="+15005550006",
            body="Thank you. Which state is your loved one in?", kind="reply", status="queued",
        )  # fmt: skip
        session.add(answer)
        session.commit()
    jobs.enqueue_sms(rt, answer)
    assert rt.queue.job_ids == [f"sms-{answer.id}"]
    assert len(rt.bulk_queue.job_ids) == 3
    drain(rt)
    assert len(twilio.messages) == 4
    assert twilio.messages[0]["body"] == answer.body


def test_a_sender_booked_far_ahead_sends_later_instead_of_waiting(rt, twilio, phone):
    daytime(rt)
    rt.settings = replace(rt.settings, twilio_mps=1)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:14")
    [row] = texts(rt)
    Pace(rt.redis, 1).reserve("+15005550006", 300)  # a flood booked the next 5 minutes
    assert jobs.send_sms(row.id) == "paced"
    assert twilio.messages == []
    [job_id] = rt.bulk_queue.scheduled_job_registry.get_job_ids()
    at = datetime.strptime(job_id.rsplit("-at-", 1)[1], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    assert timedelta(minutes=4) < at - rt.clock() <= timedelta(minutes=6)


def test_a_twilio_read_timeout_is_checked_before_sending_again(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    rt.sender = TwilioSender(rt.settings, timeout=0.5)
    twilio.hold = threading.Event()
    twilio.hold.set()  # Twilio creates the message, but its answer never comes back
    try:
        notify.send_text(rt, phone.number, "menu.empty", "t:30")
        [row] = texts(rt)
        with pytest.raises(SendError, match="ambiguous"):
            jobs.send_sms(row.id)
        assert texts(rt)[0].status == "sending"
        drain(rt)  # its job again, as RQ's retry runs it: it lists what Twilio has first
    finally:
        twilio.release.set()
    [sent] = twilio.messages
    [row] = texts(rt)
    assert (row.status, row.provider_sid) == ("sent", sent["sid"])


def test_a_text_left_sending_is_checked_with_twilio_before_sending_again(rt, twilio, phone):
    from bot.store.models import utcnow

    daytime(rt)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:12")
    [row] = texts(rt)
    with rt.db.session() as session:  # a worker died after marking, before calling Twilio
        out = session.get(OutboundSms, row.id)
        out.status, out.attempted_at, out.attempts = "sending", utcnow(), 1
        session.commit()
    assert jobs.send_sms(row.id) == "sent"
    assert len(twilio.messages) == 1


def test_a_twilio_500_is_checked_before_sending_again(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    twilio.errors = [(500, 20500)]
    notify.send_text(rt, phone.number, "menu.empty", "t:20")
    [row] = texts(rt)
    with pytest.raises(Exception, match="ambiguous"):
        jobs.send_sms(row.id)  # Twilio answered 500: it may or may not have the text
    assert texts(rt)[0].status == "sending"
    assert jobs.send_sms(row.id) == "sent"  # nothing there: sent now, once
    twilio.messages[0]["status"] = "queued"
    with rt.db.session() as session:  # had it gone out, the retry would have found it:
        out = session.get(OutboundSms, row.id)
        out.status, out.provider_sid = "sending", None
        session.commit()
    assert jobs.send_sms(row.id) == "sent"
    assert len(twilio.messages) == 1


def test_a_status_callback_before_the_sid_is_kept(rt, twilio, client, phone):
    daytime(rt)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:21")
    [row] = texts(rt)
    form = {"MessageSid": "SMearly", "MessageStatus": "undelivered", "ErrorCode": "30006"}
    url = f"{PUBLIC_BASE_URL}/sms/status?o={row.id}"
    signature = twilio_signature(AUTH_TOKEN, url, form.items())
    response = client.post(
        f"/sms/status?o={row.id}", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.get_data(as_text=True).strip() == "updated"
    with rt.db.session() as session:
        assert session.scalars(select(Account)).one().unreachable_at is not None


def test_the_sweep_sends_a_text_whose_job_failed_for_good(rt, twilio, phone):
    daytime(rt)
    onboarded(phone)
    notify.send_text(rt, phone.number, "menu.empty", "t:22")
    [row] = texts(rt)
    with rt.db.session() as session:  # the first job is gone (failed), the row still queued
        out = session.get(OutboundSms, row.id)
        out.created_at = out.created_at - timedelta(minutes=5)
        session.commit()
    rt.bulk_queue.empty()
    assert jobs.sweep_stale(rt) >= 1
    drain(rt)
    assert len(twilio.messages) == 1


@pytest.mark.slow
def test_worker_killed_mid_send_sends_exactly_one_text(rt, twilio, phone, database_url, redis_url):
    onboarded(phone)
    with rt.db.session() as session:  # a reply sent by the worker (no quiet hours for those)
        row = OutboundSms(
            idempotency_key="reply:t13", to_number=phone.number, from_number="+15005550006",
            body="Thank you. Which state is your loved one in?", kind="reply", status="queued",
        )  # fmt: skip
        session.add(row)
        session.commit()
    jobs.enqueue_sms(rt, row)
    twilio.hold = threading.Event()
    twilio.hold.set()  # Twilio takes the text but the worker never hears back
    env = worker_env(rt, twilio, database_url, redis_url)
    worker = subprocess.Popen(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert twilio.received.wait(60), "the worker never called Twilio"
        # The worker (jobs run in it) and its scheduler process, mid-request.
        children = psutil.Process(worker.pid).children(recursive=True)
        for process in [psutil.Process(worker.pid), *children]:
            process.send_signal(signal.SIGKILL)
        worker.wait(10)
        psutil.wait_procs(children, timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    twilio.release.set()
    with rt.db.session() as session:
        assert session.get(OutboundSms, row.id).status == "sending"
    rt.redis.delete(f"kinline:sms-lock:{row.id}")  # its lock runs out
    # The job is recovered (RQ retries it, or the start-up sweep queues it again):
    assert jobs.send_sms(row.id) == "sent"
    assert jobs.send_sms(row.id) == "sent"
    assert len(twilio.messages) == 1
    with rt.db.session() as session:
        assert session.get(OutboundSms, row.id).provider_sid == twilio.messages[0]["sid"]
