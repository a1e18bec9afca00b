"""RQ job functions and the helpers that enqueue them (after the SQL commit)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from sqlalchemy import select, update

from bot import i18n, media, runtime, sms, stamps, wording
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
from bot.transport import SendError, classify

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


SMS_RETRY = Retry(max=6, interval=[5, 15, 60, 300, 900, 1800])
# A send job holds its text's lock through the wait for its slot (at most the pace's
# max_wait, 60 s), a look at Twilio and the send (15 s connect + 15 s read each): never
# long enough for another copy of the job to start on the same text.
SMS_LOCK_SECONDS = 240


def enqueue_sms(
    rt: Runtime, out: OutboundSms, at: datetime | None = None, fresh: bool = False
) -> None:
    """Queue the sending of a committed outbound row (now, or at ``at``).

    The job id is the row's (plus the time for a deferred send), so a second enqueue of
    the same send is refused; the job itself checks the row before doing anything.
    Notifications go to the bulk queue, behind every answer.
    """
    if fresh:  # a sweep: the first job may have failed for good and still hold its id
        at = at or utcnow()
    queue = rt.bulk_queue if out.kind == "notification" else rt.queue
    # The row keeps the outcome; RQ need not keep a result per text.
    options: dict[str, Any] = {"unique": True, "retry": SMS_RETRY, "result_ttl": 0}
    try:
        if at is None:
            queue.enqueue(send_sms, out.id, job_id=f"sms-{out.id}", **options)
        else:
            job_id = f"sms-{out.id}-at-{at:%Y%m%dT%H%M%S%f}"
            queue.enqueue_at(at, send_sms, out.id, job_id=job_id, **options)
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
    """Send one outbound text, once, at an allowed time and pace.

    Opted-out and unreachable numbers are never texted (the STOP and HELP answers
    excepted); notifications wait out the recipient's quiet hours; every text gets a slot
    in the sender's schedule (``bot.pace``: ``TWILIO_MPS`` segments per second across every
    worker) and the job waits for it before it sends (about workers x segments / rate
    seconds; past a minute the job comes back later instead). The row is marked
    ``sending`` before the provider is called and gets the SID after: a job that finds a row
    left ``sending`` (its worker died) asks the provider whether the text went out before
    sending it again. Transient errors raise, for RQ to retry with backoff.

    Returns:
        What happened: the row's status, or ``deferred`` / ``paced`` / ``busy``.
    """
    from bot import pace, quiet

    rt = runtime.current()
    lock = rt.redis.lock(
        f"kinline:sms-lock:{outbound_id}", timeout=SMS_LOCK_SECONDS, blocking=False
    )
    if not lock.acquire():
        # Another job is on this very text, or one died holding the lock: look again
        # once the lock has run out.
        with rt.db.session() as session:
            out = session.get(OutboundSms, outbound_id)
            if out is not None and out.status in ("queued", "sending"):
                later = utcnow() + timedelta(seconds=SMS_LOCK_SECONDS + 10)
                enqueue_sms(rt, out, at=later)
        return "busy"
    try:
        with rt.db.session() as session:
            out = session.get(OutboundSms, outbound_id)
            if out is None:
                logger.error("outbound %s does not exist", outbound_id)
                return "missing"
            if out.status not in ("queued", "sending"):
                return out.status
            account = session.scalars(select(Account).where(Account.phone == out.to_number)).first()
            if account is not None and out.kind != "compliance":
                if account.opted_out_at is not None:
                    return _finish(session, out, "suppressed")
                if account.unreachable_at is not None:
                    return _finish(session, out, "unreachable")
            now = rt.clock()
            if out.kind == "notification" and rt.settings.quiet_hours:
                allowed = quiet.next_allowed(out.to_number, now)
                if allowed is not None:
                    enqueue_sms(rt, out, at=allowed)
                    return "deferred"
            if out.status == "sending" and out.attempted_at is not None:
                known = {
                    str(sid)
                    for sid in session.scalars(
                        select(OutboundSms.provider_sid).where(
                            OutboundSms.to_number == out.to_number,
                            OutboundSms.provider_sid.is_not(None),
                        )
                    )
                }
                sid = rt.sender.find(out.to_number, out.body, out.attempted_at, known)
                if sid is not None:  # it went out before the worker died
                    out.provider_sid = sid
                    return _finish(session, out, "sent")
            # A slot last, just before the send: nothing slow between the two.
            reserved, wait = pace.Pace(rt.redis, rt.settings.twilio_mps).reserve(
                out.from_number, sms.segment_count(out.body) or 1
            )
            if not reserved:  # the sender is booked further ahead than a worker waits
                enqueue_sms(rt, out, at=now + timedelta(seconds=wait))
                return "paced"
            slot = time.monotonic() + wait
            out.status = "sending"
            out.attempted_at = now
            out.attempts += 1
            session.commit()
            to, body, sender = out.to_number, out.body, out.from_number
        time.sleep(max(slot - time.monotonic(), 0.0))  # our slot: a short wait, in order
        try:
            sid = rt.sender.send(to, body, sender, status_callback(rt, outbound_id))
        except SendError as error:
            return _failed(rt, outbound_id, error)
        with rt.db.session() as session:
            # One UPDATE, unless a status callback beat Twilio's answer and moved the row
            # on already (it noted the SID, or reset the row for a resend).
            session.execute(
                update(OutboundSms)
                .where(OutboundSms.id == outbound_id, OutboundSms.status == "sending")
                .values(provider_sid=sid, status="sent", updated_at=utcnow())
            )
            session.commit()
            return "sent"
    finally:
        lock.release()


def status_callback(rt: Runtime, outbound_id: int) -> str | None:
    """Where Twilio reports delivery statuses (only when Twilio is configured). The row id
    rides along (Twilio signs the query too), so a callback that beats the SID still finds
    its text."""
    if rt.settings.console_mode:
        return None
    return f"{rt.settings.public_base_url}/sms/status?o={outbound_id}"


def _finish(session: Any, out: OutboundSms, status: str) -> str:
    out.status = status
    out.updated_at = utcnow()
    session.commit()
    return status


def _failed(rt: Runtime, outbound_id: int, error: SendError) -> str:
    """Record a provider error: retry what may pass later, stop for good otherwise."""
    with rt.db.session() as session:
        out = session.get(OutboundSms, outbound_id)
        assert out is not None
        out.error_code = error.code
        if error.kind == "transient":
            out.status = "queued"  # nothing went out: the retry sends it
            session.commit()
            raise error
        if error.kind == "ambiguous":
            session.commit()  # stays "sending": the retry asks Twilio before sending again
            raise error
        account = session.scalars(select(Account).where(Account.phone == out.to_number)).first()
        if account is not None and error.kind == "opted_out":
            account.opted_out_at = account.opted_out_at or utcnow()
        if account is not None and error.kind == "unreachable":
            account.unreachable_at = account.unreachable_at or utcnow()
        logger.warning("outbound %s not sent: %s", outbound_id, error)
        return _finish(session, out, "failed" if error.kind != "unreachable" else "unreachable")


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
    stamp = f"{utcnow():%Y%m%dT%H%M%S}"  # sweeps use their own job ids: a failed job keeps its id
    for out in texts:
        enqueue_sms(rt, out, fresh=True)
    for attachment_id in photos:
        job_id = f"media-{attachment_id}-sweep-{stamp}"
        enqueue_later(rt, Later("fetch_media", (attachment_id,), job_id=job_id))
    for message_id in messages:
        job_id = f"submit-{message_id}-sweep-{stamp}"
        enqueue_later(rt, Later("submit_message", (message_id,), job_id=job_id))
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
            session, rt, account, body, f"tally:{draft.id}:{fragment}", draft.to_number, "response"
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
        out = notify.queue_text(
            session, rt, account, body, key, attachment.draft.to_number, "response"
        )
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
    if rt.settings.provider != "embedded":
        return 0  # with a provider's API, the provider says when a message is delivered
    with rt.db.session() as session:
        facility = session.get(Facility, facility_id)
    if facility is not None:  # the next run first: a failure here must not end the runs
        providers.schedule_mail_run(rt, facility, utcnow() + timedelta(minutes=1))
    return providers.deliver_approved(rt, facility_id)


LATER: dict[str, Callable[..., Any]] = {
    "tally": tally,
    "fetch_media": fetch_media,
    "submit_message": submit_message,
}
RETRIED = {
    "fetch_media": Retry(max=3, interval=[5, 30, 120]),
    "submit_message": Retry(max=8, interval=[10, 30, 60, 300, 900, 1800, 3600, 3600]),
}


STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
TWILIO_STATUSES = {
    "accepted": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
MAX_ATTEMPTS = 3


def record_status(
    rt: Runtime,
    sid: str,
    twilio_status: str,
    error_code: str | None,
    outbound_id: int | None = None,
) -> str:
    """Apply a Twilio status callback; statuses may come late or out of order.

    A text the carrier could not deliver for a passing reason is sent again (a few
    times); a number the carrier says is gone is marked unreachable.

    Returns:
        What happened: ``updated``, ``stale``, ``unknown`` or ``resent``.
    """
    status = TWILIO_STATUSES.get(twilio_status.lower())
    if status is None:
        return "stale"
    with rt.db.session() as session:
        out = session.scalars(select(OutboundSms).where(OutboundSms.provider_sid == sid)).first()
        if out is None and outbound_id is not None:
            out = session.get(OutboundSms, outbound_id)
            if out is not None and out.provider_sid not in (None, sid):
                out = None
            if out is not None:
                out.provider_sid = sid  # the callback came before the API's answer
        if out is None:
            return "unknown"
        if (
            STATUS_RANK.get(status, 0) <= STATUS_RANK.get(out.status, 0)
            or out.status not in STATUS_RANK
        ):
            return "stale"
        out.status = status
        out.error_code = error_code or out.error_code
        out.updated_at = utcnow()
        kind = classify(error_code, None) if status in ("undelivered", "failed") else None
        account = session.scalars(select(Account).where(Account.phone == out.to_number)).first()
        if kind == "unreachable" and account is not None:
            account.unreachable_at = account.unreachable_at or utcnow()
        if kind == "opted_out" and account is not None:
            account.opted_out_at = account.opted_out_at or utcnow()
        resend = kind == "transient" and out.attempts < MAX_ATTEMPTS
        if resend:
            out.status = "queued"
            out.provider_sid = None
        session.commit()
    if resend:
        backoff = timedelta(seconds=60 * 2 ** (out.attempts - 1))
        enqueue_sms(rt, out, at=utcnow() + backoff)
        return "resent"
    return "updated"


MAINTENANCE_EVERY = timedelta(minutes=5)


def schedule_maintenance(rt: Runtime, after: datetime | None = None) -> None:
    """Make sure the next maintenance run is scheduled (one per 5-minute slot, however many
    workers ask)."""
    now = after or utcnow()
    step = int(MAINTENANCE_EVERY.total_seconds())
    slot = datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, tz=now.tzinfo)
    job_id = f"maintenance-{slot:%Y%m%dT%H%M}"
    with contextlib.suppress(DuplicateJobError):  # another worker scheduled it already
        rt.queue.enqueue_at(slot, maintenance, job_id=job_id, unique=True)


def maintenance() -> int:
    """Every few minutes: queue again what lost jobs left behind, make sure every facility's
    next mail run is scheduled, and schedule the next maintenance."""
    from bot import providers

    rt = runtime.current()
    schedule_maintenance(rt)
    providers.ensure_mail_runs(rt)
    return sweep_stale(rt)
