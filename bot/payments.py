"""Paying for stamps: Stripe Checkout, or the local test checkout; crediting exactly once."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError

from bot import i18n, jobs, notify, stamps, wording
from bot.runtime import Runtime
from bot.store.conversations import Conversation
from bot.store.models import Account, Draft, OutboundSms, PaymentEvent, Purchase

logger = logging.getLogger(__name__)

# Test mode: the cards the checkout page lists, and what they do.
TEST_CARDS = {"4242424242424242": "paid", "4000000000000002": "declined"}


def stripe_client(rt: Runtime) -> stripe.StripeClient:
    """A Stripe client for the configured key (and API base, for stripe-mock or a fake)."""
    settings = rt.settings
    assert settings.stripe_secret_key, "PAYMENTS=stripe needs STRIPE_SECRET_KEY"
    base: Any = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key, base_addresses=base, max_network_retries=2
    )


def stripe_checkout_url(rt: Runtime, purchase_id: int) -> str:
    """The Checkout Session URL for a purchase, created once (a second tap reuses it)."""
    settings = rt.settings
    with rt.db.session() as session:
        purchase = session.get(Purchase, purchase_id)
        assert purchase is not None
        if purchase.checkout_url:
            return purchase.checkout_url
        account = session.get(Account, purchase.account_id)
        assert account is not None
        name = wording.wallet(account.language, purchase.state, purchase.stamps)
        params: Any = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": purchase.currency,
                        "unit_amount": purchase.amount_cents,
                        "product_data": {"name": f"Kinline: {name}"},
                    },
                }
            ],
            "payment_method_types": ["card"],  # paid at once: no delayed bank debits
            "client_reference_id": str(purchase.id),
            "metadata": {"purchase_id": str(purchase.id)},
            "success_url": f"{settings.public_base_url}/buy/done",
            "cancel_url": f"{settings.public_base_url}/buy/cancelled",
            "locale": "es" if account.language == "es" else "en",
        }
        checkout = stripe_client(rt).v1.checkout.sessions.create(
            params=params,
            options={"idempotency_key": f"kinline-purchase-{purchase.id}"},
        )
        purchase.provider_ref = checkout.id
        purchase.checkout_url = checkout.url
        session.commit()
        return str(checkout.url)


def stripe_event(rt: Runtime, payload: bytes, signature: str | None) -> Any:
    """Verify a Stripe webhook over its raw body and parse it.

    Raises:
        ValueError: When the body is not an event or the signature does not match.
    """
    secret = rt.settings.stripe_webhook_secret
    if not secret or not signature:
        raise ValueError("missing Stripe-Signature")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as error:
        raise ValueError(f"bad signature: {error}") from None


def handle_stripe_event(rt: Runtime, event: Any) -> str:
    """Credit a completed Checkout Session once; note and ignore everything else.

    Returns:
        What happened: ``credited``, ``duplicate``, ``ignored`` or ``unknown-purchase``.
    """
    event = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    kind = str(event["type"])
    with rt.db.session() as session:
        session.add(PaymentEvent(provider="stripe", event_id=str(event["id"]), kind=kind))
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return "duplicate"
        checkout = event["data"]["object"]
        paid = kind == "checkout.session.completed" and checkout.get("payment_status") == "paid"
        if not (paid or kind == "checkout.session.async_payment_succeeded"):
            session.commit()
            return "ignored"
        metadata = checkout.get("metadata") or {}
        reference = metadata.get("purchase_id") or checkout.get("client_reference_id") or ""
        purchase = session.get(Purchase, int(reference)) if str(reference).isdigit() else None
        if purchase is None or purchase.provider_ref not in (None, checkout["id"]):
            logger.error("Stripe session %s matches no purchase", checkout.get("id"))
            session.commit()
            return "unknown-purchase"
        paid_for = (checkout.get("amount_total"), checkout.get("currency"))
        if paid_for != (purchase.amount_cents, purchase.currency):
            # Money was taken for something we did not offer: a person must look at it.
            logger.error(
                "ALERT Stripe session %s paid %s for purchase %s of %s",
                checkout["id"],
                paid_for,
                purchase.id,
                (purchase.amount_cents, purchase.currency),
            )
            purchase.status = "review"
            session.commit()
            return "needs-review"
        credited = stamps.mark_paid(session, purchase, str(checkout["id"]))
        out = paid_text(session, rt, purchase) if credited else None
        try:
            session.commit()
        except IntegrityError:  # a concurrent replay of the same session won
            session.rollback()
            return "duplicate"
    after_payment(rt, purchase, out)
    return "credited" if credited else "duplicate"


def pay_test(rt: Runtime, purchase_id: int, card: str) -> str:
    """Complete a purchase on the test checkout page.

    Returns:
        ``paid``, ``declined``, ``unknown-card`` or ``already``.
    """
    digits = "".join(ch for ch in card if ch.isdigit())
    outcome = TEST_CARDS.get(digits, "unknown-card")
    if outcome != "paid":
        return outcome
    with rt.db.session() as session:
        purchase = session.get(Purchase, purchase_id)
        assert purchase is not None
        credited = stamps.mark_paid(session, purchase, f"test_{purchase.nonce}")
        out = paid_text(session, rt, purchase) if credited else None
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "already"
    after_payment(rt, purchase, out)
    return "paid" if credited else "already"


def paid_text(session: Any, rt: Runtime, purchase: Purchase) -> OutboundSms | None:
    """The "Paid: +20 Texas stamps" text, in the same transaction as the credit."""
    account = session.get(Account, purchase.account_id)
    assert account is not None
    language = account.language
    bought = wording.wallet(language, purchase.state, purchase.stamps)
    draft = open_draft(session, purchase)
    have = stamps.balance(session, account.id, purchase.state)
    need = stamps.draft_cost(rt.settings, draft) if draft is not None else 0
    if draft is not None and have >= need:
        first = draft.inmate.first_name
        body = i18n.text(language, "stamps.paid_send", stamps=bought, first=first)
    elif draft is not None:
        short = wording.wallet(language, purchase.state, need - have)
        body = i18n.text(language, "stamps.paid_short", stamps=bought, short=short)
    else:
        balance = wording.wallet(language, purchase.state, have)
        body = i18n.text(language, "stamps.paid", stamps=bought, balance=balance)
    return notify.queue_text(
        session, rt, account, body, f"paid:{purchase.id}", purchase.to_number, "response"
    )


def open_draft(session: Any, purchase: Purchase) -> Draft | None:
    """The draft the purchase was made for, if it is still waiting to be sent."""
    if purchase.draft_id is None:
        return None
    draft = session.get(Draft, purchase.draft_id)
    return draft if draft is not None and draft.status == "open" else None


def after_payment(rt: Runtime, purchase: Purchase, out: OutboundSms | None) -> None:
    """Text the person and put their conversation back on the message they were sending."""
    if out is None:
        return
    with rt.db.session() as session:
        account = session.get(Account, purchase.account_id)
        draft = open_draft(session, purchase)
        phone = account.phone if account else None
    to_number = purchase.to_number or rt.settings.bot_number
    if draft is not None and phone:
        # Back on the message only if they are still where the link was sent (the preview
        # or the bundles for this draft); anywhere else they stay where they are.
        store = rt.conversations
        with store.lock(phone, to_number, wait=5) as got:
            where = store.load(phone, to_number) if got else None
            if (
                where is not None
                and where.ctx.get("draft") == draft.id
                and (where.flow, where.state) in (("compose", "preview"), ("stamps", "bundles"))
            ):
                resume = Conversation("compose", "preview", {"draft": draft.id})
                store.save(phone, to_number, resume)
    jobs.enqueue_sms(rt, out)


def purchase_by_link(rt: Runtime, token: str) -> Purchase:
    """The purchase a link stands for (see ``stamps.read_link`` for the errors)."""
    with rt.db.session() as session:
        return stamps.read_link(session, rt.settings, token)


def purchase_summary(rt: Runtime, purchase: Purchase) -> dict[str, str]:
    """What the checkout page shows: the bundle, the price and whose number it is for."""
    with rt.db.session() as session:
        account = session.get(Account, purchase.account_id)
        assert account is not None
        language = account.language
    return {
        "language": language,
        "stamps": wording.wallet(language, purchase.state, purchase.stamps),
        "price": stamps.money(purchase.amount_cents),
        "phone": account.phone[-4:],
    }
