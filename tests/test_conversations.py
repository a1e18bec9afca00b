"""Whole conversations through signed webhooks, as a new user would try them."""

from __future__ import annotations

from sqlalchemy import select

from bot.store.models import Account, Contact, InboundSms, OutboundSms
from tests.conftest import account, twiml_messages


def consented(phone) -> None:
    """Onboard a phone: first text, then YES."""
    phone.text("Hi")
    phone.text("YES")


def saved_ids(rt, number: str) -> list[str]:
    with rt.db.session() as session:
        rows = session.scalars(
            select(Contact)
            .join(Account)
            .where(Account.phone == number, Contact.removed_at.is_(None))
            .order_by(Contact.id)
        ).all()
        return [row.inmate.inmate_id for row in rows]


def test_first_text_explains_the_service_and_stores_only_the_opt_in_record(rt, phone):
    reply = phone.text("Hello?")
    assert reply.startswith("Kinline: write to a loved one in prison by text.")
    assert "Reply YES" in reply and "STOP" in reply and "HELP" in reply
    assert "Msg&data rates may apply" in reply
    record = account(rt, phone.number)
    assert record is not None and record.consent_at is None and record.language == "en"


def test_anything_but_yes_asks_again_and_yes_records_consent(rt, phone, sample_directory):
    phone.text("Hello")
    again = phone.text("what is this")
    assert "reply YES" in again
    assert account(rt, phone.number).consent_at is None
    reply = phone.text(" Yes! ")
    assert "Which state is your loved one in?" in reply
    record = account(rt, phone.number)
    assert record.consent_at is not None
    assert record.terms_version == rt.settings.terms_version


def test_lookup_by_id_confirms_and_saves_the_person(rt, phone, sample_directory):
    consented(phone)
    ask = phone.text("Texas")
    assert ask.startswith("Texas: send your loved one's inmate ID (like 01234567)")
    confirm = phone.text("#0123-4567")
    assert confirm == (
        "Ana Ruiz #01234567 at Huntsville Unit, TX. Is this your loved one? Reply YES or NO."
    )
    saved = phone.send("y")
    assert saved[0] == "Saved: Ana Ruiz at Huntsville Unit is on your list."
    assert "1 Write to Ana R. (#01234567)" in saved[1]
    assert saved_ids(rt, phone.number) == ["01234567"]


def test_short_id_without_leading_zeros_finds_the_padded_id(phone, sample_directory):
    consented(phone)
    phone.text("TX")
    assert phone.text("98765").startswith("Earl Thompson #00098765 at Huntsville Unit")


def test_lookup_by_name_with_several_matches_pages_and_picks(rt, phone, sample_directory):
    consented(phone)
    phone.text("tx")
    first_page = phone.text("garcia")
    lines = first_page.splitlines()
    assert lines[0] == "Found 9 in Texas:"
    assert [line.split()[0] for line in lines[1:6]] == ["1", "2", "3", "4", "5"]
    assert lines[1] == "1 Antonio Garcia #01543287, released"
    assert lines[2] == "2 Carlos Garcia #01987342, Ellis Unit"
    assert "MORE" in lines[-1]
    second_page = phone.text("MORE")
    assert second_page.splitlines()[1].startswith("6 ")
    assert "Reply 6-9" in second_page
    assert "MORE" not in second_page
    assert phone.text("42") == second_page  # not on the list: the same choices again
    assert phone.text("more") == "That is everyone we found. Reply 6-9, or NEW to search again."
    confirm = phone.text("8")
    assert confirm.startswith("Rosa Garcia #02310876 at Mountain View Unit, TX.")
    phone.text("yes")
    assert saved_ids(rt, phone.number) == ["02310876"]


def test_same_name_twice_lists_both_with_their_facility(phone, sample_directory):
    consented(phone)
    phone.text("Texas")
    listing = phone.text("Ruiz, Ana")
    assert "1 Ana Ruiz #01234567, Huntsville Unit" in listing
    assert "2 Ana Ruiz #07654321, Mountain View Unit" in listing
    assert phone.text("#2").startswith("Ana Ruiz #07654321 at Mountain View Unit")


def test_name_search_ignores_accents_and_order(phone, sample_directory):
    consented(phone)
    phone.text("Texas")
    assert phone.text("Jose Ramirez").startswith("José Ramírez #02156789")
    phone.text("NO")
    assert phone.text("de la cruz, marisol").startswith("Marisol De la Cruz #01934410")


def test_typo_in_state_is_asked_back(phone, sample_directory):
    consented(phone)
    assert phone.text("Texsa") == "Did you mean Texas? Reply YES, or send the state again."
    assert phone.text("yes").startswith("Texas: send your loved one's inmate ID")


def test_state_we_cannot_read_gets_an_example(phone, sample_directory):
    consented(phone)
    reply = phone.text("Narnia")
    assert reply.startswith('We couldn\'t match "Narnia" to a US state.')
    assert "like Texas or TX" in reply


def test_state_without_service_says_so_and_what_to_do(phone, sample_directory):
    consented(phone)
    reply = phone.text("Vermont")
    assert "does not reach prisons in Vermont yet" in reply
    assert "postal mail" in reply


def test_id_in_the_wrong_format_gets_the_state_format(phone, sample_directory):
    consented(phone)
    phone.text("California")
    reply = phone.text("123456789")
    assert reply.startswith("California IDs are 2 letters and 4 digits, like AB1234.")
    assert phone.text("ab 1234").startswith("Luis Gomez #AB1234 at San Quentin")


def test_id_that_fits_but_is_unknown(phone, sample_directory):
    consented(phone)
    phone.text("TX")
    reply = phone.text("0123")
    assert reply.startswith("We couldn't find ID 0123 in Texas.")


def test_facility_without_emessages_is_explained_and_not_saved(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("02345678")
    reply = phone.text("YES")
    assert reply.startswith("Lane Murray Unit does not take e-messages")
    assert "Tamika" in reply and "postal mail" in reply
    assert saved_ids(rt, phone.number) == []
    assert phone.text("NEW").startswith("Texas: send your loved one's inmate ID")


def test_released_person_is_explained_and_not_saved(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("00456789")
    reply = phone.text("yes")
    assert reply.startswith("Our records show Robert Johnson was released from Huntsville Unit")
    assert saved_ids(rt, phone.number) == []


def test_facility_without_photos_is_saved_with_a_note(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("03456789")
    saved = phone.send("yes")
    assert "Ellis Unit takes text messages but not photos" in saved[0]
    assert saved_ids(rt, phone.number) == ["03456789"]


def test_several_contacts_and_removal(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("01234567")
    phone.text("yes")
    phone.text("N")
    phone.text("CA")
    phone.text("AB1234")
    menu = phone.send("yes")[1]
    assert "1 Write to Ana R. (#01234567)" in menu and "2 Write to Luis G. (#AB1234)" in menu
    assert phone.text("R") == "Who should come off your list? Reply 1-2, or MENU."
    assert phone.text("2") == "Take Luis Gomez #AB1234 off your list? Reply YES or NO."
    done = phone.send("yes")
    assert done[0] == "Done: Luis Gomez is off your list."
    assert "#AB1234" not in done[1]
    assert saved_ids(rt, phone.number) == ["01234567"]


def test_saving_someone_twice_says_they_are_already_there(rt, phone, sample_directory):
    consented(phone)
    for _ in range(2):
        phone.text("N") if saved_ids(rt, phone.number) else None
        phone.text("TX")
        phone.text("01234567")
        last = phone.send("yes")
    assert last[0] == "Ana Ruiz is already on your list."
    assert saved_ids(rt, phone.number) == ["01234567"]


def test_back_goes_one_step_back(phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("Garcia")
    assert phone.text("BACK").startswith("Texas: send your loved one's inmate ID")
    assert phone.text("back").startswith("Which state is your loved one in?")


def test_unknown_words_get_the_current_choices_again(phone, sample_directory):
    consented(phone)
    phone.text("TX")
    phone.text("01234567")
    assert phone.text("maybe?").endswith("Is this your loved one? Reply YES or NO.")
    phone.text("yes")
    assert phone.text("banana").startswith("Your list:")


def test_stop_then_silence_then_start(rt, phone, sample_directory):
    consented(phone)
    stop = phone.send("STOP")
    assert stop == [
        "Kinline: you are unsubscribed and will get no more texts from us."
        " Reply START to come back."
    ]
    assert account(rt, phone.number).opted_out_at is not None
    assert phone.send("hello?") == []
    assert phone.send("stop") == []
    assert phone.send("MENU") == []
    # HELP is answered whatever the subscription (CTIA), and does not opt back in.
    assert "STOP to end" in phone.text("HELP")
    assert phone.send("hello?") == []
    back = phone.send("START")
    assert back[0].startswith("Kinline: welcome back")
    assert back[1].startswith("No one is on your list yet. Which state")
    assert account(rt, phone.number).opted_out_at is None


def test_every_opt_out_word_opts_out(rt, new_phone):
    for i, word in enumerate(
        ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "revoke", "OPTOUT", " stop. "]
    ):
        number = f"+1512555{i:04d}"
        replies = new_phone(number).send(word)
        assert len(replies) == 1 and "unsubscribed" in replies[0], word
        assert account(rt, number).opted_out_at is not None


def test_help_answers_anyone_without_changing_their_step(rt, phone, sample_directory):
    reply = phone.text("HELP")
    assert "Kinline" in reply and rt.settings.support_contact in reply
    assert "Msg&data rates may apply" in reply and "STOP" in reply
    consented(phone)
    phone.text("TX")
    assert "Msg&data rates may apply" in phone.text("info")
    assert phone.text("01234567").startswith("Ana Ruiz #01234567")


def test_idle_expiry_lands_on_the_menu(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    rt.redis.flushdb()  # what an expired conversation looks like
    assert phone.text("01234567").startswith("No one is on your list yet. Which state")
    assert phone.text("TX").startswith("Texas: send")  # and the lookup goes on from there
    phone.text("01234567")
    phone.text("yes")
    rt.redis.flushdb()
    assert phone.text("Texas").startswith("Your list:\n1 Write to Ana R. (#01234567)")


def test_spanish_from_the_first_text(rt, phone, sample_directory):
    welcome = phone.text("ES")
    assert "SÍ" in welcome and "STOP" in welcome
    assert account(rt, phone.number).language == "es"
    assert "estado" in phone.text("sí")
    guess = phone.text("Tejas")
    assert guess.startswith("¿Quisiste decir Texas?")
    ask = phone.text("si")
    assert "01234567" in ask
    assert phone.text("0123").startswith("No encontramos")
    listing = phone.text("Ruiz, Ana")
    assert listing.startswith("Encontramos 2")
    confirm = phone.text("uno")
    assert "¿Es tu ser querido?" in confirm
    saved = phone.send("Sí")
    assert "Ana Ruiz" in saved[0]
    assert saved[1].startswith("Tu lista:")


def test_spanish_released_and_no_emessages(phone, sample_directory):
    consented(phone)
    phone.text("ES")
    phone.text("TX")
    phone.text("00456789")
    assert "libertad" in phone.text("si")
    phone.text("NUEVO")
    phone.text("02345678")
    reply = phone.text("si")
    assert (
        reply.startswith("Lane Murray Unit no") and "Tamika" in reply and "correo postal" in reply
    )


def test_hola_gets_the_spanish_welcome(rt, phone):
    assert "English: EN" in phone.text("Hola")
    assert account(rt, phone.number).language == "es"


def test_switching_language_repeats_the_current_question(phone, sample_directory):
    consented(phone)
    phone.text("TX")
    switched = phone.send("español")
    assert switched[0] == "Listo, te escribiremos en español."
    assert "Texas" in switched[1] and "APELLIDO, NOMBRE" in switched[1]
    back = phone.send("EN")
    assert back[0] == "OK, we will write to you in English."


def test_every_text_and_reply_is_in_the_sms_log(rt, phone, sample_directory):
    consented(phone)
    phone.text("TX")
    with rt.db.session() as session:
        inbound = session.scalars(select(InboundSms).order_by(InboundSms.id)).all()
        assert [row.body for row in inbound] == ["Hi", "YES", "TX"]
        assert all(row.processed_at is not None for row in inbound)
        outbound = session.scalars(select(OutboundSms).order_by(OutboundSms.id)).all()
        assert len(outbound) == 3
        assert {row.kind for row in outbound} == {"reply"}
        assert outbound[-1].body.startswith("Texas: send")


def test_flow_machines_are_built_once_not_per_text(phone, sample_directory, monkeypatch):
    import transitions

    def refuse(*args, **kwargs):
        raise AssertionError("a transitions.Machine was built during a turn")

    monkeypatch.setattr(transitions.Machine, "__init__", refuse)
    consented(phone)
    phone.text("TX")
    phone.text("Garcia")
    assert phone.text("2").startswith("Carlos Garcia #01987342")


def test_blank_text_or_photo_alone_gets_the_question_again(phone, sample_directory):
    consented(phone)
    media = {"MediaUrl0": "https://api.twilio.com/media/ME1", "MediaContentType0": "image/jpeg"}
    form = phone.form("", NumMedia="1", **media)
    response = phone.post(form)
    assert response.status_code == 200
    assert twiml_messages(response.data) == [
        "Which state is your loved one in? Reply with the name or code, like Texas or TX."
    ]
    assert phone.text("   ").startswith("Which state is your loved one in?")


def test_people_answer_in_their_own_words(rt, phone, sample_directory):
    phone.text("Hi")
    assert "Which state" in phone.text("I agree")
    phone.text("TX")
    phone.text("01234567")
    assert phone.send("Yes that's her")[0].startswith("Saved: Ana Ruiz")
    phone.text("N")
    phone.text("TX")
    assert phone.text("Ana Maria Ruiz").startswith("Found 2 in Texas")  # a middle name
    assert phone.text("none").startswith("Texas: send")  # nobody on the list: search again
    phone.text("00456789")
    phone.text("sí, es él")
    assert phone.text("brooks").startswith("Tamika Brooks #02345678")  # after a dead end


def test_stop_in_plain_words_opts_out(rt, phone, sample_directory):
    consented(phone)
    assert "unsubscribed" in phone.text("Please stop texting me")
    assert account(rt, phone.number).opted_out_at is not None
    assert phone.send("Texas") == []
