"""Every text a person reads, from the gettext catalogs in ``locales/`` (English, Spanish).

Entries are keyed by a short id (``onboarding.welcome``); the English catalog holds the
English wording, so translators and writers work in the ``.po`` files, not in Python.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    """The entries of one language's catalog, read once per process.

    Args:
        language: ``en`` or ``es``.

    Returns:
        A mapping from entry id to its text (untranslated entries are left out).
    """
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        parsed: Catalog = read_po(handle, locale=language)
    return {
        str(message.id): str(message.string)
        for message in parsed
        if message.id and message.string and not message.fuzzy
    }


def text(language: str, key: str, **values: object) -> str:
    """Render one catalog entry in ``language`` (English when it has no translation).

    Args:
        language: ``en`` or ``es``.
        key: The entry id.
        **values: Values for the entry's ``%(name)s`` placeholders.

    Returns:
        The text to send.

    Raises:
        KeyError: When no catalog has ``key`` (a bug: tests check every key used).
    """
    template = catalog(language if language in LANGUAGES else DEFAULT_LANGUAGE).get(key)
    if template is None:
        template = catalog(DEFAULT_LANGUAGE)[key]
    return template % values if values else template.replace("%%", "%")
