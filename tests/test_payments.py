"""Buying stamps through a link (Stripe, or the test checkout) and sending the message."""

from __future__ import annotations

import json
import random
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from bot import sms, stamps
from bot.store.models import (
    Account,
    Attachment,
    LedgerEntry,
    Message,
    MessageEvent,
    OutboundSms,
    PaymentEvent,
    Purchase,
)
from tests.conftest import PUBLIC_BASE_URL, STRIPE_WEBHOOK_SECRET, at_once, drain
from tests.fakes import JPEG, stripe_signature
from tests.test_compose import mms, ready_to_write, worker_texts

LINK = re.compile(re.escape(PUBLIC_BASE_URL) + r"(/buy/[A-Za-z0-9_.\-]+)")


def write_three_texts_and_a_photo(rt, phone, media_server) -> None:
    ready_to_write(phone)
    phone.text("1")
    phone.send("Hi mom, it's me. I got your letter.")
    phone.send("The garden is blooming and the kids say hi.")
    phone.send("We will visit next month.")
    mms(phone, "", media_server.add("ME1", JPEG, "image/jpeg"), "image/jpeg")
    drain(rt)


def ask_to_buy(phone) -> str:
    """DONE, SEND with no stamps, pick the first bundle; return the link's path."""
    assert "You have 0 Texas stamps" in phone.text("DONE")
    offer = phone.text("SEND")
    assert offer == (
        "You need 2 Texas stamps; you have 0 Texas stamps.\n"
        "1) 5 for $2.00\n2) 10 for $3.80\n3) 20 for $7.00\n4) 50 for $15.00\n"
        "Reply 1-4 to buy, or EDIT."
    )
    assert sms.segment_count(offer) == 1
    link_text = phone.text("1")
    assert link_text.startswith("Buy 5 Texas stamps for $2.00: https://kinline.test/buy/")
    assert link_text.endswith(" (link works 30 min)")
    assert sms.segment_count(link_text) == 1
    return LINK.search(link_text).group(1)


def post_event(client, event: dict, secret: str = STRIPE_WEBHOOK_SECRET, signature=None):
    payload = json.dumps(event).encode()
    header = signature or stripe_signature(secret, payload)
    return client.post(
        "/payments/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def count(rt, model, *where) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def assert_sent_once(rt, phone) -> Message:
    sent = phone.text("SEND")
    match = re.fullmatch(
        r"Sent for review at Huntsville Unit\. Most arrive in 24-48 h\. Ref ([A-Z2-9]{5})\. "
        r"You have 3 Texas stamps left\.",
        sent,
    )
    assert match, sent
    assert not set(match.group(1)) & set("01OIL")
    drain(rt)
    with rt.db.session() as session:
        message = session.scalars(select(Message)).one()
        assert message.ref == match.group(1)
        assert (message.status, message.stamps, message.state) == ("in_review", 2, "TX")
        assert "The garden is blooming" in message.body
        attachments = session.scalars(select(Attachment).where(Attachment.message_id == message.id))
        assert [a.status for a in attachments] == ["stored"]
        events = session.scalars(
            select(MessageEvent.status).where(MessageEvent.message_id == message.id)
        )
        assert list(events) == ["queued", "submitted", "in_review"]  # the worker submitted it
        assert stamps.balance(session, message.account_id, "TX") == 3
        deltas = session.scalars(select(LedgerEntry.delta).order_by(LedgerEntry.id)).all()
        assert deltas == [5, -2]
    assert phone.text("SEND").startswith("Your list:")  # nothing is sent twice
    assert count(rt, Message) == 1
    return message


def test_compose_buy_with_stripe_and_send(
    stripe_rt, client, phone, sample_directory, media_server, fake_stripe
):
    rt = stripe_rt
    write_three_texts_and_a_photo(rt, phone, media_server)
    path = ask_to_buy(phone)

    opened = client.get(path)
    assert opened.status_code == 303
    [session_id] = fake_stripe.sessions
    assert opened.headers["Location"] == f"{fake_stripe.url}/pay/{session_id}"
    created = fake_stripe.sessions[session_id]
    assert (created["amount_total"], created["currency"], created["mode"]) == (
        200,
        "usd",
        "payment",
    )
    assert client.get(path).headers["Location"] == opened.headers["Location"]  # tapped twice
    assert len(fake_stripe.sessions) == 1

    response = post_event(client, fake_stripe.completed_event(session_id))
    assert response.status_code == 200 and response.get_data(as_text=True).strip() == "credited"
    drain(rt)
    assert worker_texts(rt, phone.number)[-1] == (
        "Paid: +5 Texas stamps. Reply SEND to deliver your message to Ana."
    )
    assert_sent_once(rt, phone)
    assert "already" in client.get(path).get_data(as_text=True)  # the link is used up


def test_compose_buy_on_the_test_checkout_and_send(
    rt, client, phone, sample_directory, media_server
):
    write_three_texts_and_a_photo(rt, phone, media_server)
    path = ask_to_buy(phone)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "TEST MODE" in html
    assert "5 Texas stamps for $2.00, for the phone ending 0123." in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    declined = client.post(path, data={"csrf_token": token, "card": "4000 0000 0000 0002"})
    assert declined.status_code == 400 and "declined" in declined.get_data(as_text=True)
    assert count(rt, LedgerEntry) == 0

    paid = client.post(path, data={"csrf_token": token, "card": "4242 4242 4242 4242"})
    assert paid.status_code == 200
    assert "Paid: we added 5 Texas stamps." in paid.get_data(as_text=True)
    again = client.post(path, data={"csrf_token": token, "card": "4242 4242 4242 4242"})
    assert "used already" in again.get_data(as_text=True)
    drain(rt)
    assert worker_texts(rt, phone.number)[-1].startswith("Paid: +5 Texas stamps. Reply SEND")
    assert_sent_once(rt, phone)


def test_checkout_needs_the_page_token(rt, client, phone, sample_directory):
    ready_to_write(phone)
    phone.text("S")
    path = LINK.search(phone.text("2")).group(1)
    response = client.post(path, data={"card": "4242424242424242"})
    assert response.status_code == 400
    assert count(rt, LedgerEntry) == 0


def test_replayed_stripe_webhooks_credit_once(stripe_rt, app, phone, sample_directory, fake_stripe):
    rt = stripe_rt
    ready_to_write(phone)
    phone.text("STAMPS")
    path = LINK.search(phone.text("3")).group(1)
    app.test_client().get(path)
    [session_id] = fake_stripe.sessions
    event = fake_stripe.completed_event(session_id, "evt_replayed")
    responses = at_once(app, [lambda client: post_event(client, event)] * 10)
    assert [response.status_code for response in responses] == [200] * 10
    answers = [response.get_data(as_text=True).strip() for response in responses]
    assert sorted(answers) == ["credited"] + ["duplicate"] * 9
    # The same session under another event id (Stripe retries can do that) changes nothing.
    other = post_event(app.test_client(), fake_stripe.completed_event(session_id, "evt_other"))
    assert other.get_data(as_text=True).strip() == "duplicate"
    drain(rt)
    assert count(rt, LedgerEntry, LedgerEntry.kind == "purchase") == 1
    assert worker_texts(rt, phone.number) == [
        "Paid: +20 Texas stamps. You have 20 Texas stamps. Reply MENU to write."
    ]


def test_stripe_webhook_refuses_bad_signatures_and_ignores_the_unknown(
    stripe_rt, client, phone, sample_directory, fake_stripe
):
    ready_to_write(phone)
    phone.text("S")
    client.get(LINK.search(phone.text("1")).group(1))
    [session_id] = fake_stripe.sessions
    event = fake_stripe.completed_event(session_id)
    assert post_event(client, event, secret="whsec_wrong").status_code == 400
    assert post_event(client, event, signature="t=1,v1=deadbeef").status_code == 400
    old = stripe_signature(STRIPE_WEBHOOK_SECRET, json.dumps(event).encode(), timestamp=1_000_000)
    assert post_event(client, event, signature=old).status_code == 400  # replay of an old one
    no_header = client.post("/payments/stripe/webhook", data=json.dumps(event))
    assert no_header.status_code == 400
    assert count(rt := stripe_rt, LedgerEntry) == 0
    unknown = {
        "id": "evt_unknown",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {}},
    }
    response = post_event(client, unknown)
    assert response.status_code == 200 and response.get_data(as_text=True).strip() == "ignored"
    stray = fake_stripe.completed_event(session_id, "evt_stray")
    stray["data"]["object"]["metadata"] = {"purchase_id": "999999"}
    assert post_event(client, stray).get_data(as_text=True).strip() == "unknown-purchase"
    assert count(rt, LedgerEntry) == 0
    assert count(rt, PaymentEvent) == 2


def test_tampered_and_expired_links(rt, client, phone, sample_directory, monkeypatch):
    ready_to_write(phone)
    phone.text("S")
    path = LINK.search(phone.text("1")).group(1)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = client.get(tampered)
    assert response.status_code == 404 and "not valid" in response.get_data(as_text=True)
    assert client.get("/buy/not-a-token").status_code == 404

    import itsdangerous

    real = itsdangerous.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.TimestampSigner, "get_timestamp", lambda self: real(self) - 31 * 60
    )
    phone.text("S")
    old_path = LINK.search(phone.text("1")).group(1)
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", real)
    expired = client.get(old_path)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    token = "x"
    assert (
        client.post(old_path, data={"csrf_token": token, "card": "4242424242424242"}).status_code
        == 410
    )
    assert count(rt, LedgerEntry) == 0
    assert count(rt, Purchase, Purchase.status == "paid") == 0


def test_stamps_keyword_shows_balances_and_bundles(rt, phone, sample_directory):
    ready_to_write(phone)
    assert phone.text("STAMPS") == (
        "You have 0 Texas stamps. Stamps never expire.\n"
        "1) 5 for $2.00\n2) 10 for $3.80\n3) 20 for $7.00\n4) 50 for $15.00\n"
        "Reply 1-4 to buy, or MENU."
    )
    phone.text("MENU")
    phone.text("N")
    phone.text("CA")
    phone.text("AB1234")
    phone.text("yes")
    choose = phone.text("S")
    assert choose == "Which state's stamps?\n1 0 Texas stamps\n2 0 California stamps\nReply 1-2."
    assert phone.text("2").startswith("You have 0 California stamps.")


def test_stamps_before_anyone_is_saved(phone, sample_directory):
    phone.text("Hi")
    phone.text("YES")
    reply = phone.send("STAMPS")
    assert reply[0].startswith("Stamps are bought for the state your loved one is in")
    assert reply[1].startswith("No one is on your list yet. Which state")


@pytest.mark.parametrize(
    ("chars", "attachments", "expected"), [(0, 1, 2), (6000, 0, 1), (6001, 2, 4)]
)
def test_cost_follows_configuration(settings, chars, attachments, expected):
    assert stamps.cost(settings, chars, attachments) == expected


def test_refund_is_once_per_reason(rt, phone, sample_directory):
    ready_to_write(phone)
    with rt.db.session() as session:
        from bot.store.models import Account, Inmate

        account = session.scalars(select(Account)).one()
        inmate = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        message = Message(
            ref="ABCDE",
            account_id=account.id,
            inmate_pk=inmate.id,
            facility_id=inmate.facility_id,
            state="TX",
            body="x",
            stamps=2,
        )
        session.add(message)
        session.flush()
        assert stamps.refund(session, message, 1, "rejected-attachment")
        assert not stamps.refund(session, message, 1, "rejected-attachment")
        assert stamps.refund(session, message, 1, "transferred")
        with pytest.raises(ValueError, match="refunded already"):
            stamps.refund(session, message, 1, "released")  # never more than it cost
        with pytest.raises(ValueError, match="unknown refund reason"):
            stamps.refund(session, message, 1, "Transferred")
        session.commit()
        assert stamps.balance(session, account.id, "TX") == 2
        assert stamps.balances(session, account.id) == {"TX": 2}


def test_prices_come_from_the_data_file():
    assert [b.stamps for b in stamps.bundles("TX")] == [5, 10, 20, 50]
    assert stamps.bundles("VT") == stamps.bundles("*")
    per_stamp = [b.price_cents / b.stamps for b in stamps.bundles("CA")]
    assert per_stamp == sorted(per_stamp, reverse=True)  # bigger bundles are cheaper
    assert stamps.money(1750) == "$17.50" and stamps.money(5) == "$0.05"


def test_the_whole_story_in_spanish(rt, client, phone, sample_directory, media_server):
    replies: list[str] = []
    original = phone.send

    def send(body: str, sid: str | None = None) -> list[str]:
        answer = original(body, sid)
        replies.extend(answer)
        return answer

    phone.send = send  # every reply of the story is checked for length below
    phone.text("Hola")
    phone.text("sí")
    phone.text("Texas")
    phone.text("01234567")
    phone.text("sí")
    start = phone.text("1")
    assert start.startswith("Escríbele a Ana:")
    phone.send("Hola mamá, te extraño mucho.")
    mms(phone, "", media_server.add("ME9", JPEG, "image/jpeg"), "image/jpeg")
    cost = phone.text("¿Cuánto cuesta?")
    assert "2 estampillas" in cost
    drain(rt)
    preview = phone.text("LISTO")
    assert "Ana Ruiz" in preview and "0 estampillas de Texas" in preview
    offer = phone.text("ENVIAR")
    assert offer.startswith("Necesitas 2 estampillas de Texas")
    link_text = phone.text("1")
    path = LINK.search(link_text).group(1)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert 'lang="es"' in html and "MODO DE PRUEBA" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    paid = client.post(path, data={"csrf_token": token, "card": "4242424242424242"})
    assert "5 estampillas de Texas" in paid.get_data(as_text=True)
    drain(rt)
    assert "ENVIAR" in worker_texts(rt, phone.number)[-1]
    sent = phone.text("ENVIAR")
    assert "Ref" in sent and "3 estampillas de Texas" in sent
    # another draft, discarded
    phone.text("1")
    phone.send("Borrador que no quiero.")
    confirm = phone.text("BORRAR")
    assert "SÍ" in confirm
    gone = phone.send("sí")
    assert "Ana" in gone[0]
    with rt.db.session() as session:
        statuses = session.scalars(select(Message.status)).all()
    assert statuses == ["queued"]  # the worker has not submitted it yet
    texts = replies + worker_texts(rt, phone.number)
    assert all(sms.segment_count(text) <= 3 for text in texts), [
        (sms.segment_count(text), text) for text in texts if sms.segment_count(text) > 3
    ]
    assert not any("stamps" in text or "Reply" in text for text in texts)  # all in Spanish


def test_paying_while_elsewhere_leaves_the_conversation_where_it_is(
    rt, client, phone, sample_directory
):
    ready_to_write(phone)
    phone.text("1")
    phone.send("A message")
    phone.text("DONE")
    phone.text("SEND")
    path = LINK.search(phone.text("1")).group(1)
    phone.text("MENU")
    phone.text("R")  # "Take Ana off your list? Reply YES or NO."
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(path, data={"csrf_token": token, "card": "4242424242424242"})
    drain(rt)
    assert phone.send("no")[0] == "OK, Ana stays on your list."
    with rt.db.session() as session:
        assert session.scalars(select(Message)).all() == []  # "no" did not send it


def test_paid_but_still_short_says_how_many_more(rt, client, phone, sample_directory):
    rt.settings = __import__("dataclasses").replace(rt.settings, chars_per_stamp=10)
    ready_to_write(phone)
    phone.text("1")
    phone.send("x" * 70)  # 7 stamps
    phone.text("DONE")
    phone.text("SEND")
    path = LINK.search(phone.text("1")).group(1)  # 5 stamps
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(path, data={"csrf_token": token, "card": "4242424242424242"})
    drain(rt)
    assert worker_texts(rt, phone.number)[-1] == (
        "Paid: +5 Texas stamps. You still need 2 Texas stamps to send your message."
        " Reply SEND to buy more."
    )


def test_stripe_amounts_unpaid_sessions_and_delayed_payments(
    stripe_rt, client, phone, sample_directory, fake_stripe
):
    rt = stripe_rt
    ready_to_write(phone)
    for choice in ("1", "2", "3"):
        phone.text("S")
        client.get(LINK.search(phone.text(choice)).group(1))
    first, second, third = sorted(fake_stripe.sessions)
    unpaid = fake_stripe.completed_event(first, "evt_unpaid")
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    assert post_event(client, unpaid).get_data(as_text=True).strip() == "ignored"
    later = fake_stripe.completed_event(first, "evt_async")
    later["type"] = "checkout.session.async_payment_succeeded"
    assert post_event(client, later).get_data(as_text=True).strip() == "credited"
    wrong = fake_stripe.completed_event(second, "evt_wrong_amount")
    wrong["data"]["object"]["amount_total"] = 1
    assert post_event(client, wrong).get_data(as_text=True).strip() == "needs-review"
    other_session = fake_stripe.completed_event(second, "evt_other_session")
    other_session["data"]["object"]["id"] = third
    assert post_event(client, other_session).get_data(as_text=True).strip() == "unknown-purchase"
    with rt.db.session() as session:
        statuses = dict(session.execute(select(Purchase.provider_ref, Purchase.status)).all())
        assert statuses == {first: "paid", second: "review", third: "pending"}
        assert stamps.balance(session, 1, "TX") == 5


def test_stripe_trouble_on_the_link_is_a_clear_page(stripe_rt, client, phone, sample_directory):
    stripe_rt.settings = __import__("dataclasses").replace(
        stripe_rt.settings, stripe_api_base="http://127.0.0.1:9"
    )
    ready_to_write(phone)
    phone.text("S")
    response = client.get(LINK.search(phone.text("1")).group(1))
    assert response.status_code == 503
    assert "try the link again" in response.get_data(as_text=True)


def test_test_payments_are_refused_with_a_real_twilio_number(database_url):
    from bot.config import Settings
    from bot.exceptions import ConfigError

    twilio = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15005550006"}
    with pytest.raises(ConfigError, match="PAYMENTS=stripe"):
        Settings.from_env({**twilio, "SECRET_KEY": "k"}, database_url=database_url)
    staging = Settings.from_env({**twilio, "SECRET_KEY": "k", "ALLOW_TEST_PAYMENTS": "1"})
    assert staging.payments == "test"


# --- Stripe events late, early, twice, and at once ----------------------------------------

COMPLETED = "checkout.session.completed"
SUCCEEDED = "checkout.session.async_payment_succeeded"
FAILED = "checkout.session.async_payment_failed"


def buy_link(client, phone, keyword: str, choice: str) -> None:
    """Ask for the bundles, pick one and open the link (the Checkout Session is made)."""
    phone.text(keyword)
    assert client.get(LINK.search(phone.text(choice)).group(1)).status_code == 303


def purchases(rt) -> list[tuple[str, str, int, str]]:
    """Every purchase: (phone, state, stamps, status), in the order they were made."""
    with rt.db.session() as session:
        rows = session.execute(
            select(Account.phone, Purchase.state, Purchase.stamps, Purchase.status)
            .join(Account, Account.id == Purchase.account_id)
            .order_by(Purchase.id)
        )
        return [tuple(row) for row in rows]


def credits(rt) -> list[tuple[str, str, int, str, str]]:
    """Every ledger row of a purchase: (phone, state, delta) of the row, then the phone and
    state of the purchase it is for, in the order of the purchases."""
    buyer = aliased(Account)
    with rt.db.session() as session:
        rows = session.execute(
            select(Account.phone, LedgerEntry.state, LedgerEntry.delta, buyer.phone, Purchase.state)
            .join(Account, Account.id == LedgerEntry.account_id)
            .join(Purchase, Purchase.id == LedgerEntry.purchase_id)
            .join(buyer, buyer.id == Purchase.account_id)
            .where(LedgerEntry.kind == "purchase")
            .order_by(Purchase.id)
        )
        return [tuple(row) for row in rows]


def wallets(rt, number: str) -> dict[str, int]:
    """The balances of a number's account, by state."""
    with rt.db.session() as session:
        account = session.scalars(select(Account).where(Account.phone == number)).one()
        return stamps.balances(session, account.id)


def paid_texts(rt, number: str) -> list[str]:
    """Every "Paid" text queued for a number (sent or not)."""
    with rt.db.session() as session:
        bodies = session.scalars(select(OutboundSms.body).where(OutboundSms.to_number == number))
        return [body for body in bodies if body.startswith("Paid")]


@pytest.fixture
def two_families(stripe_rt, client, phone, new_phone, sample_directory, fake_stripe):
    """Family A buys 20 TX stamps and then 5; family B buys 10 CA stamps.

    Returns:
        The phones and the Checkout Session ids: (a, b, a_first, a_second, b_first).
    """
    ready_to_write(phone)
    other = new_phone("+13105550199")
    ready_to_write(other, "AB1234", "CA")
    buy_link(client, phone, "STAMPS", "3")
    buy_link(client, phone, "STAMPS", "1")
    buy_link(client, other, "STAMPS", "2")
    a_first, a_second, b_first = sorted(fake_stripe.sessions)
    assert purchases(stripe_rt) == [
        (phone.number, "TX", 20, "pending"),
        (phone.number, "TX", 5, "pending"),
        (other.number, "CA", 10, "pending"),
    ]
    return phone, other, a_first, a_second, b_first


A_PAID = "Paid: +20 Texas stamps. You have 20 Texas stamps. Reply MENU to write."
B_PAID = "Paid: +10 California stamps. You have 10 California stamps. Reply MENU to write."


def each_paid_once(rt, a, b) -> None:
    """A's first purchase and B's are paid and credited once, to their own family and
    state, with one "Paid" text each; A's second is still pending, with nothing credited."""
    assert purchases(rt) == [
        (a.number, "TX", 20, "paid"),
        (a.number, "TX", 5, "pending"),
        (b.number, "CA", 10, "paid"),
    ]
    assert credits(rt) == [
        (a.number, "TX", 20, a.number, "TX"),
        (b.number, "CA", 10, b.number, "CA"),
    ]
    assert (wallets(rt, a.number), wallets(rt, b.number)) == ({"TX": 20}, {"CA": 10})
    assert paid_texts(rt, a.number) == [A_PAID]
    assert paid_texts(rt, b.number) == [B_PAID]


def test_stripe_events_out_of_order_credit_each_purchase_once(
    stripe_rt, client, fake_stripe, two_families
):
    rt = stripe_rt
    a, b, a_first, a_second, b_first = two_families
    event = fake_stripe.event
    # What Stripe would send for two delayed payments, interleaved: each session completes
    # unpaid, then its payment succeeds. They arrive the other way round.
    sent_in_order = [
        event(a_first, COMPLETED, "evt_a1_completed", "unpaid"),
        event(b_first, COMPLETED, "evt_b1_completed", "unpaid"),
        event(a_first, SUCCEEDED, "evt_a1_succeeded"),
        event(b_first, SUCCEEDED, "evt_b1_succeeded"),
    ]
    arrived = [post_event(client, e).get_data(as_text=True).strip() for e in sent_in_order[::-1]]
    assert arrived == ["credited", "credited", "ignored", "ignored"]
    # A failure after the success (and the success again, under another id and the same).
    late = [
        event(a_first, FAILED, "evt_a1_failed", "unpaid"),
        event(a_first, COMPLETED, "evt_a1_completed_paid"),
        event(b_first, SUCCEEDED, "evt_b1_succeeded_again"),
        *sent_in_order,
    ]
    answers = [post_event(client, e).get_data(as_text=True).strip() for e in late]
    assert answers == ["ignored", "duplicate", "duplicate"] + ["duplicate"] * 4
    # A's second purchase fails: the failure first, then the unpaid completion.
    for e in (
        event(a_second, FAILED, "evt_a2_failed", "unpaid"),
        event(a_second, COMPLETED, "evt_a2_completed", "unpaid"),
    ):
        assert post_event(client, e).get_data(as_text=True).strip() == "ignored"
    drain(rt)
    each_paid_once(rt, a, b)
    assert worker_texts(rt, a.number).count(A_PAID) == 1
    assert worker_texts(rt, b.number).count(B_PAID) == 1
    assert count(rt, PaymentEvent) == 9  # every event id once, replays not again


def test_stripe_events_of_two_families_all_at_once(stripe_rt, app, fake_stripe, two_families):
    rt = stripe_rt
    a, b, a_first, a_second, b_first = two_families
    event = fake_stripe.event
    events = []
    for tag, session_id in (("a1", a_first), ("b1", b_first)):
        events += [
            event(session_id, COMPLETED, f"evt_{tag}_completed", "unpaid"),
            event(session_id, SUCCEEDED, f"evt_{tag}_succeeded"),
            event(session_id, COMPLETED, f"evt_{tag}_completed_paid"),
            event(session_id, FAILED, f"evt_{tag}_failed", "unpaid"),
        ]
    events += [
        event(a_second, COMPLETED, "evt_a2_completed", "unpaid"),
        event(a_second, FAILED, "evt_a2_failed", "unpaid"),
    ]
    burst = events * 3  # every event three times
    random.Random(7).shuffle(burst)
    responses = at_once(app, [lambda client, e=e: post_event(client, e) for e in burst])
    assert all(getattr(r, "status_code", None) == 200 for r in responses), responses
    said = sorted(response.get_data(as_text=True).strip() for response in responses)
    assert said.count("credited") == 2
    assert set(said) <= {"credited", "duplicate", "ignored"}
    drain(rt)
    each_paid_once(rt, a, b)
    assert count(rt, PaymentEvent) == len(events)
