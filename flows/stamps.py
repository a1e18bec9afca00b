"""Stamps: balances, bundles, and a payment link for the chosen bundle."""

from __future__ import annotations

from sqlalchemy import select

from bot import stamps, words
from bot.flow import Flow, Step, Turn
from bot.store.models import Contact, Inmate
from flows.compose import wallet

NAME = "stamps"

STEPS = {
    "state": Step(prompt="prompt_state", read="read_state"),
    "bundles": Step(prompt="prompt_bundles", read="read_bundles"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = [
    # trigger     source      destination
    ("chosen",    "state",    "bundles"),
    ("back",      "bundles",  "state"),
]  # fmt: skip


def contact_states(turn: Turn) -> list[str]:
    """The states of the people on the account's list, in list order, once each."""
    codes = turn.session.scalars(
        select(Inmate.state)
        .join(Contact, Contact.inmate_pk == Inmate.id)
        .where(Contact.account_id == turn.account.id, Contact.removed_at.is_(None))
        .order_by(Contact.created_at, Contact.id)
    ).all()
    return list(dict.fromkeys(codes))


def prompt_state(turn: Turn) -> None:
    """One state: straight to its bundles. Several: ask which. None: find someone first."""
    codes = contact_states(turn)
    if not codes:
        turn.say("stamps.no_state")
        turn.goto("menu")
        return
    if len(codes) == 1:
        turn.ctx["st"] = codes[0]
        turn.conversation.state = "bundles"
        prompt_bundles(turn)
        return
    lines = "\n".join(
        turn.t(
            "stamps.state_line",
            n=n,
            wallet=wallet(turn, code, stamps.balance(turn.session, turn.account.id, code)),
        )
        for n, code in enumerate(codes, start=1)
    )
    turn.say("stamps.pick_state", lines=lines, last=len(codes))


def read_state(turn: Turn, text: str) -> str | None:
    """A number picks the state."""
    codes = contact_states(turn)
    choice = words.number(text)
    if choice is not None and 1 <= choice <= len(codes):
        turn.ctx["st"] = codes[choice - 1]
        return "chosen"
    prompt_state(turn)
    return None


def prompt_bundles(turn: Turn) -> None:
    """The balance and the bundles for the chosen state, numbered."""
    state = turn.ctx["st"]
    offers = stamps.bundles(state)
    lines = "\n".join(
        turn.t(
            "stamps.bundle_line",
            n=n,
            stamps=bundle.stamps,
            price=stamps.money(bundle.price_cents),
        )
        for n, bundle in enumerate(offers, start=1)
    )
    have = wallet(turn, state, stamps.balance(turn.session, turn.account.id, state))
    need = turn.ctx.get("need")
    if need:
        turn.say(
            "stamps.need",
            need=wallet(turn, state, need),
            balance=have,
            lines=lines,
            last=len(offers),
        )
    else:
        turn.say("stamps.bundles", balance=have, lines=lines, last=len(offers))


def read_bundles(turn: Turn, text: str) -> str | None:
    """A number makes a purchase and texts its link; the conversation goes back to where
    it was (the message being written, or the menu)."""
    state = turn.ctx["st"]
    offers = stamps.bundles(state)
    draft_id = turn.ctx.get("draft")
    choice = words.number(text)
    if choice is not None and 1 <= choice <= len(offers):
        bundle = offers[choice - 1]
        purchase = stamps.create_purchase(
            turn.session, turn.settings, turn.account.id, state, bundle, draft_id
        )
        if turn.inbound is not None:
            purchase.to_number = turn.inbound.to_number
        turn.say(
            "stamps.link",
            stamps=wallet(turn, state, bundle.stamps),
            price=stamps.money(bundle.price_cents),
            url=stamps.link(turn.settings, purchase),
            minutes=turn.settings.link_ttl_seconds // 60,
        )
        if draft_id:
            turn.goto("compose", "preview", prompt=False, ctx={"draft": draft_id})
        else:
            turn.goto("menu", prompt=False)
        return None
    if draft_id and words.is_word(text, "edit", "editar", "write", "escribir"):
        turn.goto("compose", "writing", ctx={"draft": draft_id})
        return None
    prompt_bundles(turn)
    return None


FLOW = Flow(NAME, STEPS, TRANSITIONS, globals(), initial="state")
