"""The facility desk and the tablet in a real browser (headless Chromium, driven by Playwright).

Screenshots of each step are kept in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from bot.store.models import Message
from tests.conftest import ROOT, Phone, drain
from tests.fakes import JPEG
from tests.test_compose import mms, worker_texts
from tests.test_delivery import grant

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def live(app: Any) -> Iterator[str]:
    """The app served over HTTP on this machine, for the browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (CI does: apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cli(app: Any, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output


def family_message(
    rt, client, number: str, inmate_id: str, body: str, photo_url: str | None
) -> str:
    phone = Phone(client, number)
    for text in ("Hi", "YES", "TX", inmate_id, "yes"):
        phone.text(text)
    grant(rt, number, "TX", 10)
    phone.text("1")
    phone.send(body)
    if photo_url:
        mms(phone, "", photo_url, "image/jpeg")
    drain(rt)
    phone.text("DONE")
    assert phone.text("SEND").startswith("Sent for review")
    drain(rt)
    with rt.db.session() as session:
        return session.scalars(select(Message).order_by(Message.id.desc())).first().ref


def desk_login(context: Any, live: str, email: str) -> Any:
    page = context.new_page()
    page.goto(f"{live}/facility")
    assert "/facility/login" in page.url  # the desk needs a signed-in staff member
    page.fill("#email", email)
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    return page


def test_desk_and_tablet_story(rt, app, client, live, browser, sample_directory, media_server):
    ana = family_message(
        rt, client, "+15125550101", "01234567", "Hi Ana, the garden is blooming. Love, mom.",
        media_server.add("ME1", JPEG, "image/jpeg"),
    )  # fmt: skip
    rosa = family_message(rt, client, "+15125550102", "02310876", "Hola Rosa", None)
    cli(app, "desk", "add-staff", "--email", "hv@tdcj.test", "--name", "Huntsville Desk",
        "--facility", "TX-HV", "--password", "correct horse battery")  # fmt: skip
    cli(app, "desk", "add-staff", "--email", "mv@tdcj.test", "--name", "Mountain View Desk",
        "--facility", "TX-MV", "--password", "correct horse battery")  # fmt: skip
    cli(app, "desk", "set-pin", "--state", "TX", "--inmate-id", "01234567", "--pin", "864209")

    # Huntsville staff: sees Ana's message (not Rosa's), refuses the photo, approves, mails.
    huntsville = browser.new_context(viewport={"width": 1100, "height": 900})
    page = desk_login(huntsville, live, "hv@tdcj.test")
    assert page.locator(f"#message-{ana}").is_visible()
    assert page.locator(f"#message-{rosa}").count() == 0
    assert page.locator(f"#message-{ana} img").count() == 1
    shot(page, "desk-queue")
    # A form without its CSRF token changes nothing.
    page.evaluate(
        """(ref) => document.querySelectorAll(`#message-${ref} input[name=csrf_token]`)
                      .forEach((input) => input.remove())""",
        ana,
    )
    page.locator(f"#message-{ana} button", has_text="Approve").click()
    assert page.locator("body").inner_text().startswith("Kinline")
    with rt.db.session() as session:
        assert (
            session.scalars(select(Message.status).where(Message.ref == ana)).one() == "in_review"
        )
    page.goto(f"{live}/facility")
    page.locator(f"#message-{ana} figcaption button").click()
    page.locator(f"#message-{ana} button", has_text="Approve").click()
    assert page.locator("#notice").is_visible()
    page.locator("#facility-TX-HV button").click()
    shot(page, "desk-after-mail-run")

    # Mountain View staff: Rosa's message only; Huntsville's photo is not theirs to see.
    mountain = browser.new_context()
    other = desk_login(mountain, live, "mv@tdcj.test")
    assert other.locator(f"#message-{rosa}").is_visible()
    assert other.locator(f"#message-{ana}").count() == 0
    with rt.db.session() as session:
        photo_id = (
            session.scalars(select(Message).where(Message.ref == ana)).one().attachments[0].id
        )
    assert other.goto(f"{live}/facility/media/{photo_id}").status == 404

    # The tablet: Ana signs in, reads the message, replies.
    tablet = browser.new_context(viewport={"width": 800, "height": 1000})
    screen = tablet.new_page()
    screen.goto(f"{live}/tablet/login")
    screen.select_option("#state", "TX")
    screen.fill("#inmate_id", "01234567")
    screen.fill("#pin", "864209")
    screen.click("button[type=submit]")
    shot(screen, "tablet-list")
    screen.locator("a.button").first.click()
    assert "the garden is blooming" in screen.inner_text("#text")
    screen.fill("#body", "Thank you mom! I love the garden. See you soon.")
    screen.locator("form button[type=submit]", has_text="Send").click()
    assert screen.locator("#sent").is_visible()
    shot(screen, "tablet-replied")
    drain(rt)

    texts = worker_texts(rt, "+15125550101")
    assert any(t.startswith(f"Huntsville Unit refused a photo in {ana}") for t in texts)
    assert any(t.startswith(f"Delivered: your message {ana} reached Ana") for t in texts)
    assert texts[-1].endswith("Thank you mom! I love the garden. See you soon.")
    with rt.db.session() as session:
        statuses = dict(session.execute(select(Message.ref, Message.status)).all())
    assert statuses == {ana: "read", rosa: "in_review"}


def test_the_family_story_on_the_dev_phone(rt, app, live, browser, sample_directory, tmp_path):
    """From the first text to SEND on the dev phone, the TEST MODE checkout, the desk, the
    tablet, and the delivery and reply texts back on the dev phone, in Spanish."""
    import re

    photo = tmp_path / "jardin.jpg"
    photo.write_bytes(JPEG)
    cli(app, "desk", "add-staff", "--email", "hv@tdcj.test", "--name", "Huntsville Desk",
        "--facility", "TX-HV", "--password", "correct horse battery")  # fmt: skip
    cli(app, "desk", "set-pin", "--state", "TX", "--inmate-id", "01234567", "--pin", "864209")
    media_base = live  # the dev phone's photos are served by the app itself
    rt.settings = __import__("dataclasses").replace(rt.settings, public_base_url=media_base)

    context = browser.new_context(viewport={"width": 420, "height": 900})
    page = context.new_page()
    page.goto(f"{live}/dev/phone")
    page.fill("#number", "+15125550166")
    page.keyboard.press("Tab")

    def send(text: str) -> None:
        before = page.locator(".msg").count()
        page.fill("#body", text)
        page.click("#send")
        page.wait_for_function(f"document.querySelectorAll('.msg').length > {before}")
        page.wait_for_timeout(300)

    for text in ("Hola", "sí", "Texas", "01234567", "sí", "1", "Hola Ana, te extrañamos mucho."):
        send(text)
    page.set_input_files("#photo", str(photo))
    page.click("#send")
    page.wait_for_timeout(500)
    drain(rt)  # the worker fetches the photo and sends the tally
    send("LISTO")
    send("ENVIAR")
    send("1")
    page.wait_for_timeout(500)
    link = re.findall(r"https?://\S+/buy/\S+", page.inner_text("body"))[-1]
    shot(page, "phone-buy-link")

    checkout = context.new_page()
    checkout.goto(link.replace(media_base, live))
    assert "MODO DE PRUEBA" in checkout.inner_text("#test-mode")
    checkout.fill("#card", "4242 4242 4242 4242")
    shot(checkout, "checkout")
    checkout.click("#pay")
    assert "5 estampillas de Texas" in checkout.inner_text("#notice")
    drain(rt)
    send("ENVIAR")
    ref = re.findall(r"Ref\.? ([A-Z2-9]{5})", page.inner_text("body"))[-1]
    drain(rt)

    desk = desk_login(
        browser.new_context(viewport={"width": 1100, "height": 900}), live, "hv@tdcj.test"
    )
    desk.locator(f"#message-{ref} button", has_text="Approve").click()
    desk.locator("#facility-TX-HV button").click()
    drain(rt)

    tablet = browser.new_context(viewport={"width": 800, "height": 1000}).new_page()
    tablet.goto(f"{live}/tablet/login")
    tablet.select_option("#state", "TX")
    tablet.fill("#inmate_id", "01234567")
    tablet.fill("#pin", "864209")
    tablet.click("button[type=submit]")
    tablet.locator("a.button").first.click()
    tablet.fill("#body", "¡Gracias mamá! Me encantó la foto del jardín.")
    tablet.locator("form button[type=submit]").last.click()
    drain(rt)

    page.wait_for_function("document.body.innerText.includes('respondió')", timeout=10_000)
    thread = page.inner_text("body")
    assert f"tu mensaje {ref} le llegó a Ana" in thread
    assert "Ana respondió (" in thread and "Me encantó la foto del jardín." in thread
    shot(page, "phone-delivered-and-reply")
