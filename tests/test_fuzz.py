"""Arbitrary input at the webhook and at every step of every flow: never a 5xx, always
valid TwiML, and the conversation always somewhere real afterwards."""

from __future__ import annotations

import itertools
import json
from urllib.parse import parse_qsl, urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from bot.engine import SHORT_CODE, e164
from bot.flow import REGISTRY
from bot.store.conversations import Conversation
from bot.store.models import InboundSms
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, Phone, twiml_messages
from tests.twilio_sign import twilio_signature

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
# What a phone can send in one text: up to Twilio's 1,600 characters, with the lengths
# where SMS parts end (160/153 GSM-7, 70/67 UCS-2) and the 1,600 cut-off itself.
LONG = st.builds(
    lambda chunk, n: (chunk * (n // len(chunk) + 1))[:n],
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.one_of(st.integers(1, 1600), st.sampled_from([70, 67 * 3, 160, 153 * 10, 1599, 1600])),
)
numbers = itertools.count(1000)
# Requests refused early take a millisecond or two: many more examples, still seconds.
FUZZ_MANY = settings(FUZZ, max_examples=300)


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
@given(step=st.sampled_from(STEPS), body=st.one_of(TEXT, LONG))
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


# --- any form, any body ---------------------------------------------------------------

INBOUND = "/sms/inbound"
FIELDS = [
    "MessageSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia",
    "NumSegments", "ApiVersion", "MediaUrl0", "MediaContentType0", "MediaUrl1",
]  # fmt: skip
SIDS = st.one_of(
    TEXT,
    st.from_regex(r"\A[A-Za-z0-9_-]{0,70}\Z"),
    st.sampled_from(["SM" + "0" * 32, "SM", "S", " SM1 ", "SM\u0661\u0662", "SM-_-"]),
)
PHONE_NUMBERS = st.one_of(
    TEXT,
    st.from_regex(r"\A\+?[0-9 ()-]{0,18}\Z"),
    st.sampled_from(
        ["+15125550123", "5125550123", "(512) 555-0124", "12345", "+1", "00", "+44 20 7946 0958",
         "whatsapp:+15125550125", "+1512555012\u0663", "\uff0b15125550126", "+1 512 555 0127x9"]
    ),
)  # fmt: skip
COUNTS = st.one_of(
    TEXT,
    st.integers(-2, 12).map(str),
    st.sampled_from(["", " 1 ", "1.0", "\u0663", "0x1", "1e1", "+1", "99999999999999999999"]),
)
URLS = st.one_of(
    TEXT,
    st.builds("https://".__add__, TEXT),
    st.sampled_from(
        ["https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
         "http://127.0.0.1:9/x", "ftp://example.org/x", "javascript:alert(1)", "https://"]
    ),
)  # fmt: skip
FUZZED = st.fixed_dictionaries(
    {},
    optional={
        "MessageSid": SIDS,
        "From": PHONE_NUMBERS,
        "To": PHONE_NUMBERS,
        "NumMedia": COUNTS,
        "MediaUrl0": URLS,
        "MediaContentType0": st.one_of(TEXT, st.sampled_from(["image/jpeg", "video/mp4"])),
        "MediaUrl1": URLS,
        "Body": st.one_of(TEXT, HUGE),
        "NumSegments": COUNTS,
    },
)


def answer_is_valid(response) -> None:
    """Never a 5xx; a 200 is TwiML that parses; a 4xx says why in one plain line."""
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 200:
        assert response.mimetype == "text/xml"
        twiml_messages(response.data)
        return
    assert 400 <= response.status_code < 500, response.status_code
    assert response.mimetype == "text/plain", response.mimetype
    reason = response.get_data(as_text=True).strip()
    assert reason and "\n" not in reason and len(reason) < 200 and "<" not in reason, reason


def conversation_is_valid(rt, pairs: list[tuple[str, str]]) -> None:
    """The conversation of the number the server read from the form is somewhere real."""
    form = MultiDict(pairs)
    sender = e164(str(form.get("From", "")).strip(), rt.settings.default_region)
    raw_to = str(form.get("To", "")).strip()
    to = raw_to if SHORT_CODE.fullmatch(raw_to) else e164(raw_to, rt.settings.default_region)
    if sender and to:
        saved = rt.conversations.load(sender, to)
        if saved is not None:
            assert saved.flow in REGISTRY and REGISTRY[saved.flow].has_step(saved.state), saved


def texts_received(rt) -> int:
    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(InboundSms)) or 0)


def recorded_once(rt, response, pairs: list[tuple[str, str]], before: int) -> None:
    """A 200 means the text is in SQL under its MessageSid; a refusal recorded nothing."""
    if response.status_code != 200:
        assert texts_received(rt) == before
        return
    sid = str(MultiDict(pairs).get("MessageSid", "")).strip()
    with rt.db.session() as session:
        rows = session.scalars(select(InboundSms.id).where(InboundSms.message_sid == sid)).all()
    assert len(rows) == 1 and texts_received(rt) in (before, before + 1)


@FUZZ_MANY
@given(
    body=st.one_of(TEXT, HUGE),
    fuzzed=FUZZED,
    missing=st.one_of(st.just(set()), st.sets(st.sampled_from(FIELDS), max_size=4)),
    repeated=st.dictionaries(
        st.sampled_from(FIELDS), st.lists(TEXT, min_size=1, max_size=3, unique=True), max_size=3
    ),
)
def test_any_form_at_the_webhook(rt, client, sample_directory, body, fuzzed, missing, repeated):
    phone = Phone(client, f"+1512555{next(numbers) % 10000:04d}")
    form = {**phone.form(body), **fuzzed}
    pairs = [(name, value) for name, value in form.items() if name not in missing]
    for name, values in repeated.items():
        # Distinct values only: Twilio's validator signs each distinct value once.
        pairs += [(name, value) for value in values if (name, value) not in pairs]
    signature = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + INBOUND, pairs)
    before = texts_received(rt)
    response = client.post(
        INBOUND, data=MultiDict(pairs), headers={"X-Twilio-Signature": signature}
    )
    event(f"{response.status_code} {response.get_data(as_text=True)[:40]}")
    answer_is_valid(response)
    assert response.status_code != 403  # signed over every value of every repeated key
    recorded_once(rt, response, pairs, before)
    state_is_valid(rt, phone)
    conversation_is_valid(rt, pairs)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded", "multipart/form-data",
            "application/x-www-form-urlencoded; charset=utf-16",
            "multipart/form-data; boundary=xyz",
        ]
    ),
    st.sampled_from(
        [
            None, "", "application/json", "application/json; charset=utf-8", "text/plain",
            "application/octet-stream", "text/xml", "*/*", "garbage",
        ]
    ),
)  # fmt: skip
FORM_LIKE = st.builds(
    lambda body, extra: {**Phone(None, "+15125550150").form(body), **extra},
    TEXT,
    st.one_of(st.just({}), st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=3)),
)


def multipart(form: dict[str, str]) -> bytes:
    """A form as ``multipart/form-data`` with the boundary ``xyz``."""
    parts = [
        f'--xyz\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in form.items()
    ]
    return ("".join(parts) + "--xyz--\r\n").encode()


def form_bytes(raw: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """A form body of any bytes, and its fields (none when the bytes are not UTF-8)."""
    try:
        return raw, parse_qsl(raw.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return raw, []


# A raw body, the fields a form parser would read from it (what a sender signs), and the
# content type it would be sent with.
URLENCODED, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz"
RAW_BODIES = st.one_of(
    st.binary(max_size=3000).map(lambda raw: (raw, [], "application/octet-stream")),
    FORM_LIKE.map(lambda form: (json.dumps(form).encode(), list(form.items()), "application/json")),
    FORM_LIKE.map(lambda form: (urlencode(form).encode(), list(form.items()), URLENCODED)),
    FORM_LIKE.map(lambda form: (multipart(form), list(form.items()), MULTIPART)),
    st.tuples(FORM_LIKE, st.sampled_from(["utf-16", "utf-32"])).map(
        lambda pair: (
            urlencode(pair[0]).encode(pair[1]),
            list(pair[0].items()),
            f"{URLENCODED}; charset={pair[1]}",
        )
    ),
    st.binary(max_size=200).map(
        lambda raw: (*form_bytes(b"Body=" + raw + b"&From=%2B15125550151"), URLENCODED)
    ),
)


@FUZZ_MANY
@given(
    raw=RAW_BODIES,
    relabelled=st.one_of(st.just("as is"), CONTENT_TYPES),
    signed=st.booleans(),
)
def test_any_body_at_the_webhook(rt, client, sample_directory, raw, relabelled, signed):
    body, fields, natural = raw
    content_type = natural if relabelled == "as is" else relabelled
    before = texts_received(rt)
    pairs = [(str(k), str(v)) for k, v in fields] if signed else []
    signature = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + INBOUND, pairs)
    response = client.post(
        INBOUND, data=body, content_type=content_type, headers={"X-Twilio-Signature": signature}
    )
    event(f"{content_type} {signed} {response.status_code} {response.get_data(as_text=True)[:30]}")
    answer_is_valid(response)
    if not (content_type or "").startswith(FORM_TYPES):
        # Twilio sends forms: nothing else is ever taken as a text.
        assert response.status_code in (400, 403)
        assert texts_received(rt) == before
    else:
        recorded_once(rt, response, pairs, before)
        conversation_is_valid(rt, pairs)


def test_bodies_over_the_size_limit_get_a_plain_413(rt, client):
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    for content_type in ("application/x-www-form-urlencoded", "application/json", None):
        body = b"Body=" + b"x" * limit
        response = client.post(INBOUND, data=body, content_type=content_type)
        assert response.status_code == 413
        answer_is_valid(response)
    assert texts_received(rt) == 0
