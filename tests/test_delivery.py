"""A message's life after SEND: review, mail runs, rejections, refunds, transfers, replies."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot import delivery, providers, stamps
from bot.store.models import (
    Account,
    Attachment,
    Contact,
    Facility,
    Inmate,
    LedgerEntry,
    Message,
    MessageEvent,
    Reply,
)
from tests.conftest import drain
from tests.fakes import JPEG
from tests.test_compose import mms, ready_to_write, worker_texts


def grant(rt, number: str, state: str, n: int) -> None:
    with rt.db.session() as session:
        account = session.scalars(select(Account).where(Account.phone == number)).one()
        stamps.add_entry(
            session,
            LedgerEntry(
                account_id=account.id, state=state, delta=n, kind="grant",
                idempotency_key=f"grant:{account.id}:{state}:{n}",
            ),
        )  # fmt: skip
        session.commit()


def send_message(rt, phone, media_server=None, inmate_id="01234567", body="Hi mom, it's me."):
    """Write and send a paid message; return its ref (the worker has submitted it)."""
    ready_to_write(phone, inmate_id)
    grant(rt, phone.number, "TX", 10)
    phone.text("1")
    phone.send(body)
    if media_server is not None:
        mms(phone, "", media_server.add(f"M{inmate_id}", JPEG, "image/jpeg"), "image/jpeg")
    drain(rt)
    phone.text("DONE")
    sent = phone.text("SEND")
    assert sent.startswith("Sent for review"), sent
    drain(rt)
    with rt.db.session() as session:
        return session.scalars(select(Message).order_by(Message.id.desc())).first().ref


def message(rt, ref: str) -> Message:
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        found.attachments  # noqa: B018
        return found


def history(rt, ref: str) -> list[str]:
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        events = session.scalars(
            select(MessageEvent.status)
            .where(MessageEvent.message_id == found.id)
            .order_by(MessageEvent.id)
        )
        return list(events)


def act(rt, ref: str, trigger: str, reason: str | None = None) -> str:
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        result = delivery.advance(rt, session, outbox, found, trigger, reason)
        session.commit()
    outbox.send(rt)
    return result


def balance(rt, number: str, state: str = "TX") -> int:
    with rt.db.session() as session:
        account = session.scalars(select(Account).where(Account.phone == number)).one()
        return stamps.balance(session, account.id, state)


def test_send_review_mail_run_delivered_text(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    assert message(rt, ref).status == "in_review"
    assert act(rt, ref, "approve") == "applied"
    assert providers.deliver_approved(rt, "TX-HV", at=datetime(2026, 11, 24, 0, 2, tzinfo=UTC)) == 1
    drain(rt)
    assert history(rt, ref) == ["queued", "submitted", "in_review", "approved", "delivered"]
    assert worker_texts(rt, phone.number)[-1] == (
        f"Delivered: your message {ref} reached Ana at Huntsville Unit on Mon 6:02 PM."
    )


def test_repeats_are_no_ops_and_impossible_steps_are_refused(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    assert act(rt, ref, "deliver") == "refused"  # not approved yet
    assert act(rt, ref, "approve") == "applied"
    assert act(rt, ref, "approve") == "repeat"
    assert act(rt, ref, "reject", "content") == "refused"  # too late
    assert act(rt, ref, "deliver") == "applied"
    assert act(rt, ref, "deliver") == "repeat"
    assert act(rt, ref, "submit") == "refused"  # late and out of order
    drain(rt)
    assert [t for t in worker_texts(rt, phone.number) if t.startswith("Delivered")] == [
        worker_texts(rt, phone.number)[-1]
    ]
    assert history(rt, ref).count("delivered") == 1


def test_rejection_for_content_keeps_the_stamps_by_default(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    assert balance(rt, phone.number) == 9
    act(rt, ref, "reject", "content")
    drain(rt)
    assert balance(rt, phone.number) == 9
    text = worker_texts(rt, phone.number)[-1]
    assert text == (
        f"Huntsville Unit did not accept {ref}: staff found content that is not allowed."
        " Reply MENU."
    )


def test_other_rejections_give_every_stamp_back(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    act(rt, ref, "reject", "wrong_person")
    drain(rt)
    assert balance(rt, phone.number) == 10
    assert worker_texts(rt, phone.number)[-1] == (
        f"Huntsville Unit says {ref} was for someone else. Your 1 stamp is back:"
        " 10 TX stamps. Check the ID, then reply MENU."
    )


def test_a_rejected_photo_refunds_its_own_stamp_and_the_rest_is_delivered(
    rt, phone, sample_directory, media_server
):
    ref = send_message(rt, phone, media_server)
    assert balance(rt, phone.number) == 8
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        photo = session.scalars(select(Attachment).where(Attachment.message_id == found.id)).one()
        assert delivery.reject_attachment(rt, session, outbox, found, photo, "not_allowed")
        assert not delivery.reject_attachment(rt, session, outbox, found, photo, "not_allowed")
        session.commit()
    outbox.send(rt)
    act(rt, ref, "approve")
    act(rt, ref, "deliver")
    drain(rt)
    assert balance(rt, phone.number) == 9
    texts = worker_texts(rt, phone.number)
    assert texts[-2] == (
        f"Huntsville Unit refused a photo in {ref}; the rest goes to Ana."
        " Your 1 stamp is back: 9 TX stamps. Reply STATUS."
    )
    assert texts[-1].startswith(f"Delivered: your message {ref}")


def test_transfer_to_a_facility_without_service_returns_the_message(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        lane_murray = session.get(Facility, "TX-LM")
        assert delivery.transfer(rt, session, outbox, ana, lane_murray) == 1
        session.commit()
    outbox.send(rt)
    drain(rt)
    assert message(rt, ref).status == "returned"
    assert balance(rt, phone.number) == 10
    texts = worker_texts(rt, phone.number)
    assert f"{ref} could not be delivered: Ana was moved" in texts[-2]
    assert texts[-1].startswith(
        "Ana was moved to Lane Murray Unit, which does not take e-messages."
    )
    with rt.db.session() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.inmate.facility_id == "TX-LM"  # the contact followed


def test_transfer_to_a_facility_with_service_moves_the_message_along(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        assert delivery.transfer(rt, session, outbox, ana, session.get(Facility, "TX-MV")) == 0
        session.commit()
    outbox.send(rt)
    drain(rt)
    assert (message(rt, ref).status, message(rt, ref).facility_id) == ("in_review", "TX-MV")
    assert worker_texts(rt, phone.number)[-1] == (
        "Ana was moved to Mountain View Unit. Your list is updated, and messages go there now."
    )


def test_release_returns_open_messages_with_their_stamps(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        assert delivery.release(rt, session, outbox, ana) == 1
        assert session.scalars(select(Message.status).where(Message.ref == ref)).one() == "returned"
        assert delivery.release(rt, session, outbox, ana) == 0
        session.commit()
    outbox.send(rt)
    drain(rt)
    assert balance(rt, phone.number) == 10
    assert "Ana was released from Huntsville Unit" in worker_texts(rt, phone.number)[-1]


def test_replies_whole_or_by_link(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    act(rt, ref, "approve")
    act(rt, ref, "deliver")
    short = "Hi mom, I got your letter. I'm ok. Tell everyone I said hi."
    long = "Dear mom, " + "I think about you every day. " * 60
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        first = providers.record_reply(rt, session, outbox, found, short, "tablet:1")
        assert providers.record_reply(rt, session, outbox, found, short, "tablet:1") is None
        second = providers.record_reply(rt, session, outbox, found, long, "tablet:2")
        session.commit()
        refs = (first.ref, second.ref)
    outbox.send(rt)
    drain(rt)
    texts = worker_texts(rt, phone.number)
    assert texts[-2] == f"Ana replied ({refs[0]}): {short}"
    assert texts[-1].startswith(f"Ana replied ({refs[1]}) with a long letter. Read it here: ")
    link = texts[-1].rsplit(" ", 1)[1]
    with rt.db.session() as session:
        assert session.scalars(select(Reply)).all()[1].body == long
    assert link.startswith("https://kinline.test/r/")


def test_status_keyword_lists_the_last_three(rt, phone, sample_directory):
    ref = send_message(rt, phone)
    status = phone.text("STATUS")
    assert status == f"Your last messages:\n{ref} to Ana: in review\nReply MENU for options."


def test_mail_runs_are_scheduled_once_per_facility_and_time(rt, sample_directory):
    first = providers.ensure_mail_runs(rt)
    again = providers.ensure_mail_runs(rt)
    assert first == again > 0
    scheduled = rt.queue.scheduled_job_registry.get_job_ids()
    assert len(scheduled) == first
    assert any(job_id.startswith("mailrun-TX-HV-") for job_id in scheduled)


def test_next_mail_run_is_in_the_facility_time_zone():
    facility = Facility(
        id="X", state="TX", name="X", timezone="America/Chicago", emessages=True, photos=True,
        videograms=False, replies=True, mail_runs="06:00;18:00",
    )  # fmt: skip
    # 2026-11-24 13:00 UTC = 07:00 in Chicago: next run 18:00 local = 00:00 UTC next day.
    now = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    assert providers.next_run(facility, now) == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    late = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 19:00 local: tomorrow 06:00 local
    assert providers.next_run(facility, late) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_mail_run_job_delivers_and_schedules_the_next(rt, phone, sample_directory):
    from bot import jobs

    ref = send_message(rt, phone)
    act(rt, ref, "approve")
    assert jobs.mail_run("TX-HV") == 1
    assert message(rt, ref).status == "delivered"
    assert any(
        j.startswith("mailrun-TX-HV-") for j in rt.queue.scheduled_job_registry.get_job_ids()
    )


def test_mail_runs_on_dst_change_days():
    facility = Facility(
        id="X", state="TX", name="X", timezone="America/Chicago", emessages=True, photos=True,
        videograms=False, replies=True, mail_runs="01:30;02:30",
    )  # fmt: skip
    # 2026-11-01, fall back: at 01:10 CST (07:10 UTC) the day's 01:30 already ran (01:30 CDT,
    # 06:30 UTC); it does not run again when 01:30 comes round twice: next is 02:30 CST.
    assert providers.next_run(facility, datetime(2026, 11, 1, 7, 10, tzinfo=UTC)) == datetime(
        2026, 11, 1, 8, 30, tzinfo=UTC
    )
    # 2026-03-08, spring forward: 02:30 does not exist (it is 03:30 CDT = 08:30 UTC) and is
    # not skipped for a worker starting at 08:10 UTC.
    assert providers.next_run(facility, datetime(2026, 3, 8, 8, 10, tzinfo=UTC)) == datetime(
        2026, 3, 8, 8, 30, tzinfo=UTC
    )


def test_no_mail_runs_with_a_providers_api(rt, phone, sample_directory):
    from dataclasses import replace

    from bot import jobs

    ref = send_message(rt, phone)
    act(rt, ref, "approve")
    rt.settings = replace(rt.settings, provider="http", provider_url="http://127.0.0.1:9")
    assert providers.ensure_mail_runs(rt) == 0
    assert jobs.mail_run("TX-HV") == 0
    assert message(rt, ref).status == "approved"  # only the provider says delivered


def test_a_transfer_in_a_directory_import_reaches_the_family(
    rt, app, phone, sample_directory, tmp_path
):
    ref = send_message(rt, phone)
    moved = tmp_path / "moved.csv"
    moved.write_text(
        "state,inmate_id,first_name,last_name,facility_id,status\n"
        "TX,01234567,Ana,Ruiz,TX-LM,active\n"
    )
    result = app.test_cli_runner().invoke(args=["directory", "import", "--inmates", str(moved)])
    assert result.exit_code == 0, result.output
    drain(rt)
    assert message(rt, ref).status == "returned"
    assert balance(rt, phone.number) == 10
    assert worker_texts(rt, phone.number)[-1].startswith("Ana was moved to Lane Murray Unit")
