"""The report's funnel counters in memory (core/reports/ports.py ReportRepo, the part the group commit writes)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from core.reports import EventCount
from tests.unit.fakes.state import FakeRepo


class FakeReportRepo(FakeRepo):
    """`report_events`: one counter per (day, product, channel, kind), added to (storage/reports.py's upsert)."""

    async def add_events(self, counts: Sequence[EventCount]) -> None:
        for e in counts:
            key = (e.day, e.product_id, e.channel, e.kind)
            self.s.report_events[key] = self.s.report_events.get(key, 0) + e.n

    async def events(self, first: date, last: date) -> list[EventCount]:
        out: dict[tuple[int, str, str], int] = {}
        for (day, pid, channel, kind), n in self.s.report_events.items():
            if first <= day <= last:
                out[(pid, channel, kind)] = out.get((pid, channel, kind), 0) + n
        return [EventCount(first, pid, channel, kind, n) for (pid, channel, kind), n in sorted(out.items())]
