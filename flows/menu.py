"""The menu: the people on the account's list, and adding or removing one."""

from __future__ import annotations

from sqlalchemy import select

from bot import words
from bot.directory import states
from bot.flow import Flow, Step, Turn
from bot.store.models import Contact, utcnow

NAME = "menu"

STEPS = {
    "main": Step(prompt="prompt_main", read="read_main"),
    "person": Step(prompt="prompt_person", read="read_person"),
    "remove": Step(prompt="prompt_remove", read="read_remove"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger    source                 destination
    ("open",     "main",                "person"),
    ("remove",   "person",              "remove"),
    ("done",     ["person", "remove"],  "main"),
    ("back",     ["person", "remove"],  "main"),
]  # fmt: skip


def contacts(turn: Turn) -> list[Contact]:
    """The account's saved people, in the order they were added."""
    query = (
        select(Contact)
        .where(Contact.account_id == turn.account.id, Contact.removed_at.is_(None))
        .order_by(Contact.created_at, Contact.id)
    )
    return list(turn.session.scalars(query))


def chosen(turn: Turn) -> Contact | None:
    """The contact the person opened, if it is still on their list."""
    contact = turn.session.get(Contact, turn.ctx.get("contact", 0))
    if contact is None or contact.account_id != turn.account.id or contact.removed_at:
        return None
    return contact


def prompt_main(turn: Turn) -> None:
    """List the saved people with a number each, then N to add one."""
    people = contacts(turn)
    if not people:  # nothing to choose from: straight to finding someone
        turn.say("menu.empty")
        turn.goto("lookup", prompt=False)
        return
    lines = "\n".join(
        turn.t("menu.line", n=i, name=c.inmate.short_name, inmate_id=c.inmate.inmate_id)
        for i, c in enumerate(people, start=1)
    )
    turn.say("menu.list", lines=lines)


def read_main(turn: Turn, text: str) -> str | None:
    """A number opens that person; N (or ADD, NEW) starts a lookup."""
    if words.is_word(text, "n", "add", "new", "nuevo", "nueva", "agregar", "anadir"):
        turn.goto("lookup")
        return None
    people = contacts(turn)
    choice = words.number(text)
    if choice is not None and 1 <= choice <= len(people):
        turn.ctx["contact"] = people[choice - 1].id
        return "open"
    prompt_main(turn)
    return None


def prompt_person(turn: Turn) -> None:
    """Show who the person is and where, with what they can do."""
    contact = chosen(turn)
    if contact is None:
        prompt_main(turn)
        return
    inmate = contact.inmate
    turn.say(
        "menu.person",
        name=inmate.full_name,
        first=inmate.first_name,
        inmate_id=inmate.inmate_id,
        facility=inmate.facility.name,
        state=states()[inmate.state].display_name(turn.lang),
    )


def read_person(turn: Turn, text: str) -> str | None:
    """REMOVE asks to confirm; anything else shows the card again."""
    if chosen(turn) is None:
        return "done"
    if words.is_word(text, "remove", "delete", "r", "quitar", "borrar", "eliminar"):
        return "remove"
    prompt_person(turn)
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
