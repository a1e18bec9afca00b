"""The dev phone: text the bot as any number from a browser (console mode only)."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, current_app, render_template, request, session
from sqlalchemy import select

from bot import engine
from bot.exceptions import BadInbound
from bot.runtime import Runtime
from bot.store.models import InboundSms, OutboundSms
from bot.web import is_local

blueprint = Blueprint("dev_phone", __name__, url_prefix="/dev/phone", template_folder="templates")
LOG_LIMIT = 200


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["kinline"]
    return rt


def _csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def _error(message: str, status: int = 400) -> tuple[dict[str, Any], int]:
    return {"error": message}, status


@blueprint.before_request
def local_only() -> tuple[dict[str, Any], int] | None:
    """The dev phone reads any number's texts: it answers this machine only."""
    if is_local(request.remote_addr):
        return None
    return _error("The dev phone answers only on this machine.", 404)


@blueprint.get("")
def page() -> str:
    """The phone page."""
    settings = _runtime().settings
    return render_template(
        "dev_phone.html", bot_number=settings.bot_number, poll_ms=1000, csrf_token=_csrf_token()
    )


@blueprint.post("/send")
def send() -> tuple[dict[str, Any], int]:
    """Text the bot as ``from``: the same path as Twilio's webhook, without the signature."""
    token = request.headers.get("X-CSRF-Token", "")
    expected = str(session.get("csrf", ""))
    if not token or not secrets.compare_digest(token.encode(), expected.encode()):
        return _error("The page expired: reload it and send again.", 403)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _error('Send JSON like {"from": "+15125550123", "body": "YES"}.')
    sid = "SMdev" + secrets.token_hex(16)
    settings = _runtime().settings
    form = {"MessageSid": sid, "From": str(data.get("from", "")), "To": settings.bot_number}
    form["Body"] = str(data.get("body", ""))
    try:
        engine.receive(_runtime(), engine.parse_inbound(form, settings))
    except BadInbound as error:
        return _error(str(error).capitalize() + ".")
    return {"ok": True, "sid": sid}, 200


@blueprint.get("/log")
def log() -> tuple[dict[str, Any], int]:
    """Every text to and from ``number`` after the cursor, oldest first."""
    number = engine.e164(request.args.get("number", ""), _runtime().settings.default_region)
    if number is None:
        return _error("Give number=+15125550123.")
    try:
        after_in, after_out = (int(part) for part in request.args.get("after", "0:0").split(":"))
    except ValueError:
        return _error("after must be the cursor from the last answer.")
    if not (0 <= after_in < 2**62 and 0 <= after_out < 2**62):
        return _error("after must be the cursor from the last answer.")
    with _runtime().db.session() as db:
        inbound = db.scalars(
            select(InboundSms)
            .where(InboundSms.from_number == number, InboundSms.id > after_in)
            .order_by(InboundSms.id)
            .limit(LOG_LIMIT)
        ).all()
        outbound = db.scalars(
            select(OutboundSms)
            .where(OutboundSms.to_number == number, OutboundSms.id > after_out)
            .order_by(OutboundSms.id)
            .limit(LOG_LIMIT)
        ).all()
        events = [
            (
                row.received_at,
                0,
                row.id,
                "in",
                row.body,
                "handled" if row.processed_at else "received",
            )
            for row in inbound
        ] + [(row.created_at, 1, row.id, "out", row.body, row.status) for row in outbound]
    events.sort()
    cursor = (
        f"{inbound[-1].id if inbound else after_in}:{outbound[-1].id if outbound else after_out}"
    )
    return {
        "events": [
            {
                "id": f"{direction}-{row_id}",
                "direction": direction,
                "body": body,
                "at": at.isoformat().replace("+00:00", "Z"),
                "status": status,
            }
            for at, _, row_id, direction, body, status in events
        ],
        "cursor": cursor,
    }, 200
