"""The menu: write to someone on the list, add or remove a person, stamps."""

from __future__ import annotations

from sqlalchemy import select

from bot import words
from bot.flow import Flow, Step, Turn
from bot.store.models import Contact, Draft, utcnow

NAME = "menu"

STEPS = {
    "main": Step(prompt="prompt_main", read="read_main"),
    "pick_remove": Step(prompt="prompt_pick_remove", read="read_pick_remove"),
    "remove": Step(prompt="prompt_remove", read="read_remove"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger     source                       destination
    ("remove",    "main",                      "pick_remove"),
    ("picked",    "pick_remove",               "remove"),
    ("done",      ["pick_remove", "remove"],   "main"),
    ("back",      ["pick_remove", "remove"],   "main"),
]  # fmt: skip

ADD_WORDS = ("n", "add", "new", "nuevo", "nueva", "agregar", "anadir")
REMOVE_WORDS = ("r", "remove", "delete", "quitar", "borrar", "eliminar")
STAMP_WORDS = ("s", "stamps", "stamp", "estampillas", "sellos", "buy", "comprar")


def contacts(turn: Turn) -> list[Contact]:
    """The account's saved people, in the order they were added."""
    query = (
        select(Contact)
        .where(Contact.account_id == turn.account.id, Contact.removed_at.is_(None))
        .order_by(Contact.created_at, Contact.id)
    )
    return list(turn.session.scalars(query))


def chosen(turn: Turn) -> Contact | None:
    """The contact picked for removal, if it is still on their list."""
    contact = turn.session.get(Contact, turn.ctx.get("contact", 0))
    if contact is None or contact.account_id != turn.account.id or contact.removed_at:
        return None
    return contact


def prompt_main(turn: Turn) -> None:
    """Number each saved person to write to, then add, remove and stamps."""
    people = contacts(turn)
    if not people:  # nothing to choose from: straight to finding someone
        turn.say("menu.empty")
        turn.goto("lookup", prompt=False)
        return
    drafts = set(
        turn.session.scalars(
            select(Draft.inmate_pk).where(
                Draft.account_id == turn.account.id, Draft.status == "open", Draft.body != ""
            )
        )
    )
    lines = "\n".join(
        turn.t(
            "menu.line_draft" if c.inmate_pk in drafts else "menu.line",
            n=i,
            name=c.inmate.short_name,
            inmate_id=c.inmate.inmate_id,
        )
        for i, c in enumerate(people, start=1)
    )
    turn.say("menu.list", lines=lines)


def read_main(turn: Turn, text: str) -> str | None:
    """A number writes to that person; N adds one, R removes one, S is for stamps."""
    from flows import compose

    if words.is_word(text, *ADD_WORDS):
        turn.goto("lookup")
        return None
    if words.is_word(text, *STAMP_WORDS):
        turn.goto("stamps")
        return None
    people = contacts(turn)
    if words.is_word(text, *REMOVE_WORDS) and people:
        return "remove"
    choice = words.number(text)
    if choice is not None and 1 <= choice <= len(people):
        compose.start(turn, people[choice - 1].inmate)
        return None
    prompt_main(turn)
    return None


def prompt_pick_remove(turn: Turn) -> None:
    """Ask which person to take off the list (with only one, straight to the question)."""
    people = contacts(turn)
    if not people:
        prompt_main(turn)
        return
    if len(people) == 1:
        turn.ctx["contact"] = people[0].id
        turn.conversation.state = "remove"
        prompt_remove(turn)
        return
    turn.say("menu.pick_remove", last=len(people))


def read_pick_remove(turn: Turn, text: str) -> str | None:
    """A number picks who to remove."""
    people = contacts(turn)
    choice = words.number(text)
    if choice is not None and 1 <= choice <= len(people):
        turn.ctx["contact"] = people[choice - 1].id
        return "picked"
    if words.is_no(text):
        return "done"
    prompt_pick_remove(turn)
    return None


def prompt_remove(turn: Turn) -> None:
    """Ask before taking someone off the list."""
    contact = chosen(turn)
    if contact is None:
        prompt_main(turn)
        return
    turn.say(
        "menu.confirm_remove", name=contact.inmate.full_name, inmate_id=contact.inmate.inmate_id
    )


def read_remove(turn: Turn, text: str) -> str | None:
    """YES removes (softly: history keeps the link); NO keeps them."""
    contact = chosen(turn)
    if contact is None:
        return "done"
    if words.is_yes(text):
        contact.removed_at = utcnow()
        turn.say("menu.removed", name=contact.inmate.full_name)
        return "done"
    if words.is_no(text):
        turn.say("menu.kept", first=contact.inmate.first_name)
        return "done"
    prompt_remove(turn)
    return None


FLOW = Flow(NAME, STEPS, TRANSITIONS, globals(), initial="main")
