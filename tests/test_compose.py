"""Writing a message as texts and photos, through signed webhooks and a real worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from bot.store.models import Attachment, Draft, OutboundSms
from tests.conftest import drain
from tests.fakes import JPEG, PNG


def ready_to_write(phone, inmate_id: str = "01234567", state: str = "TX") -> None:
    """Onboard, save one person, and open a message to them."""
    phone.text("Hi")
    phone.text("YES")
    phone.text(state)
    phone.text(inmate_id)
    phone.text("yes")


def worker_texts(rt, number: str) -> list[str]:
    """Texts the worker sent to a number (not replies), oldest first."""
    with rt.db.session() as session:
        rows = session.scalars(
            select(OutboundSms)
            .where(
                OutboundSms.to_number == number,
                OutboundSms.kind.in_(("notification", "response")),
            )
            .order_by(OutboundSms.id)
        ).all()
        return [row.body for row in rows if row.status == "sent"]


def the_draft(rt) -> Draft:
    with rt.db.session() as session:
        draft = session.scalars(select(Draft).order_by(Draft.id.desc())).first()
        assert draft is not None
        draft.attachments  # noqa: B018  (load them)
        return draft


def mms(phone, body: str, url: str, content_type: str) -> list[str]:
    form = phone.form(body, NumMedia="1", MediaUrl0=url, MediaContentType0=content_type)
    response = phone.post(form)
    assert response.status_code == 200
    from tests.conftest import twiml_messages

    return twiml_messages(response.data)


def test_fragments_get_one_tally_after_the_pause(rt, phone, sample_directory, media_server):
    ready_to_write(phone)
    assert phone.text("1").startswith("Write to Ana: send your message as one or more texts")
    assert phone.send("Hi mom, it's me.") == []  # no reply per fragment
    assert phone.send("I got your letter and the photos of the baby.") == []
    photo = media_server.add("ME1", JPEG, "image/jpeg")
    assert mms(phone, "", photo, "image/jpeg") == []
    assert phone.send("Love you always.") == []
    drain(rt)
    tallies = [text for text in worker_texts(rt, phone.number) if text.startswith("Got it")]
    draft = the_draft(rt)
    chars = len(draft.body)
    assert tallies == [
        f"Got it: {chars} characters and 1 photo = 2 stamps. "
        "Keep writing, send a photo, or reply DONE."
    ]
    assert draft.body == (
        "Hi mom, it's me.\nI got your letter and the photos of the baby.\nLove you always."
    )
    [attachment] = draft.attachments
    assert attachment.status == "stored" and attachment.content_type == "image/jpeg"
    assert (Path(rt.settings.media_dir) / attachment.storage_key).read_bytes() == JPEG


def test_text_cut_by_the_phone_is_joined_without_a_line_break(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    first = "a" * 153
    phone.send(first)
    phone.send("bcd")
    assert the_draft(rt).body == first + "bcd"


def test_done_previews_with_cost_and_balance(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    phone.send("Hi mom, I got your letter and I read it twice.")
    preview = phone.text("DONE")
    assert preview == (
        'To Ana Ruiz: "Hi mom, I got your..." 46 characters = 1 stamp. '
        "You have 0 Texas stamps. Reply SEND, EDIT or DISCARD."
    )
    assert phone.text("EDIT").startswith("Your message to Ana is saved: 46 characters.")
    phone.send("See you soon.")
    assert "60 characters = 1 stamp" in phone.text("done")


def test_asking_for_the_cost_answers_right_away(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    for _ in range(4):
        phone.send("x" * 1600)  # Twilio's longest inbound text
    # 1,600 characters is where Twilio cuts a long text: the parts are joined as one.
    assert phone.text("How much?").startswith("Got it: 6,400 characters = 2 stamps.")
    assert the_draft(rt).body == "x" * 6400


def test_done_on_an_empty_message_says_what_to_do(phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    assert phone.text("DONE").startswith("Your message to Ana is empty.")


def test_discard_asks_first_then_deletes(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    phone.send("A draft I will delete.")
    confirm = phone.text("DISCARD")
    assert confirm == (
        "Delete your message to Ana (22 characters)? This cannot be undone. Reply YES or NO."
    )
    assert phone.text("no").startswith('To Ana Ruiz: "A draft I will delete."')
    phone.text("discard")
    gone = phone.send("yes")
    assert gone[0] == "Deleted your message to Ana."
    assert the_draft(rt).status == "discarded"
    assert "draft saved" not in gone[1]


def test_redis_flushed_between_fragments_keeps_the_draft(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    phone.send("First part.")
    rt.redis.flushdb()
    assert phone.send("Second part.") == [
        "Your message to Ana is saved and still open; we added this text."
        " Keep writing, or reply DONE."
    ]
    assert the_draft(rt).body == "First part.\nSecond part."
    assert phone.text("DONE").startswith('To Ana Ruiz: "First part. Second part."')


def test_an_old_draft_waits_on_the_menu(rt, phone, sample_directory):
    from datetime import timedelta

    from bot.store.models import utcnow

    ready_to_write(phone)
    phone.text("1")
    phone.send("Started last month.")
    with rt.db.session() as session:
        draft = session.scalars(select(Draft)).one()
        draft.updated_at = utcnow() - timedelta(days=30)
        session.commit()
    rt.redis.flushdb()
    menu = phone.text("hello")
    assert "1 Write to Ana R. (draft saved)" in menu
    assert phone.text("1").startswith("Your message to Ana is saved: 19 characters.")


def test_facility_without_photos_refuses_the_photo_and_keeps_the_text(
    rt, phone, sample_directory, media_server
):
    ready_to_write(phone, "03456789")  # David Nguyen, Ellis Unit: no photos
    phone.text("1")
    url = media_server.add("ME2", JPEG, "image/jpeg")
    replies = mms(phone, "Here is a picture of the dog.", url, "image/jpeg")
    assert replies == [
        "Ellis Unit does not take photos, so we could not add it. Keep writing, or reply DONE."
    ]
    draft = the_draft(rt)
    assert draft.body == "Here is a picture of the dog." and draft.attachments == []


def test_unknown_media_type_is_refused_with_the_types_we_take(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    replies = mms(phone, "My letter", "http://127.0.0.1:9/Media/ME3", "application/pdf")
    assert replies[0].startswith("We can add photos as JPEG, PNG or GIF only.")
    assert the_draft(rt).body == "My letter"


def test_media_that_is_not_what_it_says_is_refused_after_download(
    rt, phone, sample_directory, media_server
):
    ready_to_write(phone)
    phone.text("1")
    url = media_server.add("ME4", b"<html>not a photo</html>", "image/jpeg")
    mms(phone, "", url, "image/jpeg")
    drain(rt)
    [attachment] = the_draft(rt).attachments
    assert attachment.status == "refused" and attachment.reason == "not_media"
    assert worker_texts(rt, phone.number) == [
        "We could not add what you sent: it is not a photo we can read. Your text is kept."
        " Send another photo, or reply DONE."
    ]


def test_media_is_fetched_with_the_twilio_credentials(rt, phone, sample_directory, media_server):
    media_server.auth = ("AC" + "7" * 32, "twilio-token")
    ready_to_write(phone)
    phone.text("1")
    url = media_server.add("ME5", PNG, "image/png")
    mms(phone, "", url, "image/png")
    # Twilio's API (here: the local double) is where the credentials may go.
    rt.settings = replace(
        rt.settings,
        twilio_account_sid="AC" + "7" * 32,
        twilio_auth_token="twilio-token",
        twilio_api_base=media_server.url,
    )
    drain(rt)
    [attachment] = the_draft(rt).attachments
    assert attachment.status == "stored" and attachment.content_type == "image/png"


def test_credentials_never_go_to_another_host(rt, phone, sample_directory, media_server):
    ready_to_write(phone)
    phone.text("1")
    url = media_server.add("ME6", PNG, "image/png")
    mms(phone, "", url, "image/png")
    rt.settings = replace(
        rt.settings,
        twilio_account_sid="AC" + "7" * 32,
        twilio_auth_token="twilio-token",
        twilio_api_base=media_server.url.replace("127.0.0.1", "localhost"),
    )
    drain(rt)
    assert [r for r in media_server.requests if "Authorization" in r["headers"]] == []


def test_limits_keep_the_draft(rt, phone, sample_directory, media_server):
    rt.settings = replace(
        rt.settings, chars_per_stamp=20, max_stamps_per_message=3, max_attachments=1
    )
    ready_to_write(phone)
    phone.text("1")
    phone.send("x" * 30)  # 2 stamps
    refused = phone.text("y" * 40)
    assert refused.startswith("That text would take your message over 3 stamps (60 characters)")
    first = media_server.add("ME6", JPEG, "image/jpeg")
    assert mms(phone, "", first, "image/jpeg") == []  # 3 stamps now
    second = media_server.add("ME7", JPEG, "image/jpeg")
    assert mms(phone, "", second, "image/jpeg")[0].startswith("A message can carry 1 photo at")
    draft = the_draft(rt)
    assert draft.body == "x" * 30 and len(draft.attachments) == 1


def test_send_waits_for_a_photo_still_on_its_way(rt, phone, sample_directory, media_server):
    ready_to_write(phone)
    phone.text("1")
    url = media_server.add("ME8", JPEG, "image/jpeg")
    mms(phone, "With a photo", url, "image/jpeg")
    phone.text("DONE")
    assert phone.text("SEND") == (
        "Your photo is still on its way to us. Reply SEND again in a minute."
    )
    with rt.db.session() as session:
        assert session.scalars(select(Attachment)).one().status == "pending"


def test_only_send_sends_from_the_preview(rt, phone, sample_directory):
    from bot.store.models import Message

    ready_to_write(phone)
    phone.text("1")
    phone.send("Short note.")
    phone.text("DONE")
    for answer in ("s", "ok", "ok wait", "ya"):
        assert phone.text(answer).startswith('To Ana Ruiz: "Short note."'), answer
    with rt.db.session() as session:
        assert session.scalars(select(Message)).all() == []


def test_more_words_at_the_preview_are_more_of_the_message(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    phone.send("First part.")
    phone.text("DONE")
    assert phone.send("and one more thing: I love you") == []
    assert the_draft(rt).body == "First part.\nand one more thing: I love you"
    assert "42 characters" in phone.text("DONE")


def test_no_stale_tally_after_done(rt, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    phone.send("Hello there.")
    phone.text("DONE")
    drain(rt)
    assert worker_texts(rt, phone.number) == []


def test_a_menu_answer_after_redis_is_emptied_is_not_written_into_the_message(
    rt, phone, sample_directory
):
    ready_to_write(phone)
    phone.text("1")
    phone.send("hello there")
    phone.text("DONE")
    phone.text("SEND")  # the bundles
    rt.redis.flushdb()
    assert phone.text("2").startswith("Your message to Ana is saved: 11 characters.")
    assert the_draft(rt).body == "hello there"


def test_texts_cut_by_the_phone_join_in_both_encodings():
    from flows.compose import cut_by_the_phone

    assert cut_by_the_phone("a" * 160) and cut_by_the_phone("a" * 306)
    assert not cut_by_the_phone("a" * 134)  # a GSM text of 134 was not cut
    assert cut_by_the_phone("á" * 70) and cut_by_the_phone("á" * 134)
    assert not cut_by_the_phone("á" * 100)
    assert cut_by_the_phone("x" * 1600)


def test_preview_quotes_plain_characters(rt, phone, sample_directory):
    from bot import sms

    ready_to_write(phone)
    phone.text("1")
    phone.send("It\u2019s me \U0001f600 \u2014 I got it")
    preview = phone.text("DONE")
    assert preview.startswith('To Ana Ruiz: "It\'s me - I got it"')
    assert sms.encoding(preview) == "GSM-7"
