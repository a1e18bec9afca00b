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
    "lines": "1 Ana R. (#01234567)",
    "total": 9,
    "first_n": 6,
    "last": 10,
}

# Entries allowed more than one segment, and why.
LONGER = {
    "lookup.matches": "a list of up to five people with their facilities",
    "lookup.matches_more": "a list of up to five people with their facilities",
}


def render(language: str, key: str) -> str:
    template = i18n.catalog(language)[key]
    values = {name: VALUES[name] for name in PLACEHOLDER.findall(template)}
    if key.startswith("lookup.matches"):
        values["first"] = VALUES["first_n"]
        values["lines"] = "\n".join(
            f"{n} Guadalupe Nuñez #0187654{n}, {VALUES['facility']}" for n in range(6, 11)
        )
    return i18n.text(language, key, **values)


def code_keys() -> set[str]:
    """Catalog keys named in the code."""
    keys: set[str] = set()
    pattern = re.compile(r"\"((?:onboarding|menu|lookup|help|stop|start|language|error)[a-z_.]*)\"")
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("flows/*.py")]:
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
    assert used - english == set(), "texts used in code but missing from the catalog"
    shapes = {key for key in english if key.startswith("lookup.shape.")}
    assert english - used - shapes == set(), "catalog entries nothing uses"


@pytest.mark.parametrize("key", sorted(i18n.catalog("en")))
def test_english_entry_fits_one_segment(key):
    text = render("en", key)
    assert sms.encoding(text) == "GSM-7", f"{key} switches to UCS-2: {text!r}"
    if key in LONGER:
        assert sms.segment_count(text) <= 4, key
    else:
        assert sms.segment_count(text) == 1, f"{key} is {len(text)} characters: {text!r}"


@pytest.mark.parametrize("key", sorted(i18n.catalog("es")))
def test_spanish_entry_stays_short(key):
    text = render("es", key)
    assert sms.segment_count(text) <= (4 if key in LONGER else 3), f"{key}: {text!r}"
    assert not set(text) & set("\u2018\u2019\u201c\u201d\u2014\u2026\u00a0"), key


def test_unknown_language_falls_back_to_english():
    assert i18n.text("fr", "lookup.ask_state") == i18n.text("en", "lookup.ask_state")
