"""The facility desk: staff review the messages sent to their facilities (embedded provider).

Staff sign in with an email and a password (``flask desk add-staff``) and see only the
facilities they work for: a message, photo or person anywhere else is a 404 on every route.
Each action goes through ``bot.delivery``, commits, then sends what it queued, and comes
back to the queue with a one-line confirmation. Pages are in English (a staff tool).

The helpers at the top (runtime, CSRF, page headers, media files, local times) are shared
with the tablet (``bot.web.tablet``).
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import (
    Blueprint,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from bot import delivery, directory, i18n, media, providers, wording
from bot.runtime import Runtime
from bot.store.models import Attachment, Facility, Inmate, Message, Staff, StaffFacility, TabletPin
from bot.web import (
    csrf_ok,
    csrf_token,
    runtime,
    sign_in_blocked,
    sign_in_failed,
    translator,
)

logger = logging.getLogger(__name__)
blueprint = Blueprint("desk", __name__, url_prefix="/facility", template_folder="templates")

LANGUAGE = "en"  # the desk is a staff tool, in English
STAFF_KEY = "desk_staff"
CSRF_KEY = "desk_csrf"
NOTICE_KEY = "desk_notice"
REVIEW = ("submitted", "in_review")
SHOWN_ATTACHMENTS = ("stored", "rejected")
REASON_LABELS = {
    "content": "web.desk.reason.content",
    "wrong_person": "web.desk.reason.wrong_person",
    "not_allowed": "web.desk.reason.not_allowed",
    "other": "web.desk.reason.other",
}
MIN_PASSWORD = 10
PIN_SHAPE = re.compile(r"\d{6,12}")
CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# --- shared with the tablet ---------------------------------------------------------------


def form_expired(language: str) -> tuple[str, int]:
    """The 400 page for a form without a valid token: nothing was changed."""
    text = i18n.text(language, "web.form_expired")
    return render_template("notice.html", language=language, text=text), 400


def private_headers(response: Response) -> Response:
    """Pages with personal content: never cached, framed, sniffed or leaked by referrer."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def media_file(rt: Runtime, attachment: Attachment) -> Response:
    """An attachment's stored file with its own media type (404 when there is none)."""
    if not attachment.storage_key or media.kind_of(attachment.content_type) is None:
        abort(404)
    try:
        data = media.LocalStorage(rt.settings.media_dir).load(attachment.storage_key)
    except (OSError, ValueError):
        logger.warning("attachment %s: file %s missing", attachment.id, attachment.storage_key)
        abort(404)
    content_type = attachment.content_type.split(";")[0].strip().lower()
    return Response(data, mimetype=content_type)


def local_time(at: datetime, timezone: str, language: str, pattern: str) -> str:
    """``at`` in a facility's time zone, as ``pattern`` (Babel) in ``language``."""
    return wording.moment(language, at, ZoneInfo(timezone), pattern)


def attachments_view(attachments: Iterable[Attachment], statuses: Sequence[str]) -> list[Any]:
    """What a page shows of a message's photos and videos: id, kind, status."""
    return [
        {"id": a.id, "kind": a.kind, "status": a.status, "n": n}
        for n, a in enumerate((a for a in attachments if a.status in statuses), start=1)
    ]


# --- who is signed in -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeskUser:
    """The signed-in staff member and the facilities they work for."""

    id: int
    name: str
    facilities: tuple[str, ...]


@functools.cache
def _decoy_hash() -> str:
    """A hash to check against when there is no account, so both failures take as long."""
    return generate_password_hash(secrets.token_hex(16))


def check_nothing(secret: str) -> None:
    """Check ``secret`` against a throwaway hash: a miss takes as long as a wrong password."""
    check_password_hash(_decoy_hash(), secret)


def check_staff(db: Session, email: str, password: str) -> int | None:
    """The id of the active staff member with this email and password, else None."""
    staff = db.scalars(select(Staff).where(Staff.email == email.strip().lower())).first()
    if staff is None:
        check_nothing(password)
        return None
    if not check_password_hash(staff.password_hash, password) or not staff.active:
        return None
    return staff.id


def _signed_in() -> DeskUser | None:
    staff_id = session.get(STAFF_KEY)
    if not isinstance(staff_id, int):
        return None
    with runtime().db.session() as db:
        staff = db.get(Staff, staff_id)
        if staff is None or not staff.active:
            session.pop(STAFF_KEY, None)
            return None
        facilities = db.scalars(
            select(StaffFacility.facility_id)
            .where(StaffFacility.staff_id == staff.id)
            .order_by(StaffFacility.facility_id)
        )
        return DeskUser(staff.id, staff.name, tuple(facilities))


def _user() -> DeskUser:
    user: DeskUser = g.desk_user
    return user


@blueprint.before_request
def guard() -> ResponseReturnValue | None:
    """Every page but sign-in needs an active staff member; every POST a valid token."""
    if runtime().settings.provider != "embedded":
        abort(404)  # with a provider's API, review happens at the provider
    if request.endpoint != "desk.login":
        user = _signed_in()
        if user is None:
            return redirect(url_for("desk.login"))
        g.desk_user = user
    if request.method == "POST" and not csrf_ok(CSRF_KEY):
        return form_expired(LANGUAGE)
    return None


blueprint.after_request(private_headers)


def _page(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    page = render_template(
        template,
        language=LANGUAGE,
        t=translator(LANGUAGE),
        csrf_token=csrf_token(CSRF_KEY),
        **values,
    )
    return page, status


def _done(key: str, **values: str | int) -> Response:
    """Back to the queue, with a one-line confirmation shown once."""
    session[NOTICE_KEY] = [key, values]
    return redirect(url_for("desk.queue"), code=303)


# --- sign in and out ------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form; a wrong email or password gets the same answer."""
    if request.method == "GET":
        if _signed_in() is not None:
            return redirect(url_for("desk.queue"))
        return _page("desk_login.html", email="", failed=False)
    email = request.form.get("email", "").strip().lower()
    keys = (email, request.remote_addr or "")
    if sign_in_blocked("desk", *keys):
        logger.warning("desk sign-in blocked after repeated failures")
        return _page("desk_login.html", 401, email=email, failed=True)
    with runtime().db.session() as db:
        staff_id = check_staff(db, email, request.form.get("password", ""))
    if staff_id is None:
        sign_in_failed("desk", *keys)
        logger.info("desk sign-in refused")
        return _page("desk_login.html", 401, email=email, failed=True)
    session[STAFF_KEY] = staff_id
    session[CSRF_KEY] = secrets.token_urlsafe(24)  # a new token for the signed-in session
    logger.info("staff %s signed in at the desk", staff_id)
    return redirect(url_for("desk.queue"), code=303)


@blueprint.post("/logout")
def logout() -> Response:
    """Sign out: forget the staff member and their form token."""
    for key in (STAFF_KEY, CSRF_KEY, NOTICE_KEY):
        session.pop(key, None)
    return redirect(url_for("desk.login"), code=303)


# --- the queue -----------------------------------------------------------------------------


@blueprint.get("")
def queue() -> ResponseReturnValue:
    """Messages to review, oldest first, and approved ones waiting for the mail run."""
    user = _user()
    with runtime().db.session() as db:
        review, facilities = queue_view(db, user)
    notice = session.pop(NOTICE_KEY, None)
    return _page(
        "desk_queue.html",
        user=user,
        review=review,
        facilities=facilities,
        reasons=[(code, REASON_LABELS[code]) for code in delivery.REJECTION_REASONS],
        notice=notice,
    )


def queue_view(db: Session, user: DeskUser) -> tuple[list[Any], list[Any]]:
    """The review queue and each facility's approved messages, as plain values."""
    messages = db.scalars(
        select(Message)
        .where(Message.facility_id.in_(user.facilities), Message.status.in_(REVIEW))
        .order_by(Message.created_at, Message.id)
    ).all()
    targets: dict[str, list[tuple[str, str]]] = {}
    review = []
    for message in messages:
        person = message.inmate
        if person.state not in targets:
            others = db.scalars(
                select(Facility).where(Facility.state == person.state).order_by(Facility.name)
            )
            targets[person.state] = [(f.id, f.name) for f in others]
        review.append(
            {
                "ref": message.ref,
                "name": person.full_name,
                "inmate_id": person.inmate_id,
                "inmate_pk": person.id,
                "facility": message.facility.name,
                "received": _desk_time(message.created_at, message.facility.timezone),
                "body": message.body,
                "attachments": attachments_view(message.attachments, SHOWN_ATTACHMENTS),
                "person_here": person.facility_id in user.facilities and not person.released,
                "person_facility": person.facility.name,
                "targets": [t for t in targets[person.state] if t[0] != person.facility_id],
            }
        )
    facilities = []
    for facility_id in user.facilities:
        facility = db.get(Facility, facility_id)
        if facility is None:
            continue
        approved = db.scalars(
            select(Message)
            .where(Message.facility_id == facility_id, Message.status == "approved")
            .order_by(Message.updated_at, Message.id)
        ).all()
        facilities.append(
            {
                "id": facility.id,
                "name": facility.name,
                "emessages": facility.emessages,
                "approved": [
                    {
                        "ref": m.ref,
                        "name": m.inmate.full_name,
                        "inmate_id": m.inmate.inmate_id,
                        "time": _desk_time(m.updated_at, facility.timezone),
                    }
                    for m in approved
                ],
            }
        )
    return review, facilities


def _desk_time(at: datetime, timezone: str) -> str:
    return local_time(at, timezone, LANGUAGE, "EEE d MMM, h:mm a zzz")


# --- what staff may touch -------------------------------------------------------------------


def _message(db: Session, ref: str) -> Message:
    """A message at one of the staff member's facilities, locked for the change (else 404)."""
    message = db.scalars(
        select(Message)
        .where(Message.ref == ref, Message.facility_id.in_(_user().facilities))
        .with_for_update(of=Message)
    ).first()
    if message is None:
        abort(404)
    return message


def _attachment(db: Session, attachment_id: int) -> tuple[Attachment, Message]:
    """An attachment of a message at one of the staff member's facilities (else 404)."""
    attachment = db.get(Attachment, attachment_id)
    if attachment is None or attachment.message_id is None:
        abort(404)
    message = db.get(Message, attachment.message_id)
    if message is None or message.facility_id not in _user().facilities:
        abort(404)
    return attachment, message


def _person(db: Session, inmate_pk: int) -> Inmate:
    """A person at one of the staff member's facilities (else 404)."""
    person = db.get(Inmate, inmate_pk)
    if person is None or person.facility_id not in _user().facilities:
        abort(404)
    return person


# --- actions -------------------------------------------------------------------------------


@blueprint.post("/messages/<ref>/approve")
def approve(ref: str) -> Response:
    """Approve a message: it goes out at the facility's next mail run."""
    return _advance(ref, "approve", None)


@blueprint.post("/messages/<ref>/reject")
def reject(ref: str) -> Response:
    """Reject a whole message with one of the reasons (the policy decides the refund)."""
    reason = request.form.get("reason", "")
    if reason not in delivery.REJECTION_REASONS:
        abort(400, "Choose one of the rejection reasons.")
    return _advance(ref, "reject", reason)


def _advance(ref: str, trigger: str, reason: str | None) -> Response:
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        message = _message(db, ref)
        result = delivery.advance(rt, db, outbox, message, trigger, reason)
        db.commit()
    outbox.send(rt)
    if result != "applied":
        return _done("web.desk.done.nothing", ref=ref)
    logger.info("staff %s: %s %s (%s)", _user().id, trigger, ref, reason)
    if trigger == "approve":
        return _done("web.desk.done.approved", ref=ref)
    label = i18n.text(LANGUAGE, REASON_LABELS[reason or "other"])
    return _done("web.desk.done.rejected", ref=ref, reason=label)


@blueprint.post("/attachments/<int:attachment_id>/reject")
def reject_attachment(attachment_id: int) -> Response:
    """Refuse one photo of a message under review; its stamp comes back."""
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        attachment, message = _attachment(db, attachment_id)
        done = attachment.status == "stored" and delivery.reject_attachment(
            rt, db, outbox, message, attachment, "not_allowed"
        )  # only a photo that was paid for and shown can be refused (and refunded)
        db.commit()
        ref = message.ref
    outbox.send(rt)
    if not done:
        return _done("web.desk.done.nothing", ref=ref)
    logger.info("staff %s: rejected attachment %s of %s", _user().id, attachment_id, ref)
    return _done("web.desk.done.photo_rejected", ref=ref)


@blueprint.post("/people/<int:inmate_pk>/transfer")
def transfer(inmate_pk: int) -> Response:
    """The person was moved to another facility of the same state."""
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        person = _person(db, inmate_pk)
        target = db.get(Facility, request.form.get("facility", ""))
        if target is None or target.state != person.state:
            abort(400, "Choose a facility in the same state.")
        name = person.full_name
        if person.released or target.id == person.facility_id:
            return _done("web.desk.done.person_nothing", name=name)
        returned = delivery.transfer(rt, db, outbox, person, target)
        db.commit()
    outbox.send(rt)
    logger.info("staff %s: %s transferred to %s", _user().id, inmate_pk, target.id)
    return _done("web.desk.done.transferred", name=name, facility=target.name, n=returned)


@blueprint.post("/people/<int:inmate_pk>/release")
def release(inmate_pk: int) -> Response:
    """The person was released: their messages on the way go back with their stamps."""
    rt, outbox = runtime(), delivery.Outbox()
    with rt.db.session() as db:
        person = _person(db, inmate_pk)
        name = person.full_name
        if person.released:
            return _done("web.desk.done.person_nothing", name=name)
        returned = delivery.release(rt, db, outbox, person)
        db.commit()
    outbox.send(rt)
    logger.info("staff %s: %s released", _user().id, inmate_pk)
    return _done("web.desk.done.released", name=name, n=returned)


@blueprint.post("/<facility_id>/mail-run")
def mail_run(facility_id: str) -> Response:
    """Deliver the facility's approved messages now, without waiting for the schedule."""
    if facility_id not in _user().facilities:
        abort(404)
    rt = runtime()
    with rt.db.session() as db:
        facility = db.get(Facility, facility_id)
        if facility is None:
            abort(404)
        name = facility.name
    delivered = providers.deliver_approved(rt, facility_id)
    logger.info("staff %s: mail run at %s delivered %s", _user().id, facility_id, delivered)
    return _done("web.desk.done.mail_run", facility=name, n=delivered)


@blueprint.get("/media/<int:attachment_id>")
def attachment_file(attachment_id: int) -> Response:
    """A photo or video of a message at one of the staff member's facilities."""
    with runtime().db.session() as db:
        attachment, _ = _attachment(db, attachment_id)
        if attachment.status not in SHOWN_ATTACHMENTS:
            abort(404)
        return media_file(runtime(), attachment)


# --- command line ---------------------------------------------------------------------------


desk_cli = AppGroup("desk", help="Facility desk staff and tablet PINs.")


def save_staff(
    db: Session, email: str, name: str, facility_ids: Sequence[str], password: str
) -> bool:
    """Add a staff member, or update the one with this email (name, password, facilities).

    Returns:
        True when the staff member is new.
    """
    email = email.strip().lower()
    staff = db.scalars(select(Staff).where(Staff.email == email)).first()
    new = staff is None
    if staff is None:
        staff = Staff(email=email, name=name.strip(), password_hash="")
        db.add(staff)
    staff.name = name.strip()
    staff.password_hash = generate_password_hash(password)
    staff.active = True
    db.flush()
    existing = db.scalars(select(StaffFacility).where(StaffFacility.staff_id == staff.id))
    for row in existing:
        db.delete(row)
    db.flush()
    for facility_id in dict.fromkeys(facility_ids):
        db.add(StaffFacility(staff_id=staff.id, facility_id=facility_id))
    return new


@desk_cli.command("add-staff")
@click.option("--email", required=True, help="What they sign in with.")
@click.option("--name", required=True, help="Their name, as shown on the desk.")
@click.option(
    "--facility",
    "facilities",
    multiple=True,
    required=True,
    help="A facility id they review (repeat for more); replaces the list on an update.",
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help=f"At least {MIN_PASSWORD} characters (asked for when not given).",
)
def add_staff(email: str, name: str, facilities: tuple[str, ...], password: str) -> None:
    """Add a staff member for one or more facilities (or update one with the same email)."""
    if "@" not in email:
        raise click.BadParameter("give an email address", param_hint="--email")
    if len(password) < MIN_PASSWORD:
        raise click.BadParameter(f"use at least {MIN_PASSWORD} characters", param_hint="--password")
    with runtime().db.session() as db:
        unknown = [f for f in facilities if db.get(Facility, f) is None]
        if unknown:
            raise click.ClickException(f"no such facility: {', '.join(unknown)}")
        new = save_staff(db, email, name, facilities, password)
        db.commit()
    verb = "added" if new else "updated"
    click.echo(f"{email.strip().lower()} {verb} for {', '.join(dict.fromkeys(facilities))}")


@desk_cli.command("set-pin")
@click.option("--state", required=True, help="Two-letter state code, like TX.")
@click.option("--inmate-id", required=True, help="The person's ID in that state.")
@click.option(
    "--pin",
    prompt="PIN",
    hide_input=True,
    confirmation_prompt=True,
    help="6 to 12 digits (asked for when not given).",
)
def set_pin(state: str, inmate_id: str, pin: str) -> None:
    """Set the tablet PIN of a person in the directory."""
    found = directory.states().get(state.strip().upper())
    if found is None:
        raise click.BadParameter("give a two-letter state code", param_hint="--state")
    if not PIN_SHAPE.fullmatch(pin):
        raise click.BadParameter("a PIN is 6 to 12 digits", param_hint="--pin")
    with runtime().db.session() as db:
        person = directory.find_by_id(db, found, found.normalize_id(inmate_id))
        if person is None:
            raise click.ClickException(f"nobody with ID {inmate_id} in {found.code}")
        row = db.get(TabletPin, person.id)
        if row is None:
            db.add(TabletPin(inmate_pk=person.id, pin_hash=generate_password_hash(pin)))
        else:
            row.pin_hash = generate_password_hash(pin)
        db.commit()
        click.echo(f"PIN set for {person.full_name} #{person.inmate_id} ({found.code})")
