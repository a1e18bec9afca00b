"""Stamps: per-state wallets as an append-only ledger, prices, costs and purchase links.

A balance is the sum of a wallet's ledger rows; every row has an idempotency key, so a
replayed payment or a retried job cannot credit or debit twice.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.store.models import Account, Draft, LedgerEntry, Message, Purchase, utcnow

logger = logging.getLogger(__name__)

PRICES_CSV = Path(__file__).resolve().parent / "data" / "prices.csv"
LINK_SALT = "kinline-buy-link"


@dataclass(frozen=True)
class Bundle:
    """A number of stamps sold together, and its price in cents."""

    stamps: int
    price_cents: int


@functools.cache
def _price_table() -> dict[str, tuple[Bundle, ...]]:
    table: dict[str, list[Bundle]] = {}
    with PRICES_CSV.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            bundle = Bundle(int(row["stamps"]), int(row["price_cents"]))
            table.setdefault(row["state"].strip().upper(), []).append(bundle)
    return {state: tuple(sorted(rows, key=lambda b: b.stamps)) for state, rows in table.items()}


def bundles(state: str) -> tuple[Bundle, ...]:
    """The bundles sold for ``state`` (the default list when the state has none of its own)."""
    table = _price_table()
    return table.get(state.upper(), table["*"])


def money(cents: int) -> str:
    """Dollars as people read them: ``$7.00``."""
    return f"${cents // 100:,}.{cents % 100:02d}"


def cost(settings: Settings, chars: int, attachments: int) -> int:
    """Stamps a message costs: one per ``chars_per_stamp`` characters (at least one),
    plus ``stamps_per_attachment`` for each photo or video."""
    text_stamps = max(1, math.ceil(chars / settings.chars_per_stamp))
    return text_stamps + attachments * settings.stamps_per_attachment


def draft_cost(settings: Settings, draft: Draft) -> int:
    """What a draft costs as it stands (photos refused on the way do not count)."""
    usable = [a for a in draft.attachments if a.status in ("pending", "stored")]
    return cost(settings, len(draft.body), len(usable))


def balance(session: Session, account_id: int, state: str) -> int:
    """Stamps in one wallet: the sum of its ledger rows."""
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.state == state
        )
    )
    return int(total or 0)


def balances(session: Session, account_id: int) -> dict[str, int]:
    """Every wallet of an account that has ever had stamps, by state."""
    rows = session.execute(
        select(LedgerEntry.state, func.sum(LedgerEntry.delta))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.state)
    ).all()
    return {state: int(total) for state, total in rows}


def add_entry(session: Session, entry: LedgerEntry) -> bool:
    """Append a ledger row unless its idempotency key is there already.

    Two transactions racing with one key cannot both commit: the unique key fails the
    second, which rolls back whole and, retried, finds the row.

    Returns:
        True when the row was added.
    """
    exists = session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.idempotency_key == entry.idempotency_key)
    )
    if exists is not None:
        logger.info("ledger row %s exists already", entry.idempotency_key)
        return False
    session.add(entry)
    session.flush()
    return True


def lock_wallets(session: Session, account_id: int) -> None:
    """Hold the account row until commit, so two debits cannot both see the same balance
    (PostgreSQL row lock; SQLite has one writer at a time anyway)."""
    session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


def debit(session: Session, message: Message, draft_id: int) -> bool:
    """Take a message's stamps from its state's wallet, once per draft."""
    return add_entry(
        session,
        LedgerEntry(
            account_id=message.account_id,
            state=message.state,
            delta=-message.stamps,
            kind="debit",
            idempotency_key=f"debit:draft:{draft_id}",
            message_id=message.id,
        ),
    )


def refundable(session: Session, message: Message) -> int:
    """Stamps of a message not refunded yet."""
    refunded = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
            LedgerEntry.message_id == message.id, LedgerEntry.kind == "refund"
        )
    )
    return message.stamps - int(refunded or 0)


def refund(session: Session, message: Message, stamps: int, reason: str, detail: str = "") -> bool:
    """Give stamps of a message back to its wallet, once per (message, reason).

    Args:
        session: The SQL session; the caller commits.
        message: The message the stamps were paid for.
        stamps: How many come back (at most what the message cost).
        reason: One of ``REFUND_REASONS``; one refund per (message, reason, detail), and
            never more in all than the message cost.
        detail: What makes two refunds of one reason different (an attachment id).

    Returns:
        True when stamps were credited now, False when this refund was made before.
    """
    if reason not in REFUND_REASONS:
        raise ValueError(f"unknown refund reason {reason!r}")
    refunded = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
            LedgerEntry.message_id == message.id, LedgerEntry.kind == "refund"
        )
    )
    if not 0 < stamps <= message.stamps - int(refunded or 0):
        raise ValueError(
            f"cannot refund {stamps} more stamps of a {message.stamps}-stamp message"
            f" ({refunded} refunded already)"
        )
    return add_entry(
        session,
        LedgerEntry(
            account_id=message.account_id,
            state=message.state,
            delta=stamps,
            kind="refund",
            idempotency_key=f"refund:message:{message.id}:{reason}:{detail}",
            message_id=message.id,
            reason=reason,
        ),
    )


# --- purchases and links --------------------------------------------------------------


REFUND_REASONS = frozenset(
    {
        "rejected",
        "rejected-attachment",
        "no-service",
        "transferred",
        "released",
        "restricted",
        "wrong-person",
        "provider-failed",
    }
)


class LinkError(Exception):
    """A purchase link that cannot be used; ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=LINK_SALT)


def create_purchase(
    session: Session,
    settings: Settings,
    account_id: int,
    state: str,
    bundle: Bundle,
    draft_id: int | None,
) -> Purchase:
    """Record a bundle offered to an account; the link is made from its id."""
    purchase = Purchase(
        account_id=account_id,
        state=state,
        stamps=bundle.stamps,
        amount_cents=bundle.price_cents,
        nonce=secrets.token_hex(8),
        provider=settings.payments,
        draft_id=draft_id,
    )
    session.add(purchase)
    session.flush()
    return purchase


def link(settings: Settings, purchase: Purchase) -> str:
    """The signed, expiring link texted for a purchase."""
    token = _serializer(settings).dumps([purchase.id, purchase.nonce[:6]])
    return f"{settings.public_base_url}/buy/{token}"


def read_link(session: Session, settings: Settings, token: str) -> Purchase:
    """The purchase a link token stands for.

    Raises:
        LinkError: ``invalid`` (tampered, unknown) or ``expired`` (older than the TTL).
    """
    serializer = _serializer(settings)
    try:
        purchase_id, nonce = serializer.loads(token, max_age=settings.link_ttl_seconds)
    except SignatureExpired:
        raise LinkError("expired") from None
    except (BadSignature, ValueError, TypeError):
        raise LinkError("invalid") from None
    purchase = session.get(Purchase, purchase_id) if isinstance(purchase_id, int) else None
    if purchase is None or not purchase.nonce.startswith(str(nonce)):
        raise LinkError("invalid")
    return purchase


def mark_paid(session: Session, purchase: Purchase, provider_ref: str) -> bool:
    """Credit a paid purchase exactly once (the caller commits).

    Returns:
        True when this call credited the stamps; False when it was credited before.
    """
    result = session.execute(
        update(Purchase)
        .where(Purchase.id == purchase.id, Purchase.status == "pending")
        .values(status="paid", paid_at=utcnow(), provider_ref=provider_ref)
    )
    if not getattr(result, "rowcount", 0):
        return False
    return add_entry(
        session,
        LedgerEntry(
            account_id=purchase.account_id,
            state=purchase.state,
            delta=purchase.stamps,
            kind="purchase",
            idempotency_key=f"purchase:{purchase.id}",
            purchase_id=purchase.id,
        ),
    )
