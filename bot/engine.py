"""Inbound text -> keywords -> current flow -> replies, one turn at a time per number.

Every text is written to SQL before it is handled. Turns for one (From, To) pair run under
a Redis lock, oldest first, so texts that arrive together are read in the order they came.
A repeated ``MessageSid`` gets the reply already given and changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import phonenumbers
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

import flows  # noqa: F401  (registers every flow)
from bot import delivery, i18n, sms, words
from bot.config import Settings
from bot.exceptions import BadInbound
from bot.flow import REGISTRY, Later, Turn
from bot.runtime import Runtime
from bot.store.conversations import Conversation
from bot.store.models import Account, Draft, InboundSms, OutboundSms, utcnow

logger = logging.getLogger(__name__)

SID = re.compile(r"[A-Za-z0-9_-]{2,64}")
TWIML_DEADLINE = timedelta(seconds=15)  # Twilio stops waiting for the webhook's answer
SHORT_CODE = re.compile(r"\d{3,8}")
MAX_MEDIA = 10


@dataclass(frozen=True)
class Inbound:
    """An inbound text as Twilio describes it, already checked."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    media: tuple[tuple[str, str], ...] = field(default=())


def e164(number: str, region: str) -> str | None:
    """``number`` in E.164 (``+15125550123``), or None when it cannot be a phone number."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_inbound(form: Mapping[str, str], settings: Settings) -> Inbound:
    """Read Twilio's inbound webhook parameters.

    Args:
        form: The POST form.
        settings: For the default region and the longest body accepted.

    Returns:
        The checked inbound text.

    Raises:
        BadInbound: With the reason, when a parameter is missing or unreadable.
    """
    for name in ("MessageSid", "From", "To"):
        if not form.get(name, "").strip():
            raise BadInbound(f"missing parameter {name}")
    sid = form["MessageSid"].strip()
    if not SID.fullmatch(sid):
        raise BadInbound("MessageSid must be 2-64 letters or digits")
    sender = e164(form["From"].strip(), settings.default_region)
    if sender is None:
        raise BadInbound("From is not a phone number")
    raw_to = form["To"].strip()
    to = raw_to if SHORT_CODE.fullmatch(raw_to) else e164(raw_to, settings.default_region)
    if to is None:
        raise BadInbound("To is not a phone number or short code")
    if "Body" not in form:
        raise BadInbound("missing parameter Body")
    body = form["Body"]
    if "\x00" in body:
        raise BadInbound("Body contains a NUL character")
    if len(body) > settings.max_inbound_chars:
        raise BadInbound(f"Body is longer than {settings.max_inbound_chars} characters")
    try:
        count = int(form.get("NumMedia", "0") or "0")
    except ValueError:
        raise BadInbound("NumMedia must be a whole number") from None
    if not 0 <= count <= MAX_MEDIA:
        raise BadInbound(f"NumMedia must be between 0 and {MAX_MEDIA}")
    media = []
    for i in range(count):
        url = form.get(f"MediaUrl{i}", "").strip()
        if not url.startswith(("https://", "http://")):
            raise BadInbound(f"MediaUrl{i} is missing or not a URL")
        media.append((url, form.get(f"MediaContentType{i}", "").strip()))
    return Inbound(sid, sender, to, body, tuple(media))


# --- receiving ------------------------------------------------------------------------


def receive(rt: Runtime, inbound: Inbound) -> list[str] | None:
    """Record an inbound text, handle it in turn, and return the replies for it.

    Args:
        rt: The process's resources.
        inbound: The text.

    Returns:
        The reply texts for this message (the same ones for a repeated ``MessageSid``), or
        None when the replies go out as new texts instead: the turn could not be taken in
        time, or a first copy of the message was answered that way.
    """
    row_id, done = record(rt, inbound)
    if done:
        return answer_of(rt, row_id)
    store = rt.conversations
    answers: dict[int, list[str] | None] = {}
    with store.lock(inbound.from_number, inbound.to_number, rt.settings.lock_wait_seconds) as got:
        if got:
            process_pending(rt, inbound.from_number, inbound.to_number, answers)
    if got:  # our turn was taken, with any older texts of this conversation
        return answers[row_id] if row_id in answers else answer_of(rt, row_id)
    with rt.db.session() as session:
        # Give up waiting unless another webhook took our turn meanwhile: from now on its
        # replies go out through the API.
        result = session.execute(
            update(InboundSms)
            .where(InboundSms.id == row_id, InboundSms.processed_at.is_(None))
            .values(reply_via="api")
        )
        handed_over = bool(getattr(result, "rowcount", 0))
        session.commit()
    if not handed_over:
        return answer_of(rt, row_id)
    from bot import jobs

    jobs.enqueue_pending(rt, inbound.from_number, inbound.to_number)
    logger.warning(
        "turn lock busy for %s; %s left to the worker", inbound.from_number, inbound.message_sid
    )
    return None


def answer_of(rt: Runtime, row_id: int) -> list[str] | None:
    """The TwiML replies of a handled text (None when they were sent as new texts)."""
    with rt.db.session() as session:
        row = session.get(InboundSms, row_id)
        if row is None or row.processed_at is None:
            logger.error("inbound %s still pending after its turn", row_id)
            return None  # the worker's sweep takes it
        return list(row.reply or []) if row.reply_via == "twiml" else None


def record(rt: Runtime, inbound: Inbound) -> tuple[int, bool]:
    """Write the text to SQL, committed at once (one statement, before any handling).

    Returns:
        The row id, and whether it was handled already (a repeated ``MessageSid``).
    """
    values = {
        "message_sid": inbound.message_sid,
        "from_number": inbound.from_number,
        "to_number": inbound.to_number,
        "body": inbound.body,
        "media": [{"url": url, "content_type": kind} for url, kind in inbound.media],
    }
    new = rt.db.insert_new(InboundSms, "message_sid").values(values).returning(InboundSms.id)
    with rt.db.autocommit() as connection:
        row_id = connection.execute(new).scalar()
        if row_id is not None:
            return row_id, False
        first = connection.execute(
            select(
                InboundSms.id,
                InboundSms.from_number,
                InboundSms.to_number,
                InboundSms.processed_at,
            ).where(InboundSms.message_sid == inbound.message_sid)
        ).one()
    if (first.from_number, first.to_number) != (inbound.from_number, inbound.to_number):
        raise BadInbound("MessageSid was already used by another conversation")
    logger.info("repeated MessageSid %s", inbound.message_sid)
    return first.id, first.processed_at is not None


PENDING_BATCH = 20

# The statements every text runs, built once: building one costs about as much as running it.
PENDING = (
    select(InboundSms)
    .where(
        InboundSms.from_number == bindparam("from_number"),
        InboundSms.to_number == bindparam("to_number"),
        InboundSms.processed_at.is_(None),
    )
    .order_by(InboundSms.id)
    .limit(PENDING_BATCH)
)
ACCOUNT_BY_PHONE = select(Account).where(Account.phone == bindparam("phone"))
MARK_PROCESSED = (
    update(InboundSms)
    .where(InboundSms.id == bindparam("row_id"), InboundSms.processed_at.is_(None))
    .values(processed_at=bindparam("now"), reply=bindparam("replies"))
    .returning(InboundSms.reply_via)
    .execution_options(synchronize_session=False)
)
ADD_REPLIES = insert(OutboundSms).returning(OutboundSms.id, sort_by_parameter_order=True)


def process_pending(
    rt: Runtime,
    from_number: str,
    to_number: str,
    answers: dict[int, list[str] | None] | None = None,
) -> int:
    """Handle every unprocessed text of one conversation, oldest first.

    The caller holds the conversation's turn lock. A text that arrives meanwhile is its
    own webhook's to handle (it waits for the lock), or the worker's.

    Args:
        answers: Filled with each handled row's TwiML replies (None when they go out as
            new texts), so the webhook need not read its row again.

    Returns:
        How many texts were handled.
    """
    handled = 0
    while True:
        with rt.db.session() as session:
            where = {"from_number": from_number, "to_number": to_number}
            rows = session.scalars(PENDING, where).all()
            for index, row in enumerate(rows):
                if index:  # what an earlier turn loaded may have changed elsewhere since
                    session.expire_all()
                row_id = row.id
                took, replies = take_turn(rt, session, row)
                if took and answers is not None:
                    answers[row_id] = replies
                handled += took
        if len(rows) < PENDING_BATCH:
            return handled


def take_turn(rt: Runtime, session: Session, row: InboundSms) -> tuple[bool, list[str] | None]:
    """Handle one text and commit its effects, its replies and its processed mark.

    Returns:
        Whether this turn handled the text (False: another had, meanwhile), and its
        replies when they go back as TwiML (None when they go out as new texts).
    """
    store = rt.conversations
    try:
        outcome = handle(rt.settings, session, row, store.load(row.from_number, row.to_number))
    except Exception:
        logger.exception("turn failed for inbound %s", row.message_sid)
        session.rollback()
        account = session.scalars(ACCOUNT_BY_PHONE, {"phone": row.from_number}).first()
        language = account.language if account else i18n.DEFAULT_LANGUAGE
        outcome = Outcome([i18n.text(language, "error.sorry")], keep=True)
    outcome.replies = [sms.printable(reply) for reply in outcome.replies]
    now = utcnow()
    # Mark it handled first: this write takes the row (and, on SQLite, the database) so a
    # webhook giving up on the wait cannot change reply_via between our read and commit.
    marked = {"row_id": row.id, "now": now, "replies": outcome.replies}
    via = session.scalars(MARK_PROCESSED, marked).first()
    if via is None:  # handled already (a turn lock that ran out): its answer stands
        logger.error("inbound %s was handled twice; the second turn is dropped", row.message_sid)
        session.rollback()
        return False, None
    if via == "twiml" and now - row.received_at > TWIML_DEADLINE:
        via = "api"  # its webhook is long gone (a process died): answer by a new text
        session.execute(update(InboundSms).where(InboundSms.id == row.id).values(reply_via=via))
    status = "replied" if via == "twiml" else "queued"
    reply_rows = [
        {
            "idempotency_key": f"reply:{row.message_sid}:{i}",
            "to_number": row.from_number,
            "from_number": row.to_number,
            "body": body,
            "kind": outcome.kind,
            "status": status,
            "inbound_id": row.id,
        }
        for i, body in enumerate(outcome.replies)
    ]
    queued = list(session.scalars(ADD_REPLIES, reply_rows)) if reply_rows else []
    session.commit()
    if outcome.clear:
        store.clear(row.from_number, row.to_number)
    elif outcome.conversation is not None:
        store.save(row.from_number, row.to_number, outcome.conversation)
    from bot import jobs

    if via != "twiml":
        sending = select(OutboundSms).where(OutboundSms.id.in_(queued)).order_by(OutboundSms.id)
        for out in session.scalars(sending):
            jobs.enqueue_sms(rt, out)
    for later in outcome.later:
        jobs.enqueue_later(rt, later)
    return True, (list(outcome.replies) if via == "twiml" else None)


# --- one turn -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a turn produced: replies, and where the conversation is now."""

    replies: list[str]
    conversation: Conversation | None = None
    keep: bool = False
    clear: bool = False
    # "reply", or "compliance" for the STOP and HELP answers, sent even to opted-out numbers
    kind: str = "reply"
    later: list[Later] = field(default_factory=list)


def handle(
    settings: Settings, session: Session, row: InboundSms, saved: Conversation | None
) -> Outcome:
    """Decide the replies to one text. Changes are flushed, not committed.

    Keywords come first and work at every step; then the flow the person is in reads
    the text. Opted-out numbers get silence until START.
    """
    text = row.body
    keyword = words.keyword(text)
    account = session.scalars(ACCOUNT_BY_PHONE, {"phone": row.from_number}).first()

    if keyword == "help":
        language = account.language if account else guess_language(text)
        values = {"support": settings.support_contact}
        return Outcome([i18n.text(language, "help", **values)], keep=True, kind="compliance")

    if account is not None and account.opted_out_at is not None:
        if keyword != "start" and words.simplify(text) != "yes":
            return Outcome([], keep=True)
        account.opted_out_at = None
        turn = Turn(settings, session, account, Conversation("menu", "main"))
        turn.say("start.resumed")
        turn.goto("menu" if account.consented else "onboarding")
        return Outcome(turn.replies, turn.conversation)

    if keyword == "stop" or (keyword is None and words.is_opt_out(text)):
        if account is None:
            account = Account(phone=row.from_number)
            session.add(account)
        account.opted_out_at = utcnow()
        session.flush()
        confirmation = i18n.text(account.language, "stop.confirm")
        return Outcome([confirmation], clear=True, kind="compliance")

    first_contact = account is None
    if account is None:
        account = Account(phone=row.from_number, language=guess_language(text))
        session.add(account)
        session.flush()

    resumed = False
    if not account.consented:
        conversation = Conversation("onboarding", "consent")
    elif (
        saved is not None and saved.flow in REGISTRY and REGISTRY[saved.flow].has_step(saved.state)
    ):
        conversation = saved
    else:
        # Idle expiry or an emptied Redis. A draft touched recently means they are still
        # writing: the text goes on it. Otherwise they land on the menu.
        conversation = Conversation("menu", "main")
        draft = recent_draft(settings, session, account)
        if draft is not None:
            conversation = Conversation("compose", "writing", {"draft": draft.id})
            resumed = True
        else:
            keyword = keyword or "menu"
    turn = Turn(settings, session, account, conversation, inbound=row)
    blank = not text.strip() and not (row.media and conversation.flow == "compose")

    if keyword in ("es", "en"):
        changed = account.language != keyword
        account.language = keyword
        if changed and not first_contact:
            turn.say("language.set")
        turn.flow().prompt(turn)
    elif first_contact or blank:
        turn.flow().prompt(turn)  # nothing to read (a blank text, a photo alone): ask again
    elif keyword == "menu" and account.consented:
        turn.goto("menu")
    elif keyword == "stamps" and account.consented:
        turn.goto("stamps")
    elif keyword == "status" and account.consented:
        turn.replies.append(delivery.status_text(session, account))
    elif keyword == "back":
        flow = turn.flow()
        if flow.can("back", turn.state):
            flow.fire(turn, "back")
        elif account.consented:
            turn.goto("menu")
        else:
            flow.prompt(turn)
    elif resumed and not looks_like_writing(text, row):
        turn.flow().prompt(turn)  # "2" or "yes" was an answer to a lost question: say where
    else:
        if resumed:
            turn.say("compose.still_writing", first=draft_name(session, conversation))
        turn.flow().read(turn, text)
    session.flush()
    return Outcome(turn.replies, turn.conversation, later=turn.jobs)


def looks_like_writing(text: str, row: InboundSms) -> bool:
    """True for a text that is more of a message, not a reply to a menu (``2``, ``yes``)."""
    if row.media:
        return True
    simple = words.simplify(text)
    if words.number(text) is not None or words.is_yes(text) or words.is_no(text):
        return False
    return len(simple.split()) > 1 or len(simple) > 12


def recent_draft(settings: Settings, session: Session, account: Account) -> Draft | None:
    """An open draft written to within the idle window, if any."""
    since = utcnow() - timedelta(seconds=settings.conversation_idle_seconds)
    return session.scalars(
        select(Draft)
        .where(Draft.account_id == account.id, Draft.status == "open", Draft.updated_at >= since)
        .order_by(Draft.updated_at.desc())
        .limit(1)
    ).first()


def draft_name(session: Session, conversation: Conversation) -> str:
    """The first name of the person a resumed draft is for."""
    draft = session.get(Draft, conversation.ctx["draft"])
    assert draft is not None
    return draft.inmate.first_name


SPANISH_HINTS = frozenset({"hola", "buenas", "buenos dias", "buenas tardes", "espanol", "es", "si"})


def guess_language(text: str) -> str:
    """Spanish for a first text like ``Hola``; English otherwise."""
    return "es" if words.simplify(text) in SPANISH_HINTS else "en"
