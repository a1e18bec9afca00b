"""The dev phone: text the bot as any number from a browser (console mode only)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import select

from bot import engine
from bot.exceptions import BadInbound
from bot.media import kind_of as media_kind
from bot.store.models import InboundSms, OutboundSms
from bot.web import csrf_ok, csrf_token, is_local, runtime

blueprint = Blueprint("dev_phone", __name__, url_prefix="/dev/phone", template_folder="templates")
LOG_LIMIT = 200


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
    settings = runtime().settings
    return render_template(
        "dev_phone.html", bot_number=settings.bot_number, poll_ms=1000, csrf_token=csrf_token()
    )


@blueprint.post("/send")
def send() -> tuple[dict[str, Any], int]:
    """Text the bot as ``from``: the same path as Twilio's webhook, without the signature."""
    if not csrf_ok(sent=request.headers.get("X-CSRF-Token", "")):
        return _error("The page expired: reload it and send again.", 403)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _error('Send JSON like {"from": "+15125550123", "body": "YES"}.')
    sid = "SMdev" + secrets.token_hex(16)
    settings = runtime().settings
    form = {"MessageSid": sid, "From": str(data.get("from", "")), "To": settings.bot_number}
    form["Body"] = str(data.get("body", ""))
    try:
        urls = _store_media(data.get("media") or [])
    except ValueError as error:
        return _error(str(error))
    form["NumMedia"] = str(len(urls))
    for i, (url, content_type) in enumerate(urls):
        form[f"MediaUrl{i}"], form[f"MediaContentType{i}"] = url, content_type
    try:
        engine.receive(runtime(), engine.parse_inbound(form, settings))
    except BadInbound as error:
        return _error(str(error).capitalize() + ".")
    return {"ok": True, "sid": sid}, 200


def _media_dir() -> Path:
    return Path(runtime().settings.media_dir) / "dev-phone"


def _store_media(items: Any) -> list[tuple[str, str]]:
    """Keep photos sent from the page where the app serves them, like Twilio's media URLs."""
    if not isinstance(items, list) or len(items) > 10:
        raise ValueError("media must be a list of at most 10 files.")
    urls = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("Each media item needs content_type and data.")
        content_type = str(item.get("content_type", ""))
        try:
            data = base64.b64decode(str(item.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("Media data must be base64.") from None
        if not data or len(data) > runtime().settings.max_media_bytes:
            raise ValueError("A photo must be between 1 byte and 5 MB.")
        name = secrets.token_hex(12)
        folder = _media_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        (folder / f"{name}.type").write_text(content_type)
        urls.append((f"{runtime().settings.public_base_url}/dev/phone/media/{name}", content_type))
    return urls


@blueprint.get("/media/<name>")
def media(name: str) -> Response:
    """A photo sent from the page, served as Twilio serves MMS media."""
    path, kind = _media_dir() / name, _media_dir() / f"{name}.type"
    if not re.fullmatch(r"[0-9a-f]{24}", name) or not path.exists() or not kind.exists():
        abort(404)
    content_type = kind.read_text()
    if media_kind(content_type) is None:  # only what an MMS can carry, never a page
        abort(404)
    return Response(path.read_bytes(), mimetype=content_type)


@blueprint.get("/log")
def log() -> tuple[dict[str, Any], int]:
    """Every text to and from ``number`` after the cursor, oldest first."""
    number = engine.e164(request.args.get("number", ""), runtime().settings.default_region)
    if number is None:
        return _error("Give number=+15125550123.")
    # The cursor: last inbound id, last outbound id, and the first outbound id still on its
    # way (so its final status is shown too).
    try:
        parts = [int(part) for part in request.args.get("after", "0:0").split(":")]
        after_in, after_out = parts[0], parts[1]
        pending = parts[2] if len(parts) > 2 else after_out + 1
    except (ValueError, IndexError):
        return _error("after must be the cursor from the last answer.")
    if not all(0 <= part < 2**62 for part in (after_in, after_out, pending)):
        return _error("after must be the cursor from the last answer.")
    with runtime().db.session() as db:
        inbound = db.scalars(
            select(InboundSms)
            .where(InboundSms.from_number == number, InboundSms.id > after_in)
            .order_by(InboundSms.id)
            .limit(LOG_LIMIT)
        ).all()
        outbound = db.scalars(
            select(OutboundSms)
            .where(OutboundSms.to_number == number, OutboundSms.id >= min(pending, after_out + 1))
            .order_by(OutboundSms.id)
            .limit(LOG_LIMIT)
        ).all()
        events = [
            _event("in", row.id, row.received_at, row.body, _status(row), _local(row.media))
            for row in inbound
        ] + [_event("out", row.id, row.created_at, row.body, row.status, []) for row in outbound]
    events.sort(key=lambda event: (event["at"], event["direction"] == "out"))
    last_out = outbound[-1].id if outbound else after_out
    on_the_way = [row.id for row in outbound if row.status in ("queued", "sending")]
    first_pending = on_the_way[0] if on_the_way else last_out + 1
    cursor = f"{inbound[-1].id if inbound else after_in}:{last_out}:{first_pending}"
    return {
        "events": events,
        "cursor": cursor,
    }, 200


def _status(row: InboundSms) -> str:
    return "handled" if row.processed_at else "received"


def _event(
    direction: str,
    row_id: int,
    at: datetime,
    body: str,
    status: str,
    media: list[dict[str, str]],
) -> dict[str, Any]:
    """One entry of the thread, as the page reads it."""
    return {
        "id": f"{direction}-{row_id}",
        "direction": direction,
        "body": body,
        "at": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "status": status,
        "media": media,
    }


def _local(media: list[dict[str, str]]) -> list[dict[str, str]]:
    """Media of an inbound text, with this app's own URLs made relative for the page."""
    base = runtime().settings.public_base_url
    return [
        {"url": item["url"].removeprefix(base), "content_type": item.get("content_type", "")}
        for item in media
    ]
