"""The embedded provider's web pages: the facility desk for staff, the tablet, reply links."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from bot import i18n
from bot.store.models import Attachment, Inmate, Message, Reply, Staff, TabletPin
from bot.web import desk
from tests.conftest import drain
from tests.fakes import JPEG
from tests.test_compose import worker_texts
from tests.test_delivery import balance, message, send_message

PASSWORD = "correct horse battery"
PIN = "482913"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
ONCE = re.compile(r'name="once" value="([^"]+)"')


def en(key: str, **values: Any) -> str:
    """A catalog text as the page shows it (HTML-escaped)."""
    from markupsafe import escape

    return str(escape(i18n.text("en", key, **values)))


def cli(app: Any, *args: str, input: str | None = None) -> Any:
    result = app.test_cli_runner().invoke(args=["desk", *args], input=input)
    return result


def add_staff(app: Any, email: str, *facilities: str) -> None:
    wheres = [part for facility in facilities for part in ("--facility", facility)]
    result = cli(app, "add-staff", "--email", email, "--name", email.split("@")[0], *wheres,
                 "--password", PASSWORD)  # fmt: skip
    assert result.exit_code == 0, result.output


class Browser:
    """A browser on the desk or the tablet: reads the form token from the last page."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        found = response.mimetype == "text/html" and TOKEN.search(response.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, **form: str) -> Any:
        return self.client.post(path, data={"csrf_token": self.token, **form})

    def page(self, path: str, **kwargs: Any) -> str:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.get_data(as_text=True))


@pytest.fixture
def staff(app: Any, client: Any, sample_directory: None) -> Browser:
    """A staff member of Huntsville Unit (TX-HV), signed in at the desk."""
    add_staff(app, "hv@tdcj.example", "TX-HV")
    browser = Browser(client)
    browser.get("/facility/login")
    response = browser.post("/facility/login", email="HV@tdcj.example", password=PASSWORD)
    assert response.status_code == 303
    browser.get("/facility")
    return browser


def photo_of(rt: Any, ref: str) -> int:
    with rt.db.session() as session:
        found = session.scalars(select(Message).where(Message.ref == ref)).one()
        return session.scalars(select(Attachment.id).where(Attachment.message_id == found.id)).one()


def person(rt: Any, inmate_id: str) -> int:
    with rt.db.session() as session:
        return session.scalars(select(Inmate.id).where(Inmate.inmate_id == inmate_id)).one()


# --- the desk ---------------------------------------------------------------------------------


def test_the_desk_needs_a_signed_in_staff_member(rt, app, client, phone, sample_directory):
    ref = send_message(rt, phone)
    for response in (
        client.get("/facility"),
        client.get("/facility/media/1"),
        client.post(f"/facility/messages/{ref}/approve"),
    ):
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/facility/login")
    assert message(rt, ref).status == "in_review"


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(app, client, sample_directory):
    add_staff(app, "hv@tdcj.example", "TX-HV")
    browser = Browser(client)
    page = browser.page("/facility/login")
    assert '<html lang="en">' in page and '<label for="password">' in page
    wrong = browser.post("/facility/login", email="hv@tdcj.example", password="not it at all")
    unknown = browser.post("/facility/login", email="nobody@tdcj.example", password=PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert en("web.desk.login.failed") in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True).replace("hv@", "nobody@") == unknown.get_data(as_text=True)
    assert client.get("/facility").status_code == 302


def test_an_inactive_staff_member_is_signed_out(rt, staff, sample_directory):
    with rt.db.session() as session:
        session.scalars(select(Staff)).one().active = False
        session.commit()
    assert staff.get("/facility").status_code == 302


def test_a_post_without_the_form_token_is_400_and_changes_nothing(
    rt, staff, client, phone, sample_directory
):
    ref = send_message(rt, phone)
    missing = client.post(f"/facility/messages/{ref}/approve")
    wrong = client.post(f"/facility/messages/{ref}/approve", data={"csrf_token": "guess"})
    assert missing.status_code == wrong.status_code == 400
    assert en("web.form_expired") in missing.get_data(as_text=True)
    assert message(rt, ref).status == "in_review"
    signed_out = Browser(client.application.test_client())
    signed_out.get("/facility/login")
    no_token = signed_out.client.post(
        "/facility/login", data={"email": "hv@tdcj.example", "password": PASSWORD}
    )
    assert no_token.status_code == 400


def test_approve_and_run_mail_now_delivers_and_texts_the_family(rt, staff, phone, sample_directory):
    ref = send_message(rt, phone, body="Hi mom <b>it's me</b>\n\n  Love, Ana's kid")
    page = staff.page("/facility")
    assert en("web.desk.message.to", name="Ana Ruiz", inmate_id="01234567",
              facility="Huntsville Unit") in page  # fmt: skip
    assert "Hi mom &lt;b&gt;it&#39;s me&lt;/b&gt;\n\n  Love, Ana&#39;s kid</div>" in page
    assert "white-space: pre-wrap" in page
    response = staff.post(f"/facility/messages/{ref}/approve")
    assert response.status_code == 303 and response.headers["Location"].endswith("/facility")
    page = staff.page("/facility")
    assert en("web.desk.done.approved", ref=ref) in page
    assert en("web.desk.review.empty") in page
    assert f"{ref} to Ana Ruiz #01234567, approved" in page
    assert message(rt, ref).status == "approved"
    assert staff.post("/facility/TX-HV/mail-run").status_code == 303
    assert en("web.desk.done.mail_run", facility="Huntsville Unit", n=1) in staff.page("/facility")
    drain(rt)
    assert message(rt, ref).status == "delivered"
    assert worker_texts(rt, phone.number)[-1].startswith(
        f"Delivered: your message {ref} reached Ana at Huntsville Unit on "
    )
    staff.post(f"/facility/messages/{ref}/approve")  # late and repeated: nothing happens
    assert en("web.desk.done.nothing", ref=ref) in staff.page("/facility")
    assert message(rt, ref).status == "delivered"


def test_rejections_refund_per_policy(rt, staff, phone, new_phone, sample_directory):
    kept = send_message(rt, phone)
    other = new_phone("+13105550199")
    refunded = send_message(rt, other)
    page = staff.page("/facility")
    assert f'<option value="content">{en("web.desk.reason.content")}</option>' in page
    staff.post(f"/facility/messages/{kept}/reject", reason="content")
    staff.post(f"/facility/messages/{refunded}/reject", reason="wrong_person")
    label = en("web.desk.reason.wrong_person")
    assert en("web.desk.done.rejected", ref=refunded, reason=label) in staff.page("/facility")
    drain(rt)
    assert (message(rt, kept).status, message(rt, refunded).status) == ("rejected", "rejected")
    assert balance(rt, phone.number) == 9  # content: the stamp stays spent
    assert balance(rt, other.number) == 10
    assert "staff found content that is not allowed" in worker_texts(rt, phone.number)[-1]
    assert "was for someone else. Your 1 stamp is back" in worker_texts(rt, other.number)[-1]
    assert staff.post(f"/facility/messages/{kept}/reject", reason="rude").status_code == 400


def test_reject_one_photo_refunds_its_stamp(rt, staff, phone, sample_directory, media_server):
    ref = send_message(rt, phone, media_server)
    photo = photo_of(rt, ref)
    page = staff.page("/facility")
    assert f'<img src="/facility/media/{photo}"' in page
    picture = staff.get(f"/facility/media/{photo}")
    assert picture.status_code == 200 and picture.data == JPEG
    assert picture.mimetype == "image/jpeg"
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    assert staff.post(f"/facility/attachments/{photo}/reject").status_code == 303
    page = staff.page("/facility")
    assert en("web.desk.done.photo_rejected", ref=ref) in page
    assert en("web.desk.photo.rejected") in page
    staff.post(f"/facility/attachments/{photo}/reject")  # twice: refunded once
    assert en("web.desk.done.nothing", ref=ref) in staff.page("/facility")
    drain(rt)
    assert balance(rt, phone.number) == 9
    assert worker_texts(rt, phone.number)[-1].startswith(
        f"Huntsville Unit refused a photo in {ref}; the rest goes to Ana."
    )
    with rt.db.session() as session:
        assert session.get(Attachment, photo).status == "rejected"


def test_transfer_and_release(rt, staff, phone, new_phone, sample_directory):
    ana = send_message(rt, phone)
    juan_family = new_phone("+13105550199")
    juan = send_message(rt, juan_family, inmate_id="02105533")
    page = staff.page("/facility")
    assert '<option value="TX-LM">Lane Murray Unit</option>' in page
    assert '<option value="TX-HV">' not in page  # not where they are already
    ana_pk, juan_pk = person(rt, "01234567"), person(rt, "02105533")
    assert staff.post(f"/facility/people/{ana_pk}/transfer", facility="CA-SQ").status_code == 400
    staff.post(f"/facility/people/{ana_pk}/transfer", facility="TX-LM")
    page = staff.page("/facility")
    assert (
        en("web.desk.done.transferred", name="Ana Ruiz", facility="Lane Murray Unit", n=1) in page
    )
    staff.post(f"/facility/people/{juan_pk}/release")
    assert en("web.desk.done.released", name="Juan Garcia", n=1) in staff.page("/facility")
    drain(rt)
    assert (message(rt, ana).status, message(rt, juan).status) == ("returned", "returned")
    assert balance(rt, phone.number) == balance(rt, juan_family.number) == 10
    assert "Ana was moved to Lane Murray Unit" in worker_texts(rt, phone.number)[-1]
    assert "Juan was released from Huntsville Unit" in worker_texts(rt, juan_family.number)[-1]
    # Ana is at Lane Murray now, which this staff member does not work for.
    assert staff.post(f"/facility/people/{ana_pk}/release").status_code == 404


def test_staff_see_only_their_facilities(
    rt, app, staff, phone, new_phone, sample_directory, media_server
):
    add_staff(app, "mv@tdcj.example", "TX-MV")
    mine = send_message(rt, phone)
    theirs = send_message(rt, new_phone("+13105550199"), media_server, inmate_id="07654321")
    photo, other_pk = photo_of(rt, theirs), person(rt, "07654321")
    page = staff.page("/facility")
    assert mine in page and theirs not in page
    assert "/facility/TX-MV/mail-run" not in page
    for path, form in [
        (f"/facility/messages/{theirs}/approve", {}),
        (f"/facility/messages/{theirs}/reject", {"reason": "other"}),
        (f"/facility/attachments/{photo}/reject", {}),
        (f"/facility/people/{other_pk}/transfer", {"facility": "TX-EL"}),
        (f"/facility/people/{other_pk}/release", {}),
        ("/facility/TX-MV/mail-run", {}),
    ]:
        assert staff.post(path, **form).status_code == 404, path
    assert staff.get(f"/facility/media/{photo}").status_code == 404
    assert message(rt, theirs).status == "in_review"
    # Mountain View's staff member sees it, and not Huntsville's.
    staff.post("/facility/logout")
    assert staff.get("/facility").status_code == 302
    staff.get("/facility/login")
    staff.post("/facility/login", email="mv@tdcj.example", password=PASSWORD)
    page = staff.page("/facility")
    assert theirs in page and mine not in page
    assert staff.get(f"/facility/media/{photo}").status_code == 200


def test_add_staff_asks_for_the_password_and_updates_by_email(rt, app, sample_directory):
    result = cli(app, "add-staff", "--email", "Lee@TDCJ.example", "--name", "Lee",
                 "--facility", "TX-HV", "--facility", "TX-EL",
                 input=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lee@tdcj.example added for TX-HV, TX-EL" in result.output
    assert PASSWORD not in result.output
    again = cli(app, "add-staff", "--email", "lee@tdcj.example", "--name", "Lee Park",
                "--facility", "TX-MV", "--password", "another long one")  # fmt: skip
    assert again.exit_code == 0 and "updated" in again.output
    with rt.db.session() as session:
        assert desk.check_staff(session, "lee@tdcj.example", "another long one") is not None
        assert desk.check_staff(session, "lee@tdcj.example", PASSWORD) is None
    unknown = cli(app, "add-staff", "--email", "x@y.z", "--name", "X", "--facility", "TX-NO",
                  "--password", PASSWORD)  # fmt: skip
    assert unknown.exit_code != 0 and "no such facility: TX-NO" in unknown.output
    short = cli(app, "add-staff", "--email", "x@y.z", "--name", "X", "--facility", "TX-HV",
                "--password", "short")  # fmt: skip
    assert short.exit_code != 0


# --- the tablet -------------------------------------------------------------------------------


def set_pin(app: Any, inmate_id: str = "01234567", pin: str = PIN) -> None:
    result = cli(app, "set-pin", "--state", "TX", "--inmate-id", inmate_id, input=f"{pin}\n{pin}\n")
    assert result.exit_code == 0, result.output


def delivered(rt: Any, staff: Browser, phone: Any, **kwargs: Any) -> str:
    ref = send_message(rt, phone, **kwargs)
    staff.post(f"/facility/messages/{ref}/approve")
    staff.post("/facility/TX-HV/mail-run")
    drain(rt)
    return ref


@pytest.fixture
def person_tablet(app: Any) -> Browser:
    """A second browser (the tablet), not signed in."""
    return Browser(app.test_client())


def tablet_login(browser: Browser, pin: str = PIN, inmate_id: str = "1234567") -> Any:
    browser.get("/tablet/login")
    return browser.post("/tablet/login", state="TX", inmate_id=inmate_id, pin=pin)


def test_tablet_sign_in(rt, app, person_tablet, sample_directory):
    assert person_tablet.get("/tablet").status_code == 302
    set_pin(app)
    with rt.db.session() as session:
        assert session.scalars(select(TabletPin.pin_hash)).one() != PIN
    page = person_tablet.page("/tablet/login")
    assert '<option value="TX">Texas</option>' in page and '<label for="pin">' in page
    wrong = tablet_login(person_tablet, pin="000000")
    nobody = tablet_login(person_tablet, inmate_id="09999999")
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.get_data(as_text=True) == nobody.get_data(as_text=True)
    assert en("web.tablet.login.failed") in wrong.get_data(as_text=True)
    assert tablet_login(person_tablet).status_code == 303  # leading zero left out: same ID
    assert en("web.tablet.hello", first="Ana") in person_tablet.page("/tablet")
    person_tablet.post("/tablet/logout")
    assert person_tablet.get("/tablet").status_code == 302


def test_guessing_a_pin_is_locked_out(rt, app, person_tablet, sample_directory):
    set_pin(app)
    for guess in range(5):
        assert tablet_login(person_tablet, pin=f"00000{guess}").status_code == 401
    # Even the right PIN waits now: five wrong ones in a row lock the ID for a while.
    assert tablet_login(person_tablet).status_code == 401
    rt.redis.flushdb()  # the lockout ran out
    assert tablet_login(person_tablet).status_code == 303


def test_tablet_and_desk_sessions_are_separate(rt, app, staff, sample_directory):
    set_pin(app)
    assert staff.get("/tablet").status_code == 302  # the desk session is not a tablet one
    tablet_login(staff)
    assert staff.get("/tablet").status_code == 200
    assert staff.get("/facility").status_code == 200


def test_tablet_follows_the_language(app, person_tablet, sample_directory):
    page = person_tablet.page("/tablet/login?lang=es")
    assert '<html lang="es">' in page
    assert i18n.text("es", "web.tablet.login.title") in page
    assert i18n.text("es", "web.tablet.login.title") in person_tablet.page("/tablet/login")
    browser = Browser(app.test_client())
    spanish = browser.page("/tablet/login", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert i18n.text("es", "web.tablet.login.submit") in spanish


def test_reading_a_message_marks_it_read(
    rt, app, staff, person_tablet, phone, sample_directory, media_server
):
    set_pin(app)
    ref = delivered(rt, staff, phone, media_server=media_server, body="Hi <3\n\nmom")
    photo = photo_of(rt, ref)
    tablet_login(person_tablet)
    listing = person_tablet.page("/tablet")
    assert en("web.tablet.new") in listing
    assert en("web.tablet.from", phone="0123") in listing
    assert "Hi &lt;3\n\nmom</div>" in listing
    assert f'<img src="/tablet/media/{photo}"' in listing
    assert person_tablet.get(f"/tablet/media/{photo}").data == JPEG
    assert message(rt, ref).status == "delivered"
    page = person_tablet.page(f"/tablet/messages/{ref}")
    assert message(rt, ref).status == "read"
    assert "textarea" in page and 'maxlength="6000"' in page
    assert en("web.tablet.new") not in person_tablet.page("/tablet")
    person_tablet.page(f"/tablet/messages/{ref}")  # again: still read, nothing else
    assert message(rt, ref).status == "read"


def test_a_person_sees_only_their_own_messages(
    rt, app, staff, person_tablet, phone, new_phone, sample_directory, media_server
):
    set_pin(app)
    theirs = delivered(rt, staff, new_phone("+13105550199"), media_server=media_server,
                       inmate_id="02105533")  # fmt: skip
    photo = photo_of(rt, theirs)
    tablet_login(person_tablet)
    assert theirs not in person_tablet.page("/tablet")
    assert person_tablet.get(f"/tablet/messages/{theirs}").status_code == 404
    assert person_tablet.get(f"/tablet/media/{photo}").status_code == 404
    assert message(rt, theirs).status == "delivered"
    in_review = send_message(rt, phone)
    assert person_tablet.get(f"/tablet/messages/{in_review}").status_code == 404


def test_a_reply_posted_twice_reaches_the_family_once(
    rt, app, staff, person_tablet, phone, sample_directory
):
    set_pin(app)
    ref = delivered(rt, staff, phone)
    tablet_login(person_tablet)
    page = person_tablet.page(f"/tablet/messages/{ref}")
    once = ONCE.search(page).group(1)
    body = "Hi mom, I got your letter. I'm ok."
    path = f"/tablet/messages/{ref}/reply"
    first = person_tablet.post(path, body=body, once=once)
    second = person_tablet.post(path, body=body, once=once)
    assert first.status_code == second.status_code == 303
    page = person_tablet.page(first.headers["Location"])
    assert en("web.tablet.reply.sent") in page
    drain(rt)
    with rt.db.session() as session:
        replies = session.scalars(select(Reply)).all()
        assert [r.body for r in replies] == [body]
        reply_ref = replies[0].ref
    replied = [t for t in worker_texts(rt, phone.number) if t.startswith("Ana replied")]
    assert replied == [f"Ana replied ({reply_ref}): {body}"]
    assert f"Reply {reply_ref}, " in page  # under "Your replies"


def test_an_empty_or_too_long_reply_is_refused(
    rt, app, staff, person_tablet, phone, sample_directory
):
    set_pin(app)
    ref = delivered(rt, staff, phone)
    tablet_login(person_tablet)
    once = ONCE.search(person_tablet.page(f"/tablet/messages/{ref}")).group(1)
    path = f"/tablet/messages/{ref}/reply"
    empty = person_tablet.post(path, body="  \r\n ", once=once)
    assert empty.status_code == 400
    assert en("web.tablet.reply.empty") in empty.get_data(as_text=True)
    long = person_tablet.post(path, body="x" * 6001, once=once)
    assert long.status_code == 400
    assert en("web.tablet.reply.too_long", n="6,001", max="6,000") in long.get_data(as_text=True)
    assert person_tablet.post(path, body="ok", once="short").status_code == 400
    assert person_tablet.client.post(path, data={"body": "ok", "once": once}).status_code == 400
    with rt.db.session() as session:
        assert session.scalars(select(Reply)).all() == []


def test_a_long_reply_is_read_by_link(rt, app, staff, person_tablet, phone, sample_directory):
    set_pin(app)
    ref = delivered(rt, staff, phone)
    tablet_login(person_tablet)
    once = ONCE.search(person_tablet.page(f"/tablet/messages/{ref}")).group(1)
    long = "Dear mom, <i>hello</i>\n" + "I think about you every day. " * 150
    assert len(long) <= 6000
    person_tablet.post(f"/tablet/messages/{ref}/reply", body=long, once=once)
    drain(rt)
    text = worker_texts(rt, phone.number)[-1]
    assert text.startswith("Ana replied (") and "with a long letter. Read it here: " in text
    path = text.rsplit(" ", 1)[1].removeprefix("https://kinline.test")
    reader = Browser(app.test_client())
    page = reader.page(path)
    assert en("web.reply.title", first="Ana") in page
    assert "Dear mom, &lt;i&gt;hello&lt;/i&gt;\nI think about you" in page
    assert reader.get(path).headers["Referrer-Policy"] == "no-referrer"
    tampered = reader.get(path[:-2] + ("xx" if not path.endswith("xx") else "yy"))
    assert tampered.status_code == 404
    assert en("web.reply.invalid") in tampered.get_data(as_text=True)
    assert reader.get("/r/nothing").status_code == 404


def test_the_tablet_is_only_for_the_embedded_provider(rt, app, person_tablet, sample_directory):
    rt.settings = replace(
        rt.settings, provider="http", provider_url="http://127.0.0.1:9", provider_secret="s"
    )
    assert person_tablet.get("/tablet/login").status_code == 404


def test_set_pin_checks_what_it_is_given(rt, app, sample_directory):
    assert cli(app, "set-pin", "--state", "TX", "--inmate-id", "01234567",
               "--pin", "12").exit_code != 0  # fmt: skip
    assert cli(app, "set-pin", "--state", "ZZ", "--inmate-id", "01234567",
               "--pin", PIN).exit_code != 0  # fmt: skip
    missing = cli(app, "set-pin", "--state", "TX", "--inmate-id", "09999999", "--pin", PIN)
    assert missing.exit_code != 0 and "nobody with ID 09999999 in TX" in missing.output
    set_pin(app)
    set_pin(app, pin="135790")  # a new PIN replaces the old one
    with rt.db.session() as session:
        assert len(session.scalars(select(TabletPin)).all()) == 1
