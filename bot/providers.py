"""Where messages go for review and delivery: the embedded facility desk, or a provider's
HTTP API. Both feed the same lifecycle (``bot.delivery``)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import requests
from rq import Retry
from rq.exceptions import DuplicateJobError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import delivery, i18n, notify, sms
from bot.runtime import Runtime
from bot.store.models import Account, Facility, Message, Reply, utcnow

logger = logging.getLogger(__name__)


class Provider(Protocol):
    """Hands a queued message to the facility's review."""

    name: str

    def submit(
        self, rt: Runtime, session: Session, outbox: delivery.Outbox, message: Message
    ) -> None:
        """Submit the message; raise to have the job retried."""
        ...


class EmbeddedProvider:
    """The facility desk in this app: a submitted message waits in the staff review queue."""

    name = "embedded"

    def submit(
        self, rt: Runtime, session: Session, outbox: delivery.Outbox, message: Message
    ) -> None:
        """Put the message in the facility's review queue."""
        delivery.advance(rt, session, outbox, message, "submit")
        delivery.advance(rt, session, outbox, message, "review")


def sign(secret: str, body: bytes) -> str:
    """``X-Kinline-Signature``: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpProvider:
    """A provider's API: messages are POSTed to ``PROVIDER_URL``, events come back signed."""

    name = "http"

    def submit(
        self, rt: Runtime, session: Session, outbox: delivery.Outbox, message: Message
    ) -> None:
        """POST the message; a 2xx answer means the provider has it."""
        settings = rt.settings
        assert settings.provider_url and settings.provider_secret
        payload = {
            "id": message.ref,
            "facility_id": message.facility_id,
            "state": message.state,
            "inmate_id": message.inmate.inmate_id,
            "inmate_name": message.inmate.full_name,
            "body": message.body,
            "attachments": [
                {"id": a.id, "content_type": a.content_type, "size_bytes": a.size_bytes}
                for a in message.attachments
                if a.status == "stored"
            ],
            "created_at": message.created_at.isoformat(),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = requests.post(
            f"{settings.provider_url.rstrip('/')}/messages",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Kinline-Signature": sign(settings.provider_secret, body),
                "Idempotency-Key": f"message-{message.ref}",
            },
            timeout=(5, 20),
        )
        if response.status_code >= 300:
            raise RuntimeError(f"provider answered {response.status_code} for {message.ref}")
        delivery.advance(rt, session, outbox, message, "submit")


def provider_for(rt: Runtime) -> Provider:
    """The configured provider."""
    return HttpProvider() if rt.settings.provider == "http" else EmbeddedProvider()


# --- mail runs ------------------------------------------------------------------------


def run_times(facility: Facility) -> list[time]:
    """A facility's mail runs as local times of day."""
    return [time.fromisoformat(part) for part in facility.mail_runs.split(";") if part.strip()]


def next_run(facility: Facility, now: datetime) -> datetime | None:
    """The next mail run after ``now``, in UTC (None when the facility has none)."""
    zone = ZoneInfo(facility.timezone)
    today = now.astimezone(zone).date()
    for days in range(0, 3):
        day = today + timedelta(days=days)
        for at in sorted(run_times(facility)):
            # Compared in UTC: local wall-clock times repeat or vanish on DST change days.
            candidate = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
            if candidate > now:
                return candidate.astimezone(now.tzinfo)
    return None


def schedule_mail_run(rt: Runtime, facility: Facility, now: datetime | None = None) -> str | None:
    """Make sure the facility's next mail run is scheduled; a second call is refused.

    Returns:
        The job id, or None when the facility has no runs.
    """
    from bot import jobs

    if rt.settings.provider != "embedded":
        return None
    at = next_run(facility, now or utcnow())
    if at is None:
        return None
    job_id = f"mailrun-{facility.id}-{at:%Y%m%dT%H%M}"
    with contextlib.suppress(DuplicateJobError):  # scheduled already: once is enough
        rt.queue.enqueue_at(
            at, jobs.mail_run, facility.id, job_id=job_id, unique=True, retry=MAIL_RUN_RETRY
        )
    return job_id


MAIL_RUN_RETRY = Retry(max=3, interval=[30, 120, 600])


def ensure_mail_runs(rt: Runtime) -> int:
    """Schedule every facility's next run (at worker start: any number of workers may)."""
    with rt.db.session() as session:
        facilities = session.scalars(select(Facility).where(Facility.emessages.is_(True))).all()
    return sum(1 for facility in facilities if schedule_mail_run(rt, facility))


def deliver_approved(rt: Runtime, facility_id: str, at: datetime | None = None) -> int:
    """A mail run: every approved message of the facility is delivered now."""
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        messages = session.scalars(
            select(Message)
            .where(Message.facility_id == facility_id, Message.status == "approved")
            .order_by(Message.id)
        ).all()
        moved = sum(
            delivery.advance(rt, session, outbox, message, "deliver", at=at) == "applied"
            for message in messages
        )
        session.commit()
    outbox.send(rt)
    return moved


# --- replies --------------------------------------------------------------------------

REPLY_SEGMENTS = 10


def record_reply(
    rt: Runtime,
    session: Session,
    outbox: delivery.Outbox,
    message: Message,
    body: str,
    source_key: str,
) -> Reply | None:
    """A reply from the person to a message: kept, and texted to the family (whole up to
    ten segments, else a signed link to read it)."""
    if session.scalar(select(Reply.id).where(Reply.source_key == source_key)) is not None:
        return None
    if not message.facility.replies:
        logger.warning("reply to %s from a facility without replies", message.ref)
    reply = Reply(
        message_id=message.id,
        account_id=message.account_id,
        inmate_pk=message.inmate_pk,
        ref=new_reply_ref(session),
        body=body,
        source_key=source_key,
    )
    session.add(reply)
    session.flush()
    account = session.get(Account, message.account_id)
    assert account is not None
    first = message.inmate.first_name
    text = i18n.text(account.language, "delivery.reply", first=first, ref=reply.ref, body=body)
    if sms.segment_count(text) > REPLY_SEGMENTS:
        url = reply_link(rt, reply)
        text = i18n.text(
            account.language, "delivery.reply_link", first=first, ref=reply.ref, url=url
        )
    out = notify.queue_text(session, rt, account, text, f"reply:{reply.id}")
    if out is not None:
        outbox.texts.append(out)
    return reply


def new_reply_ref(session: Session) -> str:
    """A short reference for a reply, like a message's."""
    from flows.compose import REF_ALPHABET

    while True:
        ref = "".join(secrets.choice(REF_ALPHABET) for _ in range(5))
        if session.scalar(select(Reply.id).where(Reply.ref == ref)) is None:
            return ref


def reply_link(rt: Runtime, reply: Reply) -> str:
    """A signed link to read a long reply (it works for 30 days)."""
    from itsdangerous import URLSafeTimedSerializer

    token = URLSafeTimedSerializer(rt.settings.secret_key, salt="kinline-reply").dumps(reply.id)
    return f"{rt.settings.public_base_url}/r/{token}"


def read_reply_link(rt: Runtime, token: str, max_age: int = 30 * 86400) -> int | None:
    """The reply id a link stands for, or None when it is not valid or too old."""
    from itsdangerous import BadSignature, URLSafeTimedSerializer

    try:
        value: Any = URLSafeTimedSerializer(rt.settings.secret_key, salt="kinline-reply").loads(
            token, max_age=max_age
        )
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


# --- events from an HTTP provider -----------------------------------------------------

EVENT_TYPES = {
    "message.in_review": "review",
    "message.approved": "approve",
    "message.delivered": "deliver",
    "message.read": "read",
    "message.rejected": "reject",
    "message.returned": "return",
}
FORWARD = ["submit", "review", "approve", "deliver", "read"]
OTHER_EVENTS = ("attachment.rejected", "message.reply", "person.transferred", "person.released")


class EventError(ValueError):
    """A provider event we cannot apply; ``status`` is the HTTP answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def verify(rt: Runtime, body: bytes, signature: str | None) -> bool:
    """Check ``X-Kinline-Signature`` (hex HMAC-SHA256 of the raw body)."""
    secret = rt.settings.provider_secret
    if not secret or not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().lower().encode())


def handle_event(rt: Runtime, event: dict[str, Any]) -> str:
    """Apply one provider event, once per event id.

    Returns:
        ``applied``, ``repeat``, ``refused`` (impossible from where the message is) or
        ``duplicate`` (this event id was applied before).

    Raises:
        EventError: For an event that is malformed (400) or names nothing we know (404).
    """
    from bot.store.models import Attachment, Inmate, ProviderEvent

    kind = event.get("type")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise EventError(400, "id must be a non-empty string")
    if kind not in EVENT_TYPES and kind not in OTHER_EVENTS:
        raise EventError(400, f"unknown type {kind!r}")
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        session.add(ProviderEvent(provider="http", event_id=event_id, kind=str(kind)))
        try:
            # The unique (provider, event_id) decides: a copy seen before fails here, and a
            # concurrent copy waits here for the first to commit, then fails.
            session.flush()
        except IntegrityError:
            session.rollback()
            return "duplicate"
        result = "applied"
        if kind in ("person.transferred", "person.released"):
            inmate = session.scalars(
                select(Inmate)
                .where(
                    Inmate.state == str(event.get("state", "")).upper(),
                    Inmate.inmate_id == str(event.get("inmate_id", "")),
                )
                .with_for_update(of=Inmate)  # one move at a time per person (PostgreSQL)
            ).first()
            if inmate is None:
                raise EventError(404, "no such person")
            if kind == "person.released":
                result = "applied" if inmate.status != "released" else "repeat"
                delivery.release(rt, session, outbox, inmate)
            else:
                facility = session.get(Facility, str(event.get("facility_id", "")))
                if facility is None or facility.state != inmate.state:
                    raise EventError(400, "facility_id must be a facility in the person's state")
                result = "applied" if inmate.facility_id != facility.id else "repeat"
                delivery.transfer(rt, session, outbox, inmate, facility)
        else:
            message = session.scalars(
                select(Message)
                .where(Message.ref == str(event.get("message_id", "")))
                .with_for_update(of=Message)  # one event at a time per message (PostgreSQL)
            ).first()
            if message is None:
                raise EventError(404, "no such message")
            reason = event.get("reason")
            if kind == "message.rejected" and reason not in delivery.REJECTION_REASONS:
                raise EventError(
                    400, f"reason must be one of {', '.join(delivery.REJECTION_REASONS)}"
                )
            if kind == "message.returned" and reason not in delivery.RETURN_REASONS:
                raise EventError(400, f"reason must be one of {', '.join(delivery.RETURN_REASONS)}")
            if kind in EVENT_TYPES:
                at = _when(event.get("occurred_at"))
                trigger = EVENT_TYPES[kind]
                result = delivery.advance(rt, session, outbox, message, trigger, reason, at)
                if result == "refused" and trigger in FORWARD:
                    # A provider may skip steps we would report (delivered straight after
                    # submitted, say): the earlier steps are implied.
                    for step in FORWARD[: FORWARD.index(trigger)]:
                        delivery.advance(rt, session, outbox, message, step, None, at)
                    result = delivery.advance(rt, session, outbox, message, trigger, reason, at)
            elif kind == "attachment.rejected":
                attachment = session.get(Attachment, event.get("attachment_id"))
                if attachment is None or attachment.message_id != message.id:
                    raise EventError(404, "no such attachment on this message")
                if reason not in (None, *delivery.REJECTION_REASONS):
                    raise EventError(400, "reason must be one of the rejection reasons")
                done = delivery.reject_attachment(
                    rt, session, outbox, message, attachment, str(reason or "not_allowed")
                )
                result = "applied" if done else "repeat"
            else:
                body = event.get("body")
                if not isinstance(body, str) or not body.strip() or len(body) > 6000:
                    raise EventError(400, "body must be 1 to 6000 characters")
                reply = record_reply(rt, session, outbox, message, body, f"http:{event_id}")
                result = "applied" if reply else "repeat"
        session.commit()
    outbox.send(rt)
    return result


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(400, "occurred_at must be ISO 8601 with a time zone") from None
    if parsed.tzinfo is None:
        raise EventError(400, "occurred_at must have a time zone")
    return parsed
