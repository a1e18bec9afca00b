"""Phrases built from catalog entries: counts, sizes, wallets (with singular and plural)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from bot import i18n, sms
from bot.directory import states


class HasKind(Protocol):
    """Anything with a media ``kind`` (``photo`` or ``video``)."""

    kind: str


def count(language: str, key: str, n: int, **values: object) -> str:
    """Render ``key.one`` for 1 and ``key.other`` otherwise, with ``n`` filled in."""
    return i18n.text(language, f"{key}.{'one' if n == 1 else 'other'}", n=f"{n:,}", **values)


def stamp_count(language: str, n: int) -> str:
    """``1 stamp`` / ``3 stamps``."""
    return count(language, "stamps.n", n)


def wallet(language: str, state: str, n: int) -> str:
    """``4 Texas stamps``, ``1 estampilla de Texas``."""
    return count(language, "stamps.state", n, state=states()[state].display_name(language))


def wallet_short(language: str, state: str, n: int) -> str:
    """``24 TX stamps``: the short form, for texts that must stay within one SMS."""
    return count(language, "stamps.code", n, state=state)


def moment(language: str, at: datetime, zone: ZoneInfo, pattern: str = "EEE h:mm a") -> str:
    """``at`` in ``zone`` as people there read it (``Tue 6:02 PM``, ``mar 6:02 p.m.``), in
    plain characters (CLDR puts narrow no-break spaces before AM/PM)."""
    locale = "es_US" if language == "es" else "en_US"
    return sms.plain(format_datetime(at.astimezone(zone), pattern, locale=locale))


def size(language: str, chars: int, attachments: Sequence[HasKind]) -> str:
    """``7,412 characters and 1 photo``."""
    parts = [count(language, "compose.chars", chars)] if chars or not attachments else []
    photos = sum(1 for a in attachments if a.kind == "photo")
    videos = len(attachments) - photos
    for key, n in (("compose.photos", photos), ("compose.videos", videos)):
        if n:
            parts.append(count(language, key, n))
    text = parts[0]
    for part in parts[1:]:
        text = i18n.text(language, "compose.and", first=text, second=part)
    return text
