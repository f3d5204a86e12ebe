"""A report's period as a merchant types it: today, Nd, or a D..D range, whole days in the store's zone; refused
when garbled, backwards, longer than 366 days or starting in the future; a range ending after today is clipped."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.reports import MAX_DAYS, ReportCode, ReportsError, parse_period

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=SH)  # still November 30th in UTC


def test_today_and_the_last_days_are_days_of_the_stores_zone() -> None:
    today = parse_period("today", NOW, "Asia/Shanghai")
    assert (today.first, today.last, today.days) == (date(2026, 12, 1), date(2026, 12, 1), 1)
    assert today.start == datetime(2026, 12, 1, tzinfo=SH) and today.end == datetime(2026, 12, 2, tzinfo=SH)
    assert parse_period("today", NOW).first == date(2026, 11, 30)  # the same instant in UTC
    week = parse_period("7d", NOW, "Asia/Shanghai")
    assert (week.first, week.last, week.days) == (date(2026, 11, 25), date(2026, 12, 1), 7)
    month = parse_period(" 30D ", NOW, "Asia/Shanghai")
    assert (month.first, month.days) == (date(2026, 11, 2), 30)


def test_a_range_includes_both_ends_and_is_clipped_to_today() -> None:
    p = parse_period("2026-11-01..2026-11-30", NOW, "Asia/Shanghai")
    assert (p.first, p.last, p.days, p.label) == (date(2026, 11, 1), date(2026, 11, 30), 30, "2026-11-01..2026-11-30")
    clipped = parse_period("2026-11-20..2027-02-01", NOW, "Asia/Shanghai")
    assert (clipped.first, clipped.last) == (date(2026, 11, 20), date(2026, 12, 1))
    assert parse_period("2025-12-01..2026-11-30", NOW).days == 365


@pytest.mark.parametrize(("text", "code"), [
    ("2026-11-30..2026-11-01", ReportCode.REPORT_BACKWARDS),
    ("2016-01-01..2026-01-01", ReportCode.REPORT_TOO_LONG),
    ("400d", ReportCode.REPORT_TOO_LONG),
    ("2027-01-01..2027-01-31", ReportCode.REPORT_FUTURE),
    ("garbage", ReportCode.REPORT_BAD_PERIOD),
    ("", ReportCode.REPORT_BAD_PERIOD),
    ("0d", ReportCode.REPORT_BAD_PERIOD),
    ("2026-13-01..2026-13-05", ReportCode.REPORT_BAD_PERIOD),
    ("2026-11-01", ReportCode.REPORT_BAD_PERIOD),
    ("=cmd|' /C calc'!A0", ReportCode.REPORT_BAD_PERIOD),
])
def test_refusals_say_why(text: str, code: ReportCode) -> None:
    with pytest.raises(ReportsError) as err:
        parse_period(text, NOW, "Asia/Shanghai")
    assert err.value.code is code


def test_the_longest_range_is_accepted() -> None:
    p = parse_period(f"{MAX_DAYS}d", NOW)
    assert p.days == MAX_DAYS
