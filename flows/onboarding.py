"""First contact: who we are, the terms, and YES to start."""

from __future__ import annotations

from bot import words
from bot.flow import Flow, Step, Turn
from bot.store.models import utcnow

NAME = "onboarding"

STEPS = {
    "consent": Step(prompt="prompt_consent", read="read_consent"),
}

TRANSITIONS: list[tuple[str, str | list[str], str]] = []


def prompt_consent(turn: Turn) -> None:
    """Introduce Kinline and ask for YES to the terms."""
    turn.say("onboarding.welcome", terms_url=turn.settings.terms_url)


def read_consent(turn: Turn, text: str) -> str | None:
    """YES records consent and starts the first lookup; anything else asks again."""
    if not words.is_yes(text):
        turn.say("onboarding.need_yes", terms_url=turn.settings.terms_url)
        return None
    turn.account.consent_at = utcnow()
    turn.account.terms_version = turn.settings.terms_version
    turn.say("onboarding.done")
    turn.goto("lookup", prompt=False)
    return None


FLOW = Flow(NAME, STEPS, TRANSITIONS, globals(), initial="consent")
