"""Texts the service sends on its own (not as a reply): written to SQL, then queued."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot import i18n, jobs
from bot.runtime import Runtime
from bot.store.models import Account, OutboundSms

logger = logging.getLogger(__name__)


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
        if account is None or account.opted_out_at is not None:
            return False
        out = OutboundSms(
            idempotency_key=idempotency_key,
            to_number=phone,
            from_number=rt.settings.bot_number,
            body=i18n.text(account.language, key, **values),
            kind="notification",
            status="queued",
        )
        session.add(out)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            logger.info("text %s already queued", idempotency_key)
            return False
    jobs.enqueue_sms(rt, out)
    return True
