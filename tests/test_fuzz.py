"""Arbitrary input at the webhook and at every step of every flow: never a 5xx, always
valid TwiML, and the conversation always somewhere real afterwards."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.flow import REGISTRY
from bot.store.conversations import Conversation
from tests.conftest import Phone, twiml_messages

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Form values travel as UTF-8: any text without lone surrogates can reach us.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
HUGE = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é", "😀", "\x00", "\r\n"]), st.integers(1500, 6000)
)
numbers = itertools.count(1000)


def state_is_valid(rt, phone: Phone) -> None:
    saved = rt.conversations.load(phone.number, phone.to)
    if saved is not None:
        assert saved.flow in REGISTRY and REGISTRY[saved.flow].has_step(saved.state), saved


@FUZZ
@given(
    body=st.one_of(TEXT, HUGE),
    extra=st.dictionaries(
        st.sampled_from(
            ["NumMedia", "MediaUrl0", "MediaContentType0", "From", "To", "NumSegments"]
        ),
        TEXT,
        max_size=3,
    ),
)
def test_the_webhook_never_fails(rt, client, sample_directory, body, extra):
    phone = Phone(client, f"+1512555{next(numbers) % 10000:04d}")
    form = phone.form(body, **extra)
    response = phone.post(form)
    assert response.status_code in (200, 400, 403), response.status_code
    if response.status_code == 200:
        twiml_messages(response.data)
    state_is_valid(rt, phone)


STEPS = [
    ("onboarding", "consent", {}),
    ("lookup", "ask_state", {}),
    ("lookup", "guess_state", {"guess": "TX"}),
    ("lookup", "ask_person", {"st": "TX"}),
    ("lookup", "pick", {"st": "TX", "q": "Garcia", "off": 0}),
    ("lookup", "confirm", {"st": "TX", "pick": 1}),
    ("lookup", "after", {"st": "TX"}),
    ("menu", "main", {}),
    ("menu", "pick_remove", {}),
    ("menu", "remove", {"contact": 1}),
    ("compose", "writing", {"draft": 1}),
    ("compose", "preview", {"draft": 1}),
    ("compose", "discard", {"draft": 1}),
    ("stamps", "state", {}),
    ("stamps", "bundles", {"st": "TX", "draft": 1, "need": 2}),
]


def test_every_step_is_fuzzed():
    declared = {(flow.name, step) for flow in REGISTRY.values() for step in flow._reads}
    assert declared == {(flow, step) for flow, step, _ in STEPS}


@FUZZ
@given(step=st.sampled_from(STEPS), body=TEXT)
def test_every_step_takes_any_text(rt, client, sample_directory, step, body):
    phone = Phone(client, "+15125550199")
    if not rt.conversations.load(phone.number, phone.to):
        for text in ("Hi", "YES", "TX", "01234567", "yes", "1", "draft text"):
            phone.text(text)
    flow, state, ctx = step
    rt.conversations.save(phone.number, phone.to, Conversation(flow, state, dict(ctx)))
    response = phone.post(phone.form(body))
    if "\x00" in body:  # no phone sends NUL, and SQL text cannot hold it: refused with why
        assert response.status_code == 400 and b"NUL" in response.data
        return
    assert response.status_code == 200
    twiml_messages(response.data)
    state_is_valid(rt, phone)
