"""Purchase links: ``/buy/<token>`` opens Stripe Checkout or the local test checkout."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from bot import i18n, payments
from bot.stamps import LinkError
from bot.store.models import Purchase
from bot.web import csrf_ok, csrf_token, runtime, translator

logger = logging.getLogger(__name__)
blueprint = Blueprint("checkout", __name__, template_folder="templates")


def page(language: str, key: str, status: int, **values: Any) -> tuple[str, int]:
    """A short page with one catalog text on it."""
    return (
        render_template("notice.html", language=language, text=i18n.text(language, key, **values)),
        status,
    )


def _purchase(token: str) -> Purchase | tuple[str, int]:
    language = "es" if request.accept_languages.best_match(["en", "es"]) == "es" else "en"
    try:
        return payments.purchase_by_link(runtime(), token)
    except LinkError as error:
        if error.reason == "expired":
            return page(language, "web.link_expired", 410)
        return page(language, "web.link_invalid", 404)


@blueprint.get("/buy/<token>")
def open_link(token: str) -> Response | tuple[str, int]:
    """Show the checkout (test mode) or send the person on to Stripe."""
    found = _purchase(token)
    if not isinstance(found, Purchase):
        return found
    rt = runtime()
    summary = payments.purchase_summary(rt, found)
    if found.status == "paid":
        return page(summary["language"], "web.already_paid", 200, stamps=summary["stamps"])
    if found.provider == "stripe":
        try:
            return redirect(payments.stripe_checkout_url(rt, found.id), code=303)
        except stripe.StripeError:
            logger.exception("Stripe could not open a checkout for purchase %s", found.id)
            return page(summary["language"], "web.try_later", 503)
    return (
        render_template(
            "checkout.html",
            summary=summary,
            token=token,
            csrf_token=csrf_token(),
            error=None,
            t=translator(summary["language"]),
        ),
        200,
    )


@blueprint.post("/buy/<token>")
def pay(token: str) -> tuple[str, int]:
    """Take a test card on the test checkout page."""
    found = _purchase(token)
    if not isinstance(found, Purchase):
        return found
    rt = runtime()
    summary = payments.purchase_summary(rt, found)
    language = summary["language"]
    if found.provider != "test" or rt.settings.payments != "test":
        return page(language, "web.link_invalid", 404)
    if not csrf_ok():
        return page(language, "web.form_expired", 400)
    outcome = payments.pay_test(rt, found.id, request.form.get("card", ""))
    if outcome in ("paid", "already"):
        key = "web.paid" if outcome == "paid" else "web.already_paid"
        return page(language, key, 200, stamps=summary["stamps"])
    error = i18n.text(language, f"web.card_{outcome.replace('-', '_')}")
    return (
        render_template(
            "checkout.html",
            summary=summary,
            token=token,
            csrf_token=csrf_token(),
            error=error,
            t=translator(language),
        ),
        400,
    )


@blueprint.get("/buy/done")
def done() -> tuple[str, int]:
    """Where Stripe sends people after paying."""
    return page(_language(), "web.stripe_done", 200)


@blueprint.get("/buy/cancelled")
def cancelled() -> tuple[str, int]:
    """Where Stripe sends people who leave the checkout."""
    return page(_language(), "web.stripe_cancelled", 200)


def _language() -> str:
    return "es" if request.accept_languages.best_match(["en", "es"]) == "es" else "en"
