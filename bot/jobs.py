"""RQ job functions and the helpers that enqueue them (after the SQL commit)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from sqlalchemy import select

from bot import i18n, media, runtime, stamps, wording
from bot.flow import Later
from bot.runtime import Runtime
from bot.store.models import (
    Account,
    Attachment,
    Draft,
    InboundSms,
    Message,
    OutboundSms,
    utcnow,
)

logger = logging.getLogger(__name__)


def enqueue_later(rt: Runtime, later: Later) -> None:
    """Queue a job a turn asked for, now or after its delay; a repeated job id is refused."""
    function = LATER[later.job]
    options: dict[str, Any] = {"job_id": later.job_id, "unique": bool(later.job_id)}
    if later.job in RETRIED:
        options["retry"] = RETRIED[later.job]
    try:
        if later.delay:
            rt.queue.enqueue_in(timedelta(seconds=later.delay), function, *later.args, **options)
        else:
            rt.queue.enqueue(function, *later.args, **options)
    except DuplicateJobError:
        logger.info("job %s already queued", later.job_id)


def enqueue_sms(rt: Runtime, out: OutboundSms) -> None:
    """Queue the sending of a committed outbound row; a second enqueue is refused."""
    try:
        rt.queue.enqueue(send_sms, out.id, job_id=f"sms-{out.id}", unique=True)
    except DuplicateJobError:
        logger.info("send job for outbound %s already queued", out.id)


def enqueue_pending(rt: Runtime, from_number: str, to_number: str) -> None:
    """Queue the handling of a conversation's texts that no webhook could take in time."""
    rt.queue.enqueue(
        handle_pending,
        from_number,
        to_number,
        result_ttl=0,
        retry=Retry(max=5, interval=[5, 15, 60]),
    )


def send_sms(outbound_id: int) -> str:
    """Send one outbound text unless it was sent already or the number opted out.

    Returns:
        The row's status afterwards.
    """
    rt = runtime.current()
    with rt.db.session() as session:
        out = session.get(OutboundSms, outbound_id)
        if out is None:
            logger.error("outbound %s does not exist", outbound_id)
            return "missing"
        if out.status not in ("queued", "sending"):
            return out.status
        opted_out = session.scalar(
            select(Account.opted_out_at).where(Account.phone == out.to_number)
        )
        if opted_out is not None and out.kind != "compliance":
            out.status = "suppressed"
            session.commit()
            return out.status
        if out.status == "sending":
            # A worker died between marking and sending; the delivery issue adds the
            # check with the provider before any second attempt.
            logger.warning("outbound %s was left sending; sending again", outbound_id)
        out.status = "sending"
        session.commit()
        sid = rt.sender.send(out.to_number, out.body)
        out.provider_sid = sid
        out.status = "sent"
        out.updated_at = utcnow()
        session.commit()
        return out.status


def handle_pending(from_number: str, to_number: str) -> int:
    """Handle a conversation's unprocessed texts (replies go out through ``send_sms``)."""
    from bot.engine import process_pending

    rt = runtime.current()
    with rt.conversations.lock(from_number, to_number, wait=30) as got:
        if not got:
            raise RuntimeError(f"turn lock for {from_number} still busy; retry")
        return process_pending(rt, from_number, to_number)


def sweep_stale(rt: Runtime) -> int:
    """Queue again what a lost job left behind: texts no webhook finished with, texts to
    send, photos to fetch, messages to hand on (a process died between commit and enqueue,
    or Redis was emptied). Every job checks its row first, so a second copy does nothing.

    Returns:
        How many things were queued.
    """
    from bot.engine import TWIML_DEADLINE

    cutoff = utcnow() - TWIML_DEADLINE
    with rt.db.session() as session:
        pairs = session.execute(
            select(InboundSms.from_number, InboundSms.to_number)
            .where(InboundSms.processed_at.is_(None), InboundSms.received_at < cutoff)
            .distinct()
        ).all()
        texts = session.scalars(
            select(OutboundSms).where(
                OutboundSms.status.in_(("queued", "sending")), OutboundSms.created_at < cutoff
            )
        ).all()
        photos = session.scalars(
            select(Attachment.id).where(
                Attachment.status == "pending", Attachment.created_at < cutoff
            )
        ).all()
        messages = session.scalars(
            select(Message.id).where(Message.status == "queued", Message.created_at < cutoff)
        ).all()
    for from_number, to_number in pairs:
        enqueue_pending(rt, from_number, to_number)
    for out in texts:
        enqueue_sms(rt, out)
    for attachment_id in photos:
        enqueue_later(rt, Later("fetch_media", (attachment_id,), job_id=f"media-{attachment_id}"))
    for message_id in messages:
        enqueue_later(rt, Later("submit_message", (message_id,), job_id=f"submit-{message_id}"))
    return len(pairs) + len(texts) + len(photos) + len(messages)


def tally(draft_id: int, fragment: int) -> str:
    """Text what a draft holds and costs, unless another text arrived since (debounce).

    Each fragment schedules one tally a few seconds later; only the one scheduled by the
    newest fragment finds its number still current, so a burst of texts gets one tally.
    """
    from bot import notify

    rt = runtime.current()
    with rt.db.session() as session:
        draft = session.get(Draft, draft_id)
        if draft is None or draft.status != "open" or draft.fragments != fragment:
            return "stale"
        account = session.get(Account, draft.account_id)
        assert account is not None
        attachments = [a for a in draft.attachments if a.status in ("pending", "stored")]
        if not draft.body and not attachments:
            return "empty"  # nothing kept (a refused photo alone): the refusal said enough
        need = stamps.cost(rt.settings, len(draft.body), len(attachments))
        body = i18n.text(
            account.language,
            "compose.tally",
            size=wording.size(account.language, len(draft.body), attachments),
            stamps=wording.stamp_count(account.language, need),
        )
        out = notify.queue_text(
            session, rt, account, body, f"tally:{draft.id}:{fragment}", draft.to_number
        )
        session.commit()
    if out is not None:
        enqueue_sms(rt, out)
    return "sent"


def fetch_media(attachment_id: int) -> str:
    """Download an MMS attachment, check what it really is, and store it.

    Returns:
        The attachment's status afterwards.
    """
    from bot import notify

    rt = runtime.current()
    with rt.db.session() as session:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.status != "pending":
            return attachment.status if attachment else "missing"
        url = attachment.source_url
    try:
        fetched = media.fetch(rt.settings, url)
    except Exception:
        job = get_current_job()
        if job is not None and job.retries_left:
            raise
        fetched = media.Fetched(None, None, "unreachable")
    with rt.db.session() as session:
        attachment = session.get(Attachment, attachment_id)
        assert attachment is not None
        facility = attachment.draft.inmate.facility
        reason = fetched.reason
        if reason is None and fetched.content_type:
            reason = media.refusal(facility, fetched.content_type)
        if reason is None and fetched.data is not None and fetched.content_type:
            extension = media.PHOTO_TYPES.get(fetched.content_type) or media.VIDEO_TYPES.get(
                fetched.content_type, "bin"
            )
            key = f"{attachment.draft_id}/{attachment.id}.{extension}"
            media.LocalStorage(rt.settings.media_dir).save(key, fetched.data)
            attachment.status = "stored"
            attachment.storage_key = key
            attachment.size_bytes = len(fetched.data)
            attachment.content_type = fetched.content_type
            session.commit()
            return attachment.status
        attachment.status = "refused"
        attachment.reason = reason
        account = session.get(Account, attachment.draft.account_id)
        assert account is not None and reason is not None
        why = i18n.text(
            account.language, f"media.reason.{reason}", mb=rt.settings.max_media_bytes // 2**20
        )
        body = i18n.text(account.language, "compose.media.refused", reason=why)
        key = f"media-refused:{attachment.id}"
        out = notify.queue_text(session, rt, account, body, key, attachment.draft.to_number)
        session.commit()
    if out is not None:
        enqueue_sms(rt, out)
    return "refused"


def submit_message(message_id: int) -> str:
    """Hand a queued message to the facility's review through the configured provider."""
    from bot import delivery, providers

    rt = runtime.current()
    outbox = delivery.Outbox()
    with rt.db.session() as session:
        message = session.get(Message, message_id)
        if message is None:
            return "missing"
        if message.status == "queued":
            providers.provider_for(rt).submit(rt, session, outbox, message)
            session.commit()
        status = message.status
    outbox.send(rt)
    return status


def mail_run(facility_id: str) -> int:
    """A facility's mail run: deliver what staff approved, then schedule the next run."""
    from bot import providers
    from bot.store.models import Facility

    rt = runtime.current()
    delivered = providers.deliver_approved(rt, facility_id)
    with rt.db.session() as session:
        facility = session.get(Facility, facility_id)
    if facility is not None:
        providers.schedule_mail_run(rt, facility, utcnow() + timedelta(minutes=1))
    return delivered


LATER: dict[str, Callable[..., Any]] = {
    "tally": tally,
    "fetch_media": fetch_media,
    "submit_message": submit_message,
}
RETRIED = {
    "fetch_media": Retry(max=3, interval=[5, 30, 120]),
    "submit_message": Retry(max=8, interval=[10, 30, 60, 300, 900, 1800, 3600, 3600]),
}
