"""Quiet hours by the recipient's local time (pure: no Redis, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.quiet import Window, next_allowed, quiet_hours, recipient_zone, state_from_description

TEXAS = "+15125550123"  # Austin: America/Chicago
CALIFORNIA = "+14155550123"  # San Francisco: America/Los_Angeles
FLORIDA = "+13055550123"  # Miami: America/New_York, stricter state hours
NEW_YORK = "+12125550123"
IDAHO = "+19865550123"  # America/Boise and America/Los_Angeles


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- where the recipient is -------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "zone", "state"),
    [
        (TEXAS, "America/Chicago", "TX"),
        (CALIFORNIA, "America/Los_Angeles", "CA"),
        (FLORIDA, "America/New_York", "FL"),
        (NEW_YORK, "America/New_York", "NY"),
        ("+12065550123", "America/Los_Angeles", "WA"),  # "Washington State"
        ("+12025550123", "America/New_York", "DC"),  # "Washington D.C."
        ("+14055550123", "America/Chicago", "OK"),
    ],
)
def test_zone_and_state_come_from_the_number(number: str, zone: str, state: str) -> None:
    assert recipient_zone(number) == (ZoneInfo(zone), state)


def test_several_zones_take_the_one_where_it_is_earliest() -> None:
    now = utc(2026, 1, 15, 18, 0)
    assert recipient_zone(IDAHO, now=now) == (ZoneInfo("America/Los_Angeles"), "ID")
    assert recipient_zone("+19075550123", now=now) == (ZoneInfo("America/Adak"), "AK")


@pytest.mark.parametrize(
    "number",
    ["+19999999999", "not a number", "", "+18005550199", "+15005550006", "5125550123"],
)
def test_a_number_with_no_place_falls_back_to_central_time(number: str) -> None:
    assert recipient_zone(number) == (ZoneInfo("America/Chicago"), None)
    # 06:00 in Chicago in January: wait for 08:00 CST.
    assert next_allowed(number, utc(2026, 1, 15, 12, 0)) == utc(2026, 1, 15, 14, 0)


def test_a_number_abroad_has_a_zone_and_no_state() -> None:
    zone, state = recipient_zone("+34912345678")
    assert zone == ZoneInfo("Europe/Madrid")
    assert state is None


@pytest.mark.parametrize(
    ("description", "code"),
    [
        ("Texas", "TX"),
        ("San Francisco, CA", "CA"),
        ("Kansas City, MO", "MO"),
        ("New York", "NY"),
        ("Washington State", "WA"),
        ("Washington D.C.", "DC"),
        ("Ontario", None),
        ("", None),
    ],
)
def test_state_from_geocoder_descriptions(description: str, code: str | None) -> None:
    assert state_from_description(description) == code


# --- when a text may go -----------------------------------------------------------------


def test_texas_at_two_utc_depends_on_the_season() -> None:
    # 2026-01-15 02:00 UTC is 20:00 CST on the 14th: allowed.
    assert next_allowed(TEXAS, utc(2026, 1, 15, 2, 0)) is None
    # 2026-07-15 02:00 UTC is 21:00 CDT on the 14th: closed until 08:00 CDT (13:00 UTC).
    assert next_allowed(TEXAS, utc(2026, 7, 15, 2, 0)) == utc(2026, 7, 15, 13, 0)


def test_california_at_fifteen_utc() -> None:
    # 08:00 PDT in summer: the window has just opened.
    assert next_allowed(CALIFORNIA, utc(2026, 7, 15, 15, 0)) is None
    # 07:00 PST in winter: one more hour.
    assert next_allowed(CALIFORNIA, utc(2026, 1, 15, 15, 0)) == utc(2026, 1, 15, 16, 0)


def test_early_morning_waits_until_eight_the_same_day() -> None:
    # 06:00 CST.
    assert next_allowed(TEXAS, utc(2026, 1, 15, 12, 0)) == utc(2026, 1, 15, 14, 0)


def test_late_evening_waits_until_eight_the_next_day() -> None:
    # 21:30 CST on the 15th.
    assert next_allowed(TEXAS, utc(2026, 1, 16, 3, 30)) == utc(2026, 1, 16, 14, 0)
    # 21:00 sharp is already closed; 20:59 is open.
    assert next_allowed(TEXAS, utc(2026, 1, 16, 3, 0)) == utc(2026, 1, 16, 14, 0)
    assert next_allowed(TEXAS, utc(2026, 1, 16, 2, 59)) is None


def test_florida_closes_at_eight_in_the_evening() -> None:
    # 20:30 EST on the 15th: allowed federally, not in Florida.
    assert next_allowed(FLORIDA, utc(2026, 1, 16, 1, 30)) == utc(2026, 1, 16, 13, 0)
    assert next_allowed(FLORIDA, utc(2026, 1, 16, 0, 59)) is None
    # The same hour in New York is fine.
    assert next_allowed(NEW_YORK, utc(2026, 1, 16, 1, 30)) is None


def test_dst_starts_overnight_in_new_york() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT, so 08:00 that morning is 12:00 UTC.
    assert next_allowed(NEW_YORK, utc(2026, 3, 8, 6, 0)) == utc(2026, 3, 8, 12, 0)
    # From 21:30 EST the evening before, too.
    assert next_allowed(NEW_YORK, utc(2026, 3, 8, 2, 30)) == utc(2026, 3, 8, 12, 0)
    # The day before, 08:00 EST was 13:00 UTC.
    assert next_allowed(NEW_YORK, utc(2026, 3, 7, 6, 0)) == utc(2026, 3, 7, 13, 0)


def test_dst_ends_overnight_in_new_york() -> None:
    # 2026-11-01: 01:30 EDT; clocks go back, 08:00 EST is 13:00 UTC.
    assert next_allowed(NEW_YORK, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 13, 0)


def test_a_number_in_two_zones_waits_for_both() -> None:
    # 08:00 MST is 07:00 PST: still early on the Pacific side; 08:00 PST is 16:00 UTC.
    assert next_allowed(IDAHO, utc(2026, 1, 15, 15, 0)) == utc(2026, 1, 15, 16, 0)
    # 20:30 PST is 21:30 MST: already late on the Mountain side.
    assert next_allowed(IDAHO, utc(2026, 1, 16, 4, 30)) == utc(2026, 1, 16, 16, 0)
    # Midday in both.
    assert next_allowed(IDAHO, utc(2026, 1, 15, 20, 0)) is None


def test_now_in_another_zone_is_the_same_instant() -> None:
    now = datetime(2026, 1, 15, 6, 0, tzinfo=ZoneInfo("America/Chicago"))
    assert next_allowed(TEXAS, now) == utc(2026, 1, 15, 14, 0)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        next_allowed(TEXAS, datetime(2026, 1, 15, 12, 0))


def test_state_rows_are_never_looser_than_the_federal_rule() -> None:
    windows = quiet_hours()
    federal = windows["*"]
    assert federal == Window(time(8, 0), time(21, 0))
    for window in windows.values():
        assert federal.start <= window.start < window.end <= federal.end
    assert windows["FL"].end.hour == 20
