"""A message's life after SEND, as a state machine with a history, and what each step does.

``queued -> submitted -> in_review -> approved -> delivered (-> read)``, or ``rejected``
(by staff, with a reason) or ``returned`` (the person was transferred, released or
restricted). Events may come late, twice or out of order: a repeat is a no-op, an
impossible step is refused and logged. Each step that the family should hear about queues
one text, keyed by message and step, in the same transaction; refunds follow the policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from transitions import Machine, MachineError

from bot import i18n, jobs, notify, stamps, wording
from bot.flow import Later
from bot.runtime import Runtime
from bot.store.models import (
    Account,
    Attachment,
    Contact,
    DirectoryEvent,
    Facility,
    Inmate,
    Message,
    MessageEvent,
    OutboundSms,
    utcnow,
)

logger = logging.getLogger(__name__)

STATUSES = [
    "queued",
    "submitted",
    "in_review",
    "approved",
    "delivered",
    "read",
    "rejected",
    "returned",
]
OPEN = ("queued", "submitted", "in_review", "approved")

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger     source                                       destination
    ("submit",    "queued",                                    "submitted"),
    ("review",    "submitted",                                 "in_review"),
    ("approve",   ["submitted", "in_review"],                  "approved"),
    ("deliver",   "approved",                                  "delivered"),
    ("read",      "delivered",                                 "read"),
    ("reject",    ["submitted", "in_review"],                  "rejected"),
    ("return",    list(OPEN),                                  "returned"),
]  # fmt: skip

DESTINATION = {trigger: dest for trigger, _, dest in TRANSITIONS}

# Staff rejection reasons (desk and provider), and whether the policy refunds them.
REJECTION_REASONS = ("content", "wrong_person", "not_allowed", "other")
RETURN_REASONS = ("transferred", "released", "restricted", "no_service")


@dataclass
class _Position:
    """What the machine moves: just a status (the machine is built once, without models)."""

    state: str


_MACHINE = Machine(
    model=None,
    states=STATUSES,
    transitions=[{"trigger": t, "source": s, "dest": d} for t, s, d in TRANSITIONS],
    initial="queued",
    auto_transitions=False,
)


@dataclass
class Outbox:
    """Texts and jobs a change produced, sent once the transaction commits."""

    texts: list[OutboundSms] = field(default_factory=list)
    jobs: list[Later] = field(default_factory=list)

    def send(self, rt: Runtime) -> None:
        """Queue everything (call after commit)."""
        for out in self.texts:
            jobs.enqueue_sms(rt, out)
        for later in self.jobs:
            jobs.enqueue_later(rt, later)


def advance(
    rt: Runtime,
    session: Session,
    outbox: Outbox,
    message: Message,
    trigger: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> str:
    """Move a message along ``trigger`` and do what the new status calls for.

    Returns:
        ``applied``, ``repeat`` (already there: nothing done) or ``refused`` (impossible
        from where it is: logged, nothing done).
    """
    destination = DESTINATION[trigger]
    if message.status == destination:
        return "repeat"
    position = _Position(message.status)
    try:
        _MACHINE.events[trigger].trigger(position)
    except MachineError:
        logger.warning(
            "message %s: refused %s from %s (%s)", message.ref, trigger, message.status, reason
        )
        return "refused"
    at = at or utcnow()
    # Compare and set: of two concurrent steps from the same status only one wins.
    changed = session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status == message.status)
        .values(status=position.state)
    )
    if not getattr(changed, "rowcount", 0):
        session.refresh(message)
        return "repeat" if message.status == destination else "refused"
    message.status = position.state
    message.updated_at = at
    if reason:
        message.reason = reason
    session.add(MessageEvent(message_id=message.id, status=position.state, reason=reason, at=at))
    if destination == "delivered":
        message.delivered_at = at
        tell(rt, session, outbox, message, "delivered", when=at)
    elif destination == "rejected":
        back = refund_for(rt, session, message, "rejected", reason or "other")
        tell(rt, session, outbox, message, f"rejected.{reason or 'other'}", refunded=back)
    elif destination == "returned":
        back = refund_for(rt, session, message, "returned", reason or "no_service")
        tell(rt, session, outbox, message, f"returned.{reason or 'no_service'}", refunded=back)
    return "applied"


def refund_for(rt: Runtime, session: Session, message: Message, kind: str, reason: str) -> int:
    """Give back what the policy says for a message that will not be delivered.

    By default every stamp comes back, except for content rejected by staff.

    Returns:
        How many stamps came back now.
    """
    if kind == "rejected" and reason == "content" and not rt.settings.refund_content_rejections:
        return 0
    code = "rejected" if kind == "rejected" else reason.replace("_", "-")
    left = stamps.refundable(session, message)
    if left <= 0:
        return 0
    return left if stamps.refund(session, message, left, code) else 0


def reject_attachment(
    rt: Runtime,
    session: Session,
    outbox: Outbox,
    message: Message,
    attachment: Attachment,
    reason: str,
) -> bool:
    """Refuse one photo of a message and pass the rest; its own stamp comes back.

    Returns:
        True when the attachment was refused now (False: it was already).
    """
    if attachment.message_id != message.id or attachment.status != "stored":
        return False  # not part of what was paid for, or refused already
    if message.status not in ("submitted", "in_review"):
        logger.warning("message %s: too late to refuse an attachment", message.ref)
        return False
    # One change to this message at a time, so the refund cap below holds (PostgreSQL).
    session.execute(select(Message.id).where(Message.id == message.id).with_for_update())
    attachment.status = "rejected"
    attachment.reason = reason
    per = rt.settings.stamps_per_attachment
    back = 0
    refundable = per and stamps.refundable(session, message) >= per
    if refundable and stamps.refund(
        session, message, per, "rejected-attachment", str(attachment.id)
    ):
        back = per
    session.add(
        MessageEvent(message_id=message.id, status=message.status, reason=f"attachment:{reason}")
    )
    tell(rt, session, outbox, message, "photo_rejected", refunded=back, key=f"att{attachment.id}")
    return True


def transfer(
    rt: Runtime, session: Session, outbox: Outbox, inmate: Inmate, facility: Facility
) -> int:
    """The person was moved: contacts follow; messages on their way follow too when the new
    facility takes e-messages, else they come back with their stamps.

    Returns:
        How many messages were returned.
    """
    if facility.state != inmate.state:
        raise ValueError(f"{facility.id} is not in {inmate.state}")
    if inmate.facility_id == facility.id:
        return 0
    before = inmate.facility_id
    inmate.facility_id = facility.id
    move = DirectoryEvent(
        inmate_pk=inmate.id, kind="transfer", from_facility=before, to_facility=facility.id
    )
    session.add(move)
    session.flush()
    session.refresh(inmate)
    returned = 0
    for message in open_messages(session, inmate):
        if facility.emessages:
            message.facility_id = facility.id
            session.add(
                MessageEvent(message_id=message.id, status=message.status, reason="transferred")
            )
        elif advance(rt, session, outbox, message, "return", "transferred") == "applied":
            returned += 1
    for contact in contacts_of(session, inmate):
        key = "moved" if facility.emessages else "moved_no_service"
        tell_account(
            rt, session, outbox, contact.account, key, f"moved:{inmate.id}:{move.id}",
            first=inmate.first_name, facility=facility.name,
        )  # fmt: skip
    return returned


def release(rt: Runtime, session: Session, outbox: Outbox, inmate: Inmate) -> int:
    """The person was released: messages on their way come back with their stamps."""
    if inmate.status == "released":
        return 0
    inmate.status = "released"
    session.add(
        DirectoryEvent(inmate_pk=inmate.id, kind="released", from_facility=inmate.facility_id)
    )
    returned = 0
    for message in open_messages(session, inmate):
        if advance(rt, session, outbox, message, "return", "released") == "applied":
            returned += 1
    return returned


def apply_moves(
    rt: Runtime, session: Session, outbox: Outbox, moves: list[tuple[int, str | None]]
) -> None:
    """Carry out the transfers and releases a directory import found."""
    for inmate_pk, facility_id in moves:
        inmate = session.get(Inmate, inmate_pk)
        if inmate is None:
            continue
        if facility_id is None:
            release(rt, session, outbox, inmate)
        else:
            facility = session.get(Facility, facility_id)
            if facility is not None:
                transfer(rt, session, outbox, inmate, facility)


def open_messages(session: Session, inmate: Inmate) -> list[Message]:
    """A person's messages not delivered, rejected or returned yet."""
    return list(
        session.scalars(
            select(Message)
            .where(Message.inmate_pk == inmate.id, Message.status.in_(OPEN))
            .order_by(Message.id)
        )
    )


def contacts_of(session: Session, inmate: Inmate) -> list[Contact]:
    """Every account that has this person on its list."""
    return list(
        session.scalars(
            select(Contact).where(Contact.inmate_pk == inmate.id, Contact.removed_at.is_(None))
        )
    )


# --- texts to the family ----------------------------------------------------------------


def local_time(language: str, phone: str, at: datetime) -> str:
    """``Tue 6:02 PM`` in the family member's time zone, in plain characters."""
    from bot import quiet

    zone, _ = quiet.recipient_zone(phone)
    return wording.moment(language, at, zone)


def tell(
    rt: Runtime,
    session: Session,
    outbox: Outbox,
    message: Message,
    event: str,
    *,
    when: datetime | None = None,
    refunded: int = 0,
    key: str = "",
) -> None:
    """Queue the text about a message's step for the family member who sent it."""
    account = session.get(Account, message.account_id)
    assert account is not None
    language = account.language
    values: dict[str, Any] = {
        "ref": message.ref,
        "first": message.inmate.first_name,
        "facility": message.facility.name,
    }
    if when is not None:
        values["time"] = local_time(language, account.phone, when)
    values["back"] = ""
    if refunded:
        have = stamps.balance(session, account.id, message.state)
        wallet = wording.wallet_short(language, message.state, have)
        values["back"] = wording.count(language, "delivery.back", refunded, balance=wallet)
    event_key = f"delivery.{event}"
    body = i18n.text(language, event_key, **values)
    idempotency = f"msg:{message.id}:{event}:{key}"
    out = notify.queue_text(session, rt, account, body, idempotency, from_number=None)
    if out is not None:
        outbox.texts.append(out)


def tell_account(
    rt: Runtime,
    session: Session,
    outbox: Outbox,
    account: Account,
    event: str,
    idempotency: str,
    **values: Any,
) -> None:
    """Queue a text about a person (not one message) to one family member."""
    body = i18n.text(account.language, f"delivery.{event}", **values)
    out = notify.queue_text(session, rt, account, body, f"{idempotency}:{account.id}")
    if out is not None:
        outbox.texts.append(out)


def status_text(session: Session, account: Account) -> str:
    """The STATUS answer: the last three messages and where each is."""
    language = account.language
    messages = session.scalars(
        select(Message).where(Message.account_id == account.id).order_by(Message.id.desc()).limit(3)
    ).all()
    if not messages:
        return i18n.text(language, "status.none")
    lines = []
    for message in messages:
        when = message.delivered_at or message.updated_at
        where = i18n.text(
            language,
            f"status.where.{message.status}",
            time=local_time(language, account.phone, when),
        )
        lines.append(
            i18n.text(
                language,
                "status.line",
                ref=message.ref,
                first=message.inmate.first_name,
                where=where,
            )
        )
    return i18n.text(language, "status.list", lines="\n".join(lines))
