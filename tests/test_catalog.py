"""Every text a person reads: both languages complete, English short enough for one SMS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import i18n, sms

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")

# Realistic values, on the long side of real life.
VALUES = {
    "terms_url": "kinline.org/terms",
    "support": "help@kinline.org",
    "name": "Guadalupe Nuñez",
    "first": "Guadalupe",
    "inmate_id": "01876543",
    "facility": "Georgia Diagnostic and Classification Prison",  # the longest sample name
    "state": "Pennsylvania",
    "example": "01234567",
    "shape": "2 letters and 4 digits",
    "text": "Puerto Rico",
    "n": 8,
    "low": 4,
    "high": 8,
    "letters": "2 letters",
    "digits": "4 digits",
    "lines": "1 Write to Ana R. (#01234567)",
    "total": 9,
    "last": 10,
    "size": "12,412 characters and 2 photos",
    "stamps": "20 Pennsylvania stamps",
    "balance": "24 Pennsylvania stamps",
    "start": "Hi mom, I got your letter...",
    "ref": "K7Q2M",
    "max": 10,
    "chars": "60,000",
    "reason": "it is not a photo we can read",
    "wallet": "24 Pennsylvania stamps",
    "price": "$17.50",
    "url": "https://kinline.org/buy/WzEyMzQsImFiY2RlZiJd.aVx3Kw.Fq3kM9xQ2pW7vN1sT8yR4uE6oI0",
    "minutes": 30,
    "need": "22 Pennsylvania stamps",
    "second": "2 photos",
    "phone": "0123",
    "mb": 5,
    "time": "Tue 6:02 PM",
    "back": "Your 2 stamps are back: 24 PA stamps. ",
    "body": "Hi mom, I got your letter. I'm ok. Tell everyone I said hi.",
    "where": "delivered Tue 6:02 PM",
    "short": "3 Pennsylvania stamps",
}
BUNDLE_LINES = "\n".join(
    ["1) 5 for $2.50", "2) 10 for $4.50", "3) 20 for $8.00", "4) 50 for $17.50"]
)
# Per entry, where a placeholder means something else.
OVERRIDES = {
    "lookup.matches": {"first": 6},
    "lookup.matches_more": {"first": 6},
    "lookup.no_more": {"first": 6},
    "compose.and": {"first": "12,412 characters"},
    "compose.preview": {"stamps": "5 stamps"},
    "compose.tally": {"stamps": "5 stamps"},
    "stamps.bundles": {"lines": BUNDLE_LINES, "last": 4},
    "stamps.need": {"lines": BUNDLE_LINES, "last": 4},
    "stamps.pick_state": {"lines": "1 4 Texas stamps\n2 0 California stamps", "last": 2},
}

# Entries allowed more than one segment, and why.
LONGER = {
    "lookup.matches": "a list of up to five people with their facilities",
    "lookup.matches_more": "a list of up to five people with their facilities",
    "stamps.bundles": "the four bundles with their prices",
    "stamps.need": "the four bundles with their prices",
}


def render(language: str, key: str) -> str:
    template = i18n.catalog(language)[key]
    values = {**VALUES, **OVERRIDES.get(key, {})}
    values = {name: values[name] for name in PLACEHOLDER.findall(template)}
    if key.startswith("lookup.matches"):
        values["lines"] = "\n".join(
            f"{n} Guadalupe Nuñez #0187654{n}, {VALUES['facility']}" for n in range(6, 11)
        )
    return i18n.text(language, key, **values)


def sms_keys(language: str) -> list[str]:
    """Entries sent as texts (``web.*`` entries are on web pages)."""
    return sorted(key for key in i18n.catalog(language) if not key.startswith("web."))


def code_keys() -> set[str]:
    """Catalog keys named in the code and the page templates."""
    keys: set[str] = set()
    prefixes = (
        "onboarding|menu|lookup|help|stop|start|language|error|compose|media|stamps|web"
        "|delivery|status"
    )
    pattern = re.compile(rf"\"((?:{prefixes})[a-z_.]*)\"")
    sources = [*ROOT.glob("bot/**/*.py"), *ROOT.glob("flows/*.py"), *ROOT.glob("bot/web/**/*.html")]
    for path in sources:
        keys |= set(pattern.findall(path.read_text()))
    return {key for key in keys if key.count(".") or key == "help"}


def test_both_languages_have_the_same_entries_and_placeholders():
    english, spanish = i18n.catalog("en"), i18n.catalog("es")
    assert set(english) == set(spanish)
    for key, text in english.items():
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(spanish[key])), key


def test_every_key_the_code_uses_exists_and_every_entry_is_used():
    used = code_keys()
    english = set(i18n.catalog("en"))
    missing = {key for key in used - english if f"{key}.one" not in english}
    assert missing == set(), "texts used in code but missing from the catalog"
    # Built from parts in code: lookup.shape.*, plural pairs, media reasons, card outcomes.
    built = re.compile(
        r"^delivery\.(rejected|returned)\.|^delivery\.(delivered|photo_rejected|moved\w*)$|"
        r"^status\.where\.|"
        r"lookup\.shape\.|\.(one|other)$|^media\.reason\.|^compose\.media\.|^web\.card_"
    )
    assert {key for key in english - used if not built.search(key)} == set(), "unused entries"


@pytest.mark.parametrize("key", sms_keys("en"))
def test_english_entry_fits_one_segment(key):
    text = render("en", key)
    assert sms.encoding(text) == "GSM-7", f"{key} switches to UCS-2: {text!r}"
    if key in LONGER:
        assert sms.segment_count(text) <= 4, key
    else:
        assert sms.segment_count(text) == 1, f"{key} is {len(text)} characters: {text!r}"


@pytest.mark.parametrize("key", sms_keys("es"))
def test_spanish_entry_stays_short(key):
    text = render("es", key)
    assert sms.segment_count(text) <= (4 if key in LONGER else 3), f"{key}: {text!r}"
    assert not set(text) & set("\u2018\u2019\u201c\u201d\u2014\u2026\u00a0"), key


def test_unknown_language_falls_back_to_english():
    assert i18n.text("fr", "lookup.ask_state") == i18n.text("en", "lookup.ask_state")


@pytest.mark.parametrize("language", ["en", "es"])
def test_entries_with_placeholders_are_marked_python_format(language):
    # Read as text: Babel recomputes the flag from the msgid, which here is a key.
    text = (ROOT / "locales" / language / "LC_MESSAGES" / "messages.po").read_text()
    unmarked = [
        block.split('msgid "')[1].split('"')[0]
        for block in text.split("\n\n")
        if 'msgid "' in block and "%(" in block and "#, python-format" not in block
    ]
    assert unmarked == []
