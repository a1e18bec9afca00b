"""Reading people generously: keywords, yes and no, numbers, in English and Spanish."""

from __future__ import annotations

import re
import unicodedata

STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
START_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "info", "ayuda"})
MENU_WORDS = frozenset({"menu"})
BACK_WORDS = frozenset({"back", "atras", "volver", "regresar"})
SPANISH_WORDS = frozenset({"es", "espanol", "spanish", "en espanol"})
ENGLISH_WORDS = frozenset({"en", "english", "ingles", "en ingles"})
STAMPS_WORDS = frozenset({"stamps", "stamp", "estampillas", "estampilla", "sellos"})
STATUS_WORDS = frozenset({"status", "estatus", "estado", "my messages", "mis mensajes"})

YES_WORDS = frozenset(
    {
        "yes",
        "y",
        "yeah",
        "yep",
        "yup",
        "ya",
        "sure",
        "ok",
        "okay",
        "correct",
        "right",
        "si",
        "s",
        "claro",
        "correcto",
        "vale",
        "dale",
        "es correcto",
        "yes please",
        "si por favor",
    }
)
NO_WORDS = frozenset({"no", "n", "nope", "nah", "wrong", "not", "incorrecto", "no es"})
AGREE_WORDS = frozenset({"agree", "i agree", "accept", "i accept", "acepto", "de acuerdo"})
NO_MARKERS = frozenset({"no", "not", "nope", "wrong", "isnt", "isn", "nunca"})
OPT_OUT_MARKERS = frozenset({"stop", "stopall", "unsubscribe", "optout"})

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "uno": 1, "una": 1, "dos": 2, "tres": 3,
    "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
    "first": 1, "second": 2, "third": 3, "primero": 1, "segundo": 2, "tercero": 3,
}  # fmt: skip


def simplify(text: str) -> str:
    """Fold a short reply for comparison: ``  ¡Sí! `` -> ``si``, ``Yes!!`` -> ``yes``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = re.sub(r"[^\w\s#]+", " ", plain)
    return " ".join(plain.split())


def keyword(text: str) -> str | None:
    """The global keyword a whole message is, if any.

    Returns:
        One of ``stop``, ``start``, ``help``, ``menu``, ``back``, ``es``, ``en``,
        ``stamps``, or None.
    """
    word = simplify(text)
    if len(word) > 20:
        return None
    if word.replace(" ", "") in STOP_WORDS:
        return "stop"
    for name, group in (
        ("start", START_WORDS),
        ("help", HELP_WORDS),
        ("menu", MENU_WORDS),
        ("back", BACK_WORDS),
        ("es", SPANISH_WORDS),
        ("en", ENGLISH_WORDS),
        ("stamps", STAMPS_WORDS),
        ("status", STATUS_WORDS),
    ):
        if word in group:
            return name
    return None


def is_yes(text: str) -> bool:
    """True for yes in its everyday forms: ``Yes!``, `` y ``, ``sí``, ``Yes, that's him``.

    A short reply counts when it starts with a yes word and has no no word in it.
    """
    word = simplify(text)
    if word in YES_WORDS or word in AGREE_WORDS:
        return True
    parts = word.split()
    return (
        0 < len(parts) <= 6
        and (parts[0] in YES_WORDS or parts[0] in AGREE_WORDS)
        and not set(parts) & NO_MARKERS
    )


def is_no(text: str) -> bool:
    """True for no: ``no``, ``n``, ``nope``, ``No, that's not him``."""
    word = simplify(text)
    if word in NO_WORDS:
        return True
    parts = word.split()
    return 0 < len(parts) <= 6 and parts[0] in NO_WORDS


def is_opt_out(text: str) -> bool:
    """True for a short text that asks us to stop in plain words: ``Stop texting me``.

    The exact keywords are handled by ``keyword``; this catches the "reasonable means"
    people use, so a request to stop is never read as an answer.
    """
    parts = simplify(text).split()
    return 0 < len(parts) <= 6 and bool(set(parts) & OPT_OUT_MARKERS)


def number(text: str) -> int | None:
    """A small number from ``1``, ``1.``, ``#1``, ``one``, ``uno``; None otherwise."""
    word = simplify(text).lstrip("#").strip()
    if word.startswith("number "):
        word = word[len("number ") :]
    if word.isdigit() and len(word) <= 3:
        return int(word)
    return NUMBER_WORDS.get(word)


def is_word(text: str, *choices: str) -> bool:
    """True when the message is one of ``choices`` (case and accents ignored)."""
    return simplify(text) in choices
