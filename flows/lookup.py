"""Finding a loved one: state, then ID or name, then the right person, then saving them."""

from __future__ import annotations

from sqlalchemy import select

from bot import directory, words
from bot.directory import PAGE_SIZE, State, states
from bot.flow import Flow, Step, Turn
from bot.store.models import Contact, Inmate

NAME = "lookup"

STEPS = {
    "ask_state": Step(prompt="prompt_state", read="read_state"),
    "guess_state": Step(prompt="prompt_guess", read="read_guess"),
    "ask_person": Step(prompt="prompt_person", read="read_person"),
    "pick": Step(prompt="prompt_pick", read="read_pick"),
    "confirm": Step(prompt="prompt_confirm", read="read_confirm"),
    "after": Step(prompt=None, read="read_after"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger     source                                      destination
    ("chosen",    ["ask_state", "guess_state"],               "ask_person"),
    ("guess",     ["ask_state", "guess_state"],               "guess_state"),
    ("retry",     "guess_state",                              "ask_state"),
    ("many",      ["ask_person", "pick", "after"],            "pick"),
    ("one",       ["ask_person", "pick", "after"],            "confirm"),
    ("new",       ["pick", "confirm", "after"],               "ask_person"),
    ("ended",     "confirm",                                  "after"),
    ("back",      ["guess_state", "ask_person"],              "ask_state"),
    ("back",      ["pick", "after"],                          "ask_person"),
    ("back",      "confirm",                                  "ask_person"),
]  # fmt: skip


def chosen_state(turn: Turn) -> State:
    """The state picked earlier in this lookup."""
    return states()[turn.ctx["st"]]


def state_name(turn: Turn, state: State | None = None) -> str:
    """The state's name in the person's language."""
    return (state or chosen_state(turn)).display_name(turn.lang)


def id_shape(turn: Turn, state: State) -> str:
    """The shape of a state's IDs in words: ``up to 8 digits``, ``2 letters and 4 digits``."""
    low, high = state.id_digits_min, state.id_digits_max
    if low == high:
        digits = turn.t("lookup.shape.digits", n=high)
    elif low == 1:
        digits = turn.t("lookup.shape.digits_upto", n=high)
    else:
        digits = turn.t("lookup.shape.digits_range", low=low, high=high)
    if not state.id_letters:
        return digits
    letters = (
        turn.t("lookup.shape.letter")
        if state.id_letters == 1
        else turn.t("lookup.shape.letters", n=state.id_letters)
    )
    return turn.t("lookup.shape.join", letters=letters, digits=digits)


def echo(text: str, limit: int = 24) -> str:
    """What the person typed, shortened for quoting back."""
    clean = " ".join(text.split())
    return clean if len(clean) <= limit else clean[: limit - 3].rstrip() + "..."


# --- state ----------------------------------------------------------------------------


def prompt_state(turn: Turn) -> None:
    """Ask which state the loved one is in."""
    turn.say("lookup.ask_state")


def read_state(turn: Turn, text: str) -> str | None:
    """A state name or code moves on; a near miss is asked back; otherwise ask again."""
    match = directory.find_state(text)
    if match is None:
        turn.say("lookup.state_unknown", text=echo(text))
        return None
    if not match.sure:
        turn.ctx["guess"] = match.state.code
        return "guess"
    if not directory.state_has_service(turn.session, match.state):
        turn.say("lookup.no_service", state=state_name(turn, match.state))
        return None
    turn.ctx["st"] = match.state.code
    return "chosen"


def prompt_guess(turn: Turn) -> None:
    """Check a guessed state: "Did you mean Texas?"."""
    turn.say("lookup.state_guess", state=state_name(turn, states()[turn.ctx["guess"]]))


def read_guess(turn: Turn, text: str) -> str | None:
    """YES takes the guess, NO asks again, anything else is read as a state."""
    if words.is_yes(text):
        guess = states()[turn.ctx.pop("guess")]
        if not directory.state_has_service(turn.session, guess):
            turn.say("lookup.no_service", state=state_name(turn, guess))
            return "retry"
        turn.ctx["st"] = guess.code
        return "chosen"
    if words.is_no(text):
        return "retry"
    return read_state(turn, text)


# --- person ---------------------------------------------------------------------------


def prompt_person(turn: Turn) -> None:
    """Ask for the ID or the name, with an example ID for that state."""
    state = chosen_state(turn)
    turn.say("lookup.ask_person", state=state_name(turn), example=state.id_example)


def read_person(turn: Turn, text: str) -> str | None:
    """Digits are an ID (checked against the state's format); letters are a name."""
    state = chosen_state(turn)
    if directory.looks_like_id(text):
        inmate_id = state.normalize_id(text)
        if not state.id_fits(inmate_id):
            turn.say(
                "lookup.id_format",
                state=state_name(turn),
                shape=id_shape(turn, state),
                example=state.id_example,
            )
            return None
        person = directory.find_by_id(turn.session, state, inmate_id)
        if person is None:
            turn.say("lookup.id_not_found", inmate_id=inmate_id, state=state_name(turn))
            return None
        turn.ctx["pick"] = person.id
        return "one"
    if not directory.fold(text):
        prompt_person(turn)
        return None
    people, total = directory.search_by_name(turn.session, state, text)
    if total == 0:
        turn.say("lookup.name_not_found", name=echo(text), state=state_name(turn))
        return None
    if total == 1:
        turn.ctx["pick"] = people[0].id
        return "one"
    turn.ctx.update(q=text[:80], off=0)
    return "many"


def page(turn: Turn) -> tuple[list[Inmate], int]:
    """The current page of name matches and their total."""
    return directory.search_by_name(
        turn.session, chosen_state(turn), turn.ctx["q"], offset=turn.ctx.get("off", 0)
    )


def prompt_pick(turn: Turn) -> None:
    """List up to five matches, numbered, with their facility."""
    people, total = page(turn)
    first = turn.ctx.get("off", 0) + 1
    last = first + len(people) - 1
    lines = "\n".join(
        turn.t(
            "lookup.match_line_released" if p.released else "lookup.match_line",
            n=n,
            name=p.full_name,
            inmate_id=p.inmate_id,
            facility=p.facility.name,
        )
        for n, p in enumerate(people, start=first)
    )
    key = "lookup.matches_more" if last < total else "lookup.matches"
    turn.say(key, total=total, state=state_name(turn), lines=lines, first=first, last=last)


def read_pick(turn: Turn, text: str) -> str | None:
    """A listed number picks; MORE shows the next five; NEW or an ID or name searches again."""
    choice = words.number(text)
    offset = turn.ctx.get("off", 0)
    if choice is not None:
        people, _ = page(turn)
        if offset < choice <= offset + len(people):
            turn.ctx["pick"] = people[choice - offset - 1].id
            return "one"
        return "many"
    if words.is_word(text, "more", "mas", "next", "siguiente"):
        people, total = page(turn)
        if offset + PAGE_SIZE < total:
            turn.ctx["off"] = offset + PAGE_SIZE
            return "many"
        turn.say("lookup.no_more", first=offset + 1, last=offset + len(people))
        return None
    if words.is_no(text) or words.is_word(
        text, "new", "nuevo", "nueva", "otra", "otro", "again", "none", "ninguno", "ninguna"
    ):
        return "new"
    return read_person(turn, text)


# --- confirm and save -----------------------------------------------------------------


def picked(turn: Turn) -> Inmate:
    """The person chosen from the results."""
    person = turn.session.get(Inmate, turn.ctx["pick"])
    assert person is not None, "picked person vanished from the directory"
    return person


def prompt_confirm(turn: Turn) -> None:
    """Show the full name, ID, facility and state, and ask if this is them."""
    person = picked(turn)
    turn.say(
        "lookup.confirm",
        name=person.full_name,
        inmate_id=person.inmate_id,
        facility=person.facility.name,
        state=states()[person.state].code,
    )


def read_confirm(turn: Turn, text: str) -> str | None:
    """YES checks the facility and saves the person; NO searches again."""
    if words.is_no(text) or words.is_word(text, "new", "nuevo", "nueva"):
        return "new"
    if not words.is_yes(text):
        prompt_confirm(turn)
        return None
    person = picked(turn)
    values = {"name": person.full_name, "first": person.first_name}
    if person.released:
        turn.say("lookup.released", facility=person.facility.name, **values)
        return "ended"
    if not person.facility.emessages:
        turn.say("lookup.no_emessages", facility=person.facility.name, **values)
        return "ended"
    save(turn, person)
    return None


def save(turn: Turn, person: Inmate) -> None:
    """Put the person on the account's list (again, if they were removed) and show it."""
    contact = turn.session.scalars(
        select(Contact).where(Contact.account_id == turn.account.id, Contact.inmate_pk == person.id)
    ).first()
    facility = person.facility.name
    if contact is not None and contact.removed_at is None:
        turn.say("lookup.already_saved", name=person.full_name)
    else:
        if contact is None:
            turn.session.add(Contact(account_id=turn.account.id, inmate_pk=person.id))
        else:
            contact.removed_at = None
        key = "lookup.saved" if person.facility.photos else "lookup.saved_no_photos"
        turn.say(key, name=person.full_name, first=person.first_name, facility=facility)
    turn.session.flush()
    turn.goto("menu")


def read_after(turn: Turn, text: str) -> str | None:
    """After a dead end: NEW searches again; an ID or a name is searched straight away."""
    if words.is_word(text, "new", "nuevo", "nueva") or words.is_yes(text):
        return "new"
    if words.is_no(text):
        turn.say("lookup.after")
        return None
    return read_person(turn, text)


FLOW = Flow(NAME, STEPS, TRANSITIONS, globals(), initial="ask_state")
