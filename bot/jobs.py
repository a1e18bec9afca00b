"""RQ job functions and the helpers that enqueue them (after the SQL commit)."""

from __future__ import annotations

import logging

from rq import Retry
from rq.exceptions import DuplicateJobError
from sqlalchemy import select

from bot import runtime
from bot.runtime import Runtime
from bot.store.models import Account, InboundSms, OutboundSms, utcnow

logger = logging.getLogger(__name__)


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
    """Queue the handling of texts no webhook finished with (a web process died).

    Returns:
        How many conversations were queued.
    """
    from bot.engine import TWIML_DEADLINE

    cutoff = utcnow() - TWIML_DEADLINE
    with rt.db.session() as session:
        pairs = session.execute(
            select(InboundSms.from_number, InboundSms.to_number)
            .where(InboundSms.processed_at.is_(None), InboundSms.received_at < cutoff)
            .distinct()
        ).all()
    for from_number, to_number in pairs:
        enqueue_pending(rt, from_number, to_number)
    return len(pairs)
