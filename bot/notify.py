"""Texts the service sends on its own (not as a reply): written to SQL, then queued."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import i18n, jobs, sms
from bot.runtime import Runtime
from bot.store.models import Account, OutboundSms

logger = logging.getLogger(__name__)


def queue_text(
    session: Session,
    rt: Runtime,
    account: Account,
    body: str,
    idempotency_key: str,
    from_number: str | None = None,
    kind: str = "notification",
) -> OutboundSms | None:
    """Add an outbound text in the caller's transaction, once per ``idempotency_key``.

    The caller commits, then passes the row to ``jobs.enqueue_sms``. ``kind`` is
    ``notification`` (news the person did not just ask for: quiet hours apply) or
    ``response`` (an answer to what they just did, like a tally: sent at once).

    Returns:
        The new row, or None when the key was used before or the number opted out.
    """
    if account.opted_out_at is not None:
        return None
    exists = session.scalar(
        select(OutboundSms.id).where(OutboundSms.idempotency_key == idempotency_key)
    )
    if exists is not None:
        logger.info("text %s already queued", idempotency_key)
        return None
    out = OutboundSms(
        idempotency_key=idempotency_key,
        to_number=account.phone,
        from_number=from_number or rt.settings.bot_number,
        body=sms.printable(body),
        kind=kind,
        status="queued",
    )
    session.add(out)
    session.flush()
    return out


def send_text(rt: Runtime, phone: str, key: str, idempotency_key: str, **values: object) -> bool:
    """Queue a catalog text for ``phone`` in their language, once per ``idempotency_key``.

    Args:
        rt: The process's resources.
        phone: The recipient in E.164.
        key: The catalog entry.
        idempotency_key: What makes this text unique (a second call with it does nothing).
        **values: The entry's placeholders.

    Returns:
        True when a text was queued, False when it was already or the number opted out.
    """
    with rt.db.session() as session:
        account = session.scalars(select(Account).where(Account.phone == phone)).first()
        if account is None:
            return False
        body = i18n.text(account.language, key, **values)
        out = queue_text(session, rt, account, body, idempotency_key)
        if out is None:
            return False
        try:
            session.commit()
        except IntegrityError:  # the same key, committed by someone else meanwhile
            session.rollback()
            return False
    jobs.enqueue_sms(rt, out)
    return True
