"""Quiet hours: no notification outside the allowed hours of the recipient's local time.

The federal rule allows 8:00 to 21:00 in the recipient's time zone; some states are
stricter (``data/quiet_hours.csv``). The time zone and state come from the number itself
(``phonenumbers``): the area code, not where the person happens to be today.

When a number maps to several zones (Idaho, Nevada, Alaska, South Dakota...), we are
conservative on both ends: a text goes only when the window is open in every one of them,
so it never arrives too early in the westernmost zone nor too late in the easternmost.
Numbers with no place (toll-free, non-geographic, unreadable) fall back to Central time.
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
QUIET_HOURS_CSV = DATA / "quiet_hours.csv"
STATES_CSV = DATA / "states.csv"
DEFAULT_ROW = "*"
FALLBACK_ZONE = "America/Chicago"
# A number listed in more zones than this got its whole country's list: it says nothing.
MAX_ZONES = 4
# Geocoder descriptions that are neither a state's name nor "City, ST".
_STATE_ALIASES = {"washington state": "WA", "washington d.c.": "DC", "washington dc": "DC"}


@dataclass(frozen=True)
class Window:
    """The hours texts are allowed, local time: from ``start`` (included) to ``end``."""

    start: time
    end: time

    def intersect(self, other: Window) -> Window:
        """The hours allowed by both windows."""
        return Window(max(self.start, other.start), min(self.end, other.end))

    def next_open(self, zone: ZoneInfo, moment: datetime) -> datetime:
        """The first instant at or after ``moment`` when the window is open in ``zone``.

        Args:
            zone: The recipient's time zone.
            moment: An aware datetime.

        Returns:
            ``moment`` itself (in UTC) when the window is open then; else the next window
            start, today or tomorrow local time, in UTC.
        """
        moment = moment.astimezone(UTC)
        day = moment.astimezone(zone).date()
        opens, closes = _instant(zone, day, self.start), _instant(zone, day, self.end)
        if opens <= moment < closes:
            return moment
        if moment < opens:
            return opens
        return _instant(zone, day + timedelta(days=1), self.start)


def _instant(zone: ZoneInfo, day: date, clock: time) -> datetime:
    """``clock`` on ``day`` in ``zone``, as UTC.

    A wall time skipped by a DST change (the gap) lands just after the gap (``fold=0`` reads
    it with the offset from before the change): later, never earlier.
    """
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


@functools.cache
def quiet_hours() -> dict[str, Window]:
    """The allowed window per state code, and the default under ``"*"``, from the CSV.

    Lines starting with ``#`` are comments. Each state row is intersected with the default,
    so a state never allows more than the federal rule.

    Raises:
        ValueError: When the file has no default row or a window that does not make sense.
    """
    with QUIET_HOURS_CSV.open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    windows: dict[str, Window] = {}
    for row in csv.DictReader(lines):
        state = row["state"].strip().upper()
        window = Window(
            time.fromisoformat(row["start"].strip()), time.fromisoformat(row["end"].strip())
        )
        if not window.start < window.end:
            raise ValueError(f"{QUIET_HOURS_CSV.name}: {state} ends before it starts")
        windows[state] = window
    if DEFAULT_ROW not in windows:
        raise ValueError(f"{QUIET_HOURS_CSV.name}: no default row {DEFAULT_ROW!r}")
    default = windows[DEFAULT_ROW]
    return {state: window.intersect(default) for state, window in windows.items()}


def window_for(state: str | None) -> Window:
    """The allowed window for a US state code, or the default one."""
    windows = quiet_hours()
    return windows.get((state or "").upper(), windows[DEFAULT_ROW])


@functools.cache
def _state_codes() -> dict[str, str]:
    """State names (lower case) and codes, each to its two-letter code."""
    codes: dict[str, str] = dict(_STATE_ALIASES)
    with STATES_CSV.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = row["code"].strip().upper()
            codes[row["name"].strip().lower()] = code
            codes[code.lower()] = code
    return codes


def state_from_description(description: str) -> str | None:
    """The state code in a geocoder description: ``"Texas"`` or ``"San Francisco, CA"``."""
    text = description.strip().lower()
    if not text:
        return None
    codes = _state_codes()
    if text in codes:
        return codes[text]
    tail = text.rsplit(",", 1)[-1].strip()
    if len(tail) == 2 and tail in codes:
        return codes[tail]
    return None


def _fallback() -> tuple[tuple[ZoneInfo, ...], str | None]:
    return (ZoneInfo(FALLBACK_ZONE),), None


def _candidates(phone_e164: str) -> tuple[tuple[ZoneInfo, ...], str | None]:
    """Every zone the number may be in, and its US state code when known."""
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return _fallback()
    country = number.country_code
    if country is None or not phonenumbers.is_valid_number(number):
        return _fallback()
    # Toll-free and other numbers with no place get their whole country's zones.
    if not phonenumbers.is_number_type_geographical(phonenumbers.number_type(number), country):
        return _fallback()
    zones: list[ZoneInfo] = []
    for name in phone_timezone.time_zones_for_number(number):
        if name == phone_timezone.UNKNOWN_TIMEZONE:
            continue
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("unknown time zone %r for a number", name)
    if not zones or len(zones) > MAX_ZONES:
        return _fallback()
    state = None
    if phonenumbers.region_code_for_number(number) == "US":
        state = state_from_description(geocoder.description_for_number(number, "en"))
    return tuple(zones), state


def _earliest(zones: tuple[ZoneInfo, ...], now: datetime) -> ZoneInfo:
    """The zone whose local wall time is earliest at ``now`` (the westernmost)."""
    return min(zones, key=lambda zone: now.astimezone(zone).replace(tzinfo=None))


def recipient_zone(phone_e164: str, *, now: datetime | None = None) -> tuple[ZoneInfo, str | None]:
    """The recipient's time zone and US state code, from the number.

    When the number maps to several zones, the one whose local time is earliest now, so
    that we never text anyone too early. Numbers with no place fall back to Central time.

    Args:
        phone_e164: The recipient's number, e.g. ``"+15125550123"``.
        now: The moment that decides "earliest" (aware); defaults to the current time.

    Returns:
        The zone and the two-letter state code (``None`` outside the US or when unknown);
        ``(ZoneInfo("America/Chicago"), None)`` when the number says nothing.
    """
    zones, state = _candidates(phone_e164)
    return _earliest(zones, now or datetime.now(UTC)), state


def next_allowed(phone_e164: str, now: datetime) -> datetime | None:
    """When a notification to ``phone_e164`` may go, if not now.

    Args:
        phone_e164: The recipient's number.
        now: The current time, aware (UTC or any zone).

    Returns:
        ``None`` when ``now`` is inside the allowed window in the recipient's local time;
        otherwise the UTC datetime when the window next opens (today or tomorrow, local).
        For a number in several zones, the window must be open in all of them.

    Raises:
        ValueError: When ``now`` is naive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    zones, state = _candidates(phone_e164)
    window = window_for(state)
    moment = now
    # Move to the next opening of each zone in turn until all are open at once.
    for _ in range(3 * len(zones) + 1):
        later = max(window.next_open(zone, moment) for zone in zones)
        if later == moment:
            return None if moment == now else moment
        moment = later
    # Zones too far apart to share an open hour (not a real US number): the earliest one.
    opens = window.next_open(_earliest(zones, now), now)
    return None if opens == now else opens
