"""Writing a message: texts and photos go into a durable draft, then preview, then SEND."""

from __future__ import annotations

import secrets

from sqlalchemy import select, update

from bot import media, sms, stamps, wording, words
from bot.flow import Flow, Step, Turn
from bot.store.models import Attachment, Draft, Inmate, Message, MessageEvent, utcnow

NAME = "compose"

STEPS = {
    "writing": Step(prompt="prompt_writing", read="read_writing"),
    "preview": Step(prompt="prompt_preview", read="read_preview"),
    "discard": Step(prompt="prompt_discard", read="read_discard"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger     source                    destination
    ("done",      "writing",                "preview"),
    ("edit",      ["preview", "discard"],   "writing"),
    ("discard",   ["writing", "preview"],   "discard"),
    ("keep",      "discard",                "preview"),
    ("back",      "preview",                "writing"),
    ("back",      "discard",                "preview"),
]  # fmt: skip

DONE_WORDS = ("done", "listo", "lista", "ready", "fin", "finished", "terminado", "termine")
SEND_WORDS = ("send", "enviar", "envialo", "mandar", "send it")
EDIT_WORDS = ("edit", "editar", "write", "escribir", "more", "mas", "add", "agregar")
DISCARD_WORDS = ("discard", "delete", "descartar", "borrar", "eliminar")
COST_WORDS = ("cost", "costo", "price", "precio", "how much", "cuanto", "cuanto cuesta", "total")
REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


# --- the draft ------------------------------------------------------------------------


def start(turn: Turn, inmate: Inmate) -> None:
    """Open (or reopen) the account's draft to ``inmate`` and start writing."""
    draft = turn.session.scalars(
        select(Draft).where(
            Draft.account_id == turn.account.id,
            Draft.inmate_pk == inmate.id,
            Draft.status == "open",
        )
    ).first()
    if draft is None:
        draft = Draft(
            account_id=turn.account.id,
            inmate_pk=inmate.id,
            to_number=turn.inbound.to_number if turn.inbound else None,
        )
        turn.session.add(draft)
        turn.session.flush()
    turn.goto(NAME, "writing", ctx={"draft": draft.id})


def latest_open_draft(turn: Turn) -> Draft | None:
    """The account's most recently touched open draft, if any."""
    return turn.session.scalars(
        select(Draft)
        .where(Draft.account_id == turn.account.id, Draft.status == "open")
        .order_by(Draft.updated_at.desc(), Draft.id.desc())
        .limit(1)
    ).first()


def current(turn: Turn) -> Draft | None:
    """The draft this conversation is writing, if it is still open and theirs."""
    draft = turn.session.get(Draft, turn.ctx.get("draft", 0))
    if draft is None or draft.account_id != turn.account.id or draft.status != "open":
        return None
    return draft


def usable_attachments(draft: Draft) -> list[Attachment]:
    """Attachments that are, or may still become, part of the message."""
    return [a for a in draft.attachments if a.status in ("pending", "stored")]


def size(turn: Turn, chars: int, attachments: list[Attachment]) -> str:
    """``7,412 characters and 1 photo`` in the person's language."""
    return wording.size(turn.lang, chars, attachments)


def stamp_count(turn: Turn, n: int) -> str:
    """``1 stamp`` / ``3 stamps``."""
    return wording.stamp_count(turn.lang, n)


def wallet(turn: Turn, state: str, n: int) -> str:
    """``4 Texas stamps`` in the person's language."""
    return wording.wallet(turn.lang, state, n)


def cost_of(turn: Turn, draft: Draft) -> int:
    """What the draft costs now."""
    return stamps.draft_cost(turn.settings, draft)


def tally(turn: Turn, draft: Draft) -> None:
    """Say what the draft holds and costs."""
    attachments = usable_attachments(draft)
    turn.say(
        "compose.tally",
        size=size(turn, len(draft.body), attachments),
        stamps=stamp_count(turn, cost_of(turn, draft)),
    )


def cut_by_the_phone(text: str) -> bool:
    """True when a text fills whole SMS parts exactly (or Twilio's 1,600 characters), the
    sign of a long text cut into several by the phone or the network."""
    if len(text) == 1600:
        return True
    if sms.encoding(text) == "GSM-7":
        units, single, part = sms.septet_length(text), 160, 153
    else:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    return units == single or (units > 0 and units % part == 0)


def joiner(draft: Draft, last_text: str | None) -> str:
    """How a new text joins the draft: directly after a text the phone cut, else on a new
    line."""
    if not draft.body:
        return ""
    return "" if last_text is not None and cut_by_the_phone(last_text) else "\n"


def add_text(turn: Turn, draft: Draft, text: str) -> bool:
    """Append a text to the draft unless it would go over the stamp limit."""
    last = draft.body[-draft.last_fragment_chars :] if draft.last_fragment_chars else None
    body = draft.body + joiner(draft, last) + text
    settings = turn.settings
    if (
        stamps.cost(settings, len(body), len(usable_attachments(draft)))
        > settings.max_stamps_per_message
    ):
        turn.say(
            "compose.too_long",
            max=settings.max_stamps_per_message,
            chars=f"{settings.max_stamps_per_message * settings.chars_per_stamp:,}",
        )
        return False
    draft.body = body
    draft.last_fragment_chars = len(text)
    return True


def add_media(turn: Turn, draft: Draft) -> bool:
    """Take the photos and videos of this MMS, or say why one cannot go."""
    row = turn.inbound
    if row is None or not row.media:
        return False
    facility = draft.inmate.facility
    added = False
    for index, item in enumerate(row.media):
        content_type = item.get("content_type", "")
        reason = media.refusal(facility, content_type)
        if reason:
            turn.say(f"compose.media.{reason}", facility=facility.name)
            continue
        if len(usable_attachments(draft)) >= turn.settings.max_attachments:
            most = wording.count(turn.lang, "compose.photos", turn.settings.max_attachments)
            turn.say("compose.media.too_many", max=most)
            break
        if (
            cost_of(turn, draft) + turn.settings.stamps_per_attachment
            > turn.settings.max_stamps_per_message
        ):
            turn.say("compose.media.over_limit", max=turn.settings.max_stamps_per_message)
            break
        attachment = Attachment(
            draft=draft,
            source_key=f"{row.message_sid}:{index}",
            source_url=item["url"],
            content_type=content_type,
            kind=media.kind_of(content_type) or "photo",
        )
        turn.session.add(attachment)
        turn.session.flush()
        turn.later("fetch_media", attachment.id, job_id=f"media-{attachment.id}")
        added = True
    return added


# --- writing ----------------------------------------------------------------------------


def prompt_writing(turn: Turn) -> None:
    """Say who the message is for and how to write it (or what the draft holds so far)."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return
    first = draft.inmate.first_name
    if draft.body or usable_attachments(draft):
        attachments = usable_attachments(draft)
        turn.say("compose.resume", first=first, size=size(turn, len(draft.body), attachments))
    else:
        turn.say("compose.start", first=first)


def read_writing(turn: Turn, text: str) -> str | None:
    """Texts and photos are added silently (a tally follows a pause); DONE reviews."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return None
    has_media = bool(turn.inbound and turn.inbound.media)
    if not has_media:
        if words.is_word(text, *DONE_WORDS, *SEND_WORDS):
            if not draft.body and not usable_attachments(draft):
                turn.say("compose.empty", first=draft.inmate.first_name)
                return None
            draft.fragments += 1  # a tally still scheduled is now out of date
            return "done"
        if words.is_word(text, *DISCARD_WORDS):
            return "discard"
        if words.is_word(text, *COST_WORDS):
            draft.fragments += 1  # answered now: no tally later
            tally(turn, draft)
            return None
    changed = add_media(turn, draft) if has_media else False
    if text.strip():
        changed = add_text(turn, draft, text) or changed
    if changed:
        draft.fragments += 1
        draft.updated_at = utcnow()
        turn.later(
            "tally",
            draft.id,
            draft.fragments,
            delay=turn.settings.tally_delay_seconds,
            job_id=f"tally-{draft.id}-{draft.fragments}",
        )
    return None


# --- preview and send -------------------------------------------------------------------


def prompt_preview(turn: Turn) -> None:
    """Show the start of the message, its size, its cost and the balance."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return
    inmate = draft.inmate
    start_words = opening(draft.body)
    have = stamps.balance(turn.session, turn.account.id, inmate.state)
    turn.say(
        "compose.preview",
        name=inmate.full_name,
        start=start_words,
        size=size(turn, len(draft.body), usable_attachments(draft)),
        stamps=stamp_count(turn, cost_of(turn, draft)),
        balance=wallet(turn, inmate.state, have),
    )


def read_preview(turn: Turn, text: str) -> str | None:
    """SEND pays and sends; EDIT keeps writing; DISCARD asks to confirm."""
    if words.is_word(text, *SEND_WORDS, "yes", "si"):
        send(turn)
        return None
    if words.is_word(text, *EDIT_WORDS):
        return "edit"
    if words.is_word(text, *DISCARD_WORDS):
        return "discard"
    if (turn.inbound is not None and turn.inbound.media) or len(text.split()) > 3:
        # More words or a photo after DONE: it is more of the message, not an answer.
        turn.conversation.state = "writing"
        return read_writing(turn, text)
    prompt_preview(turn)
    return None


def opening(body: str, limit: int = 26) -> str:
    """The first words of a message, cut at a word: ``Hi mom, I got your letter and...``."""
    flat = " ".join(sms.plain(body).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 3]
    if flat[len(cut)] != " " and " " in cut:  # do not end inside a word
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(",.;:!?") + "..."


def claim(turn: Turn, draft: Draft) -> bool:
    """Mark the draft sent if it is still open: only one SEND can win."""
    result = turn.session.execute(
        update(Draft).where(Draft.id == draft.id, Draft.status == "open").values(status="sent")
    )
    turn.session.refresh(draft)
    return bool(getattr(result, "rowcount", 0))


def new_ref(turn: Turn) -> str:
    """A short reference nobody can misread: five characters without 0/O, 1/I/L."""
    while True:
        ref = "".join(secrets.choice(REF_ALPHABET) for _ in range(5))
        if turn.session.scalar(select(Message.id).where(Message.ref == ref)) is None:
            return ref


def send(turn: Turn) -> None:
    """Debit the stamps and turn the draft into a queued message, in this transaction."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return
    inmate = draft.inmate
    pending = [a for a in draft.attachments if a.status == "pending"]
    if pending:
        for attachment in pending:  # a lost fetch job is queued again (its id is unique)
            turn.later("fetch_media", attachment.id, job_id=f"media-{attachment.id}")
        turn.say("compose.media.pending")
        return
    need = cost_of(turn, draft)
    stamps.lock_wallets(turn.session, turn.account.id)
    have = stamps.balance(turn.session, turn.account.id, inmate.state)
    if need > have:
        turn.goto(
            "stamps",
            "bundles",
            ctx={"st": inmate.state, "draft": draft.id, "need": need},
        )
        return
    if not claim(turn, draft):
        turn.goto("menu")
        return
    message = Message(
        ref=new_ref(turn),
        account_id=turn.account.id,
        inmate_pk=inmate.id,
        facility_id=inmate.facility_id,
        state=inmate.state,
        body=draft.body,
        stamps=need,
    )
    turn.session.add(message)
    turn.session.flush()
    stamps.debit(turn.session, message, draft.id)
    for attachment in usable_attachments(draft):
        attachment.message_id = message.id
    draft.message_id = message.id
    draft.updated_at = utcnow()
    turn.session.add(MessageEvent(message_id=message.id, status="queued"))
    turn.later("submit_message", message.id, job_id=f"submit-{message.id}")
    turn.say(
        "compose.sent",
        facility=inmate.facility.name,
        ref=message.ref,
        balance=wallet(turn, inmate.state, have - need),
    )
    turn.goto("menu", prompt=False)


# --- discard ----------------------------------------------------------------------------


def prompt_discard(turn: Turn) -> None:
    """Ask before deleting what they wrote."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return
    turn.say(
        "compose.confirm_discard",
        first=draft.inmate.first_name,
        size=size(turn, len(draft.body), usable_attachments(draft)),
    )


def read_discard(turn: Turn, text: str) -> str | None:
    """YES deletes the draft; NO keeps it and shows it again."""
    draft = current(turn)
    if draft is None:
        turn.goto("menu")
        return None
    if words.is_yes(text):
        draft.status = "discarded"
        draft.updated_at = utcnow()
        turn.say("compose.discarded", first=draft.inmate.first_name)
        turn.goto("menu")
        return None
    if words.is_no(text):
        return "keep"
    prompt_discard(turn)
    return None


FLOW = Flow(NAME, STEPS, TRANSITIONS, globals(), initial="writing")
