"""The dev phone page and texts the worker sends later."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from bot import notify
from bot.store.models import OutboundSms
from tests.conftest import drain


def csrf(client) -> str:
    page = client.get("/dev/phone")
    assert page.status_code == 200
    with client.session_transaction() as session:
        return session["csrf"]


def test_page_is_served_in_console_mode(client):
    page = client.get("/dev/phone")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Kinline dev phone" in html and "+15005550006" in html


def test_page_does_not_exist_when_twilio_is_configured(rt):
    from webhooks import create_app

    settings = replace(rt.settings, twilio_account_sid="AC" + "1" * 32, twilio_from="+15005550006")
    client = create_app(runtime=replace(rt, settings=settings)).test_client()
    assert client.get("/dev/phone").status_code == 404


def test_sending_needs_the_page_token(client):
    response = client.post("/dev/phone/send", json={"from": "+15125550177", "body": "Hi"})
    assert response.status_code == 403
    assert "reload" in response.get_json()["error"]


def test_send_and_read_the_thread(client):
    token = csrf(client)
    headers = {"X-CSRF-Token": token}
    sent = client.post(
        "/dev/phone/send", json={"from": "+1 512 555 0177", "body": "Hi"}, headers=headers
    )
    assert sent.status_code == 200 and sent.get_json()["ok"] is True
    log = client.get("/dev/phone/log", query_string={"number": "+15125550177"}).get_json()
    assert [e["direction"] for e in log["events"]] == ["in", "out"]
    assert log["events"][0]["body"] == "Hi"
    assert log["events"][1]["body"].startswith("Kinline:")
    later = client.get(
        "/dev/phone/log", query_string={"number": "+15125550177", "after": log["cursor"]}
    ).get_json()
    assert later["events"] == []


def test_bad_input_gets_a_reason(client):
    headers = {"X-CSRF-Token": csrf(client)}
    bad = client.post("/dev/phone/send", json={"from": "call me", "body": "Hi"}, headers=headers)
    assert bad.status_code == 400 and "phone number" in bad.get_json()["error"]
    not_json = client.post("/dev/phone/send", data="x", headers=headers)
    assert not_json.status_code == 400
    assert client.get("/dev/phone/log").status_code == 400
    cursor = client.get("/dev/phone/log", query_string={"number": "+15125550177", "after": "x"})
    assert cursor.status_code == 400


def test_worker_texts_show_on_the_dev_phone_once(rt, client, phone):
    phone.text("Hi")
    assert notify.send_text(rt, phone.number, "menu.empty", "test:note:1")
    assert not notify.send_text(rt, phone.number, "menu.empty", "test:note:1")
    drain(rt)
    drain(rt)
    with rt.db.session() as session:
        rows = session.scalars(select(OutboundSms).where(OutboundSms.kind == "notification")).all()
    assert [row.status for row in rows] == ["sent"]
    assert rows[0].body.startswith("No one is on your list yet.")
    log = client.get("/dev/phone/log", query_string={"number": phone.number}).get_json()
    assert log["events"][-1]["body"] == rows[0].body and log["events"][-1]["status"] == "sent"


def test_the_thread_shows_when_a_worker_text_goes_out(rt, client, phone):
    phone.text("Hi")
    query = {"number": phone.number}
    first = client.get("/dev/phone/log", query_string=query).get_json()
    notify.send_text(rt, phone.number, "menu.empty", "test:note:4")
    queued = client.get("/dev/phone/log", query_string={**query, "after": first["cursor"]})
    assert [e["status"] for e in queued.get_json()["events"]] == ["queued"]
    drain(rt)
    after = queued.get_json()["cursor"]
    sent = client.get("/dev/phone/log", query_string={**query, "after": after}).get_json()
    assert [e["status"] for e in sent["events"]] == ["sent"]
    quiet = client.get("/dev/phone/log", query_string={**query, "after": sent["cursor"]})
    assert quiet.get_json()["events"] == []


def test_opted_out_numbers_get_no_worker_texts(rt, phone):
    phone.text("Hi")
    assert notify.send_text(rt, phone.number, "menu.empty", "test:note:2")
    phone.text("STOP")
    drain(rt)
    with rt.db.session() as session:
        row = session.scalars(select(OutboundSms).where(OutboundSms.kind == "notification")).one()
    assert row.status == "suppressed" and row.provider_sid is None
    assert not notify.send_text(rt, phone.number, "menu.empty", "test:note:3")


def test_dev_phone_and_unsigned_texts_are_for_this_machine_only(rt):
    from webhooks import create_app

    settings = replace(rt.settings, twilio_auth_token=None)
    client = create_app(runtime=replace(rt, settings=settings)).test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/dev/phone", environ_base=remote).status_code == 404
    form = {"MessageSid": "SM" + "1" * 32, "From": "+15125550100", "To": "+15005550006"}
    form["Body"] = "Hi"
    assert client.post("/sms/inbound", data=form, environ_base=remote).status_code == 403
    assert client.post("/sms/inbound", data=form).status_code == 200


def test_a_photo_from_the_page_becomes_an_mms(rt, client, sample_directory):
    import base64

    from tests.fakes import JPEG

    headers = {"X-CSRF-Token": csrf(client)}
    number = "+15125550177"
    for body in ("Hi", "YES", "TX", "01234567", "yes", "1"):
        client.post("/dev/phone/send", json={"from": number, "body": body}, headers=headers)
    photo = {"content_type": "image/jpeg", "data": base64.b64encode(JPEG).decode()}
    sent = client.post(
        "/dev/phone/send", json={"from": number, "body": "", "media": [photo]}, headers=headers
    )
    assert sent.status_code == 200, sent.get_json()
    events = client.get("/dev/phone/log", query_string={"number": number}).get_json()["events"]
    [media] = [e["media"] for e in events if e["direction"] == "in" and e["media"]]
    assert media[0]["content_type"] == "image/jpeg" and media[0]["url"].startswith(
        "/dev/phone/media/"
    )
    served = client.get(media[0]["url"])
    assert served.status_code == 200 and served.data == JPEG and served.mimetype == "image/jpeg"
    bad = client.post(
        "/dev/phone/send",
        json={"from": number, "body": "", "media": [{"content_type": "image/jpeg", "data": "%%%"}]},
        headers=headers,
    )
    assert bad.status_code == 400 and "base64" in bad.get_json()["error"]
