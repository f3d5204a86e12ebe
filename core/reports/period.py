"""What a report's period is: `today`, `7d`, `30d` or `YYYY-MM-DD..YYYY-MM-DD`, whole days in the store's time
zone (`jobs.timezone`), ending today at the latest.

Decisions: both ends of a range are included; a range that ends after today is clipped to today (its start must
not be after today, else refused); a range longer than MAX_DAYS (366) days is refused, as is a backwards one.
`7d` and `30d` are the last 7 / 30 days including today.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.reports.errors import ReportCode, ReportsError

MAX_DAYS = 366
RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
LAST = re.compile(r"^(\d{1,3})d$")


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days `first`..`last` (both included) in `zone`."""

    first: date
    last: date
    zone: str = "UTC"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        """The first instant of the period (aware)."""
        return datetime.combine(self.first, time(), ZoneInfo(self.zone))

    @property
    def end(self) -> datetime:
        """The first instant after the period (aware, exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(), ZoneInfo(self.zone))

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    @property
    def label(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def _day(text: str, asked: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportsError(ReportCode.REPORT_BAD_PERIOD, text=asked) from None


def period_between(first: date, last: date, now: datetime, zone: str = "UTC") -> Period:
    """A range checked: not backwards, not past MAX_DAYS, clipped to today, not starting after today."""
    today = now.astimezone(ZoneInfo(zone)).date()
    if last < first:
        raise ReportsError(ReportCode.REPORT_BACKWARDS, start=first.isoformat(), end=last.isoformat())
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ReportsError(ReportCode.REPORT_TOO_LONG, days=days, most=MAX_DAYS)
    if first > today:
        raise ReportsError(ReportCode.REPORT_FUTURE, start=first.isoformat(), today=today.isoformat())
    return Period(first, min(last, today), zone)


def parse_period(text: str, now: datetime, zone: str = "UTC") -> Period:
    """`today`, `Nd` (1..366), or `YYYY-MM-DD..YYYY-MM-DD`; anything else is refused (REPORT_BAD_PERIOD)."""
    asked = text.strip().lower()
    today = now.astimezone(ZoneInfo(zone)).date()
    if asked == "today":
        return Period(today, today, zone)
    if m := LAST.match(asked):
        n = int(m.group(1))
        if n < 1:
            raise ReportsError(ReportCode.REPORT_BAD_PERIOD, text=text[:40])
        if n > MAX_DAYS:
            raise ReportsError(ReportCode.REPORT_TOO_LONG, days=n, most=MAX_DAYS)
        return Period(today - timedelta(days=n - 1), today, zone)
    if m := RANGE.match(asked):
        return period_between(_day(m.group(1), text[:40]), _day(m.group(2), text[:40]), now, zone)
    raise ReportsError(ReportCode.REPORT_BAD_PERIOD, text=text[:40])
