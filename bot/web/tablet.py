"""The tablet: people in prison read their delivered messages and reply (embedded provider).

A person signs in with their state, ID and PIN (``flask desk set-pin``); opening a message
marks it read. A reply goes through ``providers.record_reply`` with a key made of the
message and a token drawn when the form was shown, so posting the form twice replies once.
Pages follow ``?lang=es`` (kept for the session) or the browser's language.

``reply_blueprint`` serves ``/r/<token>``: a long reply, read by the family from a link.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response

from bot import delivery, directory, i18n, providers
from bot.store.models import (
    Account,
    Attachment,
    Facility,
    Inmate,
    Message,
    Reply,
    TabletPin,
)
from bot.web import csrf_ok, csrf_token, runtime, sign_in_blocked, sign_in_failed, translator
from bot.web.desk import (
    attachments_view,
    check_nothing,
    form_expired,
    local_time,
    media_file,
    private_headers,
)

logger = logging.getLogger(__name__)
blueprint = Blueprint("tablet", __name__, url_prefix="/tablet", template_folder="templates")
reply_blueprint = Blueprint("reply", __name__, template_folder="templates")

PERSON_KEY = "tablet_inmate"
CSRF_KEY = "tablet_csrf"
SEEN_KEY = "tablet_seen"
IDLE_SECONDS = 10 * 60  # a shared tablet signs the person out after ten quiet minutes
LANGUAGE_KEY = "tablet_lang"
DELIVERED = ("delivered", "read")
MAX_REPLY = 6000
PREVIEW = 280
ONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
TIME_PATTERN = "EEE d MMM, h:mm a"


def language(keep: bool = True) -> str:
    """``?lang=`` (kept for the session when ``keep``), else the kept one, else the browser's."""
    asked = request.args.get("lang", "")
    if asked in i18n.LANGUAGES:
        if keep:
            session[LANGUAGE_KEY] = asked
        return asked
    kept = session.get(LANGUAGE_KEY)
    if keep and isinstance(kept, str) and kept in i18n.LANGUAGES:
        return kept
    return "es" if request.accept_languages.best_match(["en", "es"]) == "es" else "en"


def _page(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    lang = language()
    page = render_template(
        template, language=lang, t=translator(lang), csrf_token=csrf_token(CSRF_KEY), **values
    )
    return page, status


# --- who is signed in -----------------------------------------------------------------------


def check_pin(db: Session, state_code: str, inmate_id: str, pin: str) -> int | None:
    """The id of the person (still in the directory) with this state, ID and PIN, else None."""
    state = directory.states().get(state_code.strip().upper())
    person = directory.find_by_id(db, state, state.normalize_id(inmate_id)) if state else None
    row = db.get(TabletPin, person.id) if person is not None and not person.released else None
    if row is None:
        check_nothing(pin)
        return None
    return row.inmate_pk if check_password_hash(row.pin_hash, pin) else None


def _person_id() -> int:
    person: int = session[PERSON_KEY]
    return person


def _signed_in(db: Session) -> Inmate | None:
    pk = session.get(PERSON_KEY)
    person = db.get(Inmate, pk) if isinstance(pk, int) else None
    if person is None or person.released:
        session.pop(PERSON_KEY, None)
        return None
    return person


@blueprint.before_request
def guard() -> ResponseReturnValue | None:
    """Only with the embedded provider; every page but sign-in needs a person signed in;
    every POST a valid token."""
    if runtime().settings.provider != "embedded":
        abort(404)
    if request.endpoint != "tablet.login":
        seen = session.get(SEEN_KEY)
        if not isinstance(seen, int) or time.time() - seen > IDLE_SECONDS:
            session.pop(PERSON_KEY, None)  # a shared tablet: signed out after a quiet while
        with runtime().db.session() as db:
            if _signed_in(db) is None:
                return redirect(url_for("tablet.login"))
        session[SEEN_KEY] = int(time.time())
    if request.method == "POST" and not csrf_ok(CSRF_KEY):
        return form_expired(language())
    return None


blueprint.after_request(private_headers)
reply_blueprint.after_request(private_headers)


# --- sign in and out ------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """State, ID and PIN; any mistake gets the same answer."""
    state = request.form.get("state", "")
    if request.method == "GET":
        return _login_page(state, failed=False)
    inmate_id = request.form.get("inmate_id", "")
    keys = (f"{state.strip().upper()}:{inmate_id.strip().upper()}", request.remote_addr or "")
    if sign_in_blocked("tablet", *keys):
        logger.warning("tablet sign-in blocked after repeated failures")
        return _login_page(state, failed=True)
    with runtime().db.session() as db:
        person = check_pin(db, state, inmate_id, request.form.get("pin", ""))
    if person is None:
        sign_in_failed("tablet", *keys)
        logger.info("tablet sign-in refused")
        return _login_page(state, failed=True)
    session[PERSON_KEY] = person
    session[SEEN_KEY] = int(time.time())
    session[CSRF_KEY] = secrets.token_urlsafe(24)  # a new token for the signed-in session
    return redirect(url_for("tablet.messages"), code=303)


def _login_page(state: str, failed: bool) -> tuple[str, int]:
    lang = language()
    with runtime().db.session() as db:
        codes = db.scalars(select(Facility.state).distinct()).all()
    known = directory.states()
    states = sorted(
        ((code, known[code].display_name(lang)) for code in codes if code in known),
        key=lambda pair: pair[1],
    )
    return _page(
        "tablet_login.html", 401 if failed else 200, states=states, chosen=state, failed=failed
    )


@blueprint.post("/logout")
def logout() -> Response:
    """Sign out (the tablet is shared: nothing of the person stays in the session)."""
    for key in (PERSON_KEY, CSRF_KEY):
        session.pop(key, None)
    return redirect(url_for("tablet.login"), code=303)


# --- messages -------------------------------------------------------------------------------


@blueprint.get("")
def messages() -> ResponseReturnValue:
    """The person's delivered messages, newest first."""
    lang = language()
    with runtime().db.session() as db:
        person = db.get(Inmate, _person_id())
        assert person is not None
        found = db.scalars(
            select(Message)
            .where(Message.inmate_pk == person.id, Message.status.in_(DELIVERED))
            .order_by(Message.delivered_at.desc().nulls_last(), Message.id.desc())
        ).all()
        items = [_message_view(db, message, lang) for message in found]
        first = person.first_name
    for item in items:
        if len(item["body"]) > PREVIEW:
            item["body"] = item["body"][:PREVIEW].rstrip() + "..."
    return _page("tablet_list.html", first=first, items=items)


def _message_view(db: Session, message: Message, lang: str) -> dict[str, Any]:
    account = db.get(Account, message.account_id)
    at = message.delivered_at or message.updated_at
    return {
        "ref": message.ref,
        "new": message.status == "delivered",
        "phone": account.phone[-4:] if account else "",
        "time": local_time(at, message.facility.timezone, lang, TIME_PATTERN),
        "body": message.body,
        "attachments": attachments_view(message.attachments, ("stored",)),
    }


def _message(db: Session, ref: str) -> Message:
    """A delivered message to the signed-in person (else 404)."""
    message = db.scalars(
        select(Message).where(
            Message.ref == ref,
            Message.inmate_pk == _person_id(),
            Message.status.in_(DELIVERED),
        )
    ).first()
    if message is None:
        abort(404)
    return message


def replies_allowed(message: Message) -> bool:
    """Replies are taken where the person is now, for messages from a facility that allows
    them."""
    return message.facility.replies and message.inmate.facility.replies


@blueprint.get("/messages/<ref>")
def message(ref: str) -> ResponseReturnValue:
    """One message in full; opening it marks it read."""
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        found = _message(db, ref)
        delivery.advance(rt, db, outbox, found, "read")
        db.commit()
        page = _message_page(db, found, sent=request.args.get("sent") == "1")
    outbox.send(rt)
    return page


@blueprint.post("/messages/<ref>/reply")
def reply(ref: str) -> ResponseReturnValue:
    """Send a reply to the family member who wrote; the same form posted twice replies once."""
    body = request.form.get("body", "").replace("\r\n", "\n").strip()
    once = request.form.get("once", "")
    if not ONCE.fullmatch(once):
        return form_expired(language())
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        found = _message(db, ref)
        if not replies_allowed(found):
            return _message_page(db, found, error=("web.tablet.reply.closed", {}), status=403)
        if not body:
            return _message_page(db, found, error=("web.tablet.reply.empty", {}), status=400)
        if len(body) > MAX_REPLY:
            error = ("web.tablet.reply.too_long", {"n": f"{len(body):,}", "max": f"{MAX_REPLY:,}"})
            return _message_page(db, found, error=error, body=body, status=400)
        source_key = f"tablet:{found.id}:{once}"
        try:
            providers.record_reply(rt, db, outbox, found, body, source_key=source_key)
            db.commit()
        except IntegrityError:  # the same form, posted at the same moment: it is in already
            db.rollback()
            outbox = delivery.Outbox()
    outbox.send(rt)
    return redirect(url_for("tablet.message", ref=ref, sent="1"), code=303)


def _message_page(
    db: Session,
    found: Message,
    *,
    sent: bool = False,
    error: tuple[str, dict[str, str]] | None = None,
    body: str = "",
    status: int = 200,
) -> tuple[str, int]:
    lang = language()
    replies = db.scalars(
        select(Reply)
        .where(Reply.message_id == found.id, Reply.inmate_pk == found.inmate_pk)
        .order_by(Reply.id)
    ).all()
    timezone = found.inmate.facility.timezone
    return _page(
        "tablet_message.html",
        status,
        item=_message_view(db, found, lang),
        replies=[
            {
                "ref": r.ref,
                "time": local_time(r.created_at, timezone, lang, TIME_PATTERN),
                "body": r.body,
            }
            for r in replies
        ],
        can_reply=replies_allowed(found),
        once=secrets.token_urlsafe(24),
        max_reply=MAX_REPLY,
        max_label=f"{MAX_REPLY:,}",
        sent=sent,
        error=error,
        body=body,
    )


@blueprint.get("/media/<int:attachment_id>")
def attachment_file(attachment_id: int) -> Response:
    """A photo or video of a delivered message to the signed-in person."""
    with runtime().db.session() as db:
        attachment = db.get(Attachment, attachment_id)
        if attachment is None or attachment.message_id is None or attachment.status != "stored":
            abort(404)
        found = db.get(Message, attachment.message_id)
        if found is None or found.inmate_pk != _person_id() or found.status not in DELIVERED:
            abort(404)
        return media_file(runtime(), attachment)


# --- a long reply, read from a link -----------------------------------------------------------


@reply_blueprint.get("/r/<token>")
def read_reply(token: str) -> ResponseReturnValue:
    """A reply too long for texts, for the family member who got the link."""
    lang = language(keep=False)
    rt = runtime()
    reply_id = providers.read_reply_link(rt, token)
    with rt.db.session() as db:
        found = db.get(Reply, reply_id) if reply_id is not None else None
        if found is None:
            text = i18n.text(lang, "web.reply.invalid")
            return render_template("notice.html", language=lang, text=text), 404
        account = db.get(Account, found.account_id)
        when = (
            delivery.local_time(lang, account.phone, found.created_at)
            if account is not None
            else ""
        )
        values = {
            "first": found.inmate.first_name,
            "ref": found.ref,
            "time": when,
            "body": found.body,
        }
    return render_template("reply.html", language=lang, t=translator(lang), reply=values), 200
