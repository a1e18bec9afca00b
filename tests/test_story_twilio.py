"""The whole story in Twilio mode: every text the family gets goes through Twilio's REST API
(a local double), sent by RQ jobs; each one exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot import delivery, providers
from bot.store.models import Attachment, Facility, Inmate, Message
from tests.conftest import drain
from tests.fakes import JPEG
from tests.test_compose import mms, ready_to_write
from tests.test_delivery import act, grant
from tests.test_sender import twilio  # noqa: F401  (the Twilio-mode fixture)


def sent_to(api, number: str) -> list[str]:
    return [m["body"] for m in api.messages if m["to"] == number]


def paid_message(rt, phone, media_server, inmate_id="01234567") -> str:
    ready_to_write(phone, inmate_id)
    grant(rt, phone.number, "TX", 10)
    phone.text("1")
    phone.send("Hi Ana, it's mom. The garden is blooming.")
    mms(phone, "", media_server.add(f"P{inmate_id}", JPEG, "image/jpeg"), "image/jpeg")
    drain(rt)
    phone.text("DONE")
    assert phone.text("SEND").startswith("Sent for review")
    drain(rt)
    with rt.db.session() as session:
        return session.scalars(select(Message.ref).order_by(Message.id.desc())).first()


def test_story_through_twilio(rt, twilio, phone, sample_directory, media_server):  # noqa: F811
    rt.clock = lambda: datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    ref = paid_message(rt, phone, media_server)
    tally = [b for b in sent_to(twilio, phone.number) if b.startswith("Got it")]
    assert len(tally) == 1  # one tally for the burst, through Twilio

    # One photo refused, the rest approved and delivered at the mail run.
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        message = session.scalars(select(Message).where(Message.ref == ref)).one()
        photo = session.scalars(select(Attachment).where(Attachment.message_id == message.id)).one()
        delivery.reject_attachment(rt, session, outbox, message, photo, "not_allowed")
        session.commit()
    outbox.send(rt)
    act(rt, ref, "approve")
    providers.deliver_approved(rt, "TX-HV")
    drain(rt)

    # A long reply goes as a link; a transfer to Lane Murray returns a second message.
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        message = session.scalars(select(Message).where(Message.ref == ref)).one()
        providers.record_reply(rt, session, outbox, message, "I miss you. " * 200, "t:1")
        session.commit()
    outbox.send(rt)
    phone.text("MENU")
    phone.text("1")
    phone.send("Second letter.")
    phone.text("DONE")
    phone.text("SEND")
    drain(rt)
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        delivery.transfer(rt, session, outbox, ana, session.get(Facility, "TX-LM"))
        session.commit()
    outbox.send(rt)
    drain(rt)
    drain(rt)  # a second pass sends nothing more

    # A third message, rejected by staff for a plain reason: its stamp comes back.
    phone.text("MENU")
    phone.text("N")
    phone.text("TX")
    phone.text("07654321")
    phone.send("yes")
    phone.text("2")
    phone.send("Hello Ana.")
    phone.text("DONE")
    phone.text("SEND")
    drain(rt)
    with rt.db.session() as session:
        third = session.scalars(select(Message.ref).order_by(Message.id.desc())).first()
    act(rt, third, "reject", "wrong_person")
    drain(rt)

    texts = sent_to(twilio, phone.number)
    assert (
        f"Mountain View Unit says {third} was for someone else. Your 1 stamp is back:"
        in (texts[-1])
    )
    expected_starts = [
        f"Huntsville Unit refused a photo in {ref}",
        f"Delivered: your message {ref} reached Ana",
        "Ana replied (",
        "could not be delivered: Ana was moved",
        "Ana was moved to Lane Murray Unit",
    ]
    for start in expected_starts:
        matching = [t for t in texts if start in t]
        assert len(matching) == 1, (start, texts)
    assert "with a long letter. Read it here: https://kinline.test/r/" in next(
        t for t in texts if t.startswith("Ana replied (")
    )
    assert len(texts) == len(set(texts))  # nothing twice
