"""The funnel's views and invoices cost no transaction of their own (core/reports/events.py): they are counted in
memory and written with the next group commit, whatever it was for; a failed commit keeps them for the next one and
never fails the request it carried; a quiet shop writes them on its own. On the fake unit of work."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from core.batching import GroupCommitter, QuietRequest
from core.clock import FakeClock
from core.models import AuditEntry
from core.ports import UnitOfWork
from core.reports import EventCount, EventTally
from tests.unit.fakes import FakeUnitOfWorkFactory
from tests.unit.fakes.reports import FakeReportRepo

ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Note(QuietRequest[None]):
    """Any other write of the shop (an audit entry): the events ride with it."""

    text: str


async def _notes(uow: UnitOfWork, notes: Sequence[Note]) -> list[None]:
    await uow.audit.add_many([AuditEntry("admin", "t", "test", datetime(2026, 3, 2, tzinfo=UTC),
                                         detail={"note": n.text}) for n in notes])
    return [None] * len(notes)


def _tally(fake: FakeUnitOfWorkFactory, clock: FakeClock, *, flush_after: float = 3600.0
           ) -> tuple[GroupCommitter, EventTally]:
    committer = GroupCommitter(fake)
    committer.register(Note, _notes)
    return committer, EventTally(clock, committer, lambda: ZONE, flush_after=flush_after)


async def test_views_and_invoices_ride_with_the_next_commit_not_a_transaction_each(
        fake: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    committer, tally = _tally(fake, clock)
    try:
        for _ in range(5):
            tally.view(7, "telegram")
        tally.view(7, "wechat")
        tally.invoice(7, "telegram")
        assert fake.commits == 0 and fake.state.report_events == {}  # nothing written yet, no transaction made
        await committer.submit(Note("a sale"))
        day = date(2026, 3, 2)
        assert fake.commits == 1  # the sale's own transaction carried them
        assert fake.state.report_events == {(day, 7, "telegram", "view"): 5, (day, 7, "wechat", "view"): 1,
                                             (day, 7, "telegram", "invoice"): 1}
        tally.view(7, "telegram")
        await committer.submit(Note("another"))
        assert fake.state.report_events[(day, 7, "telegram", "view")] == 6  # added to, not replaced
        assert tally.pending == 0
    finally:
        await tally.close()
        await committer.close()


async def test_the_day_is_the_store_zones(fake: FakeUnitOfWorkFactory) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 16, 30, tzinfo=UTC))  # 00:30 on March 2nd in Shanghai
    committer, tally = _tally(fake, clock)
    try:
        tally.view(1, "telegram")
        await tally.flush()
        assert list(fake.state.report_events) == [(date(2026, 3, 2), 1, "telegram", "view")]
    finally:
        await tally.close()
        await committer.close()


async def test_a_failed_write_keeps_the_counts_and_never_fails_the_sale_it_rode_with(
        fake: FakeUnitOfWorkFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    committer, tally = _tally(fake, clock)
    real = FakeReportRepo.add_events
    failures = [RuntimeError("report_events is locked")]

    async def flaky(self: FakeReportRepo, counts: Sequence[EventCount]) -> None:
        if failures:
            raise failures.pop()
        await real(self, counts)

    monkeypatch.setattr(FakeReportRepo, "add_events", flaky)
    try:
        tally.view(3, "telegram")
        await committer.submit(Note("a sale"))  # the batch fails on the counts; the sale alone goes through
        assert [e.detail["note"] for e in fake.state.audit] == ["a sale"]
        assert fake.state.report_events == {} and tally.pending == 1  # given back
        await committer.submit(Note("the next sale"))
        assert fake.state.report_events == {(date(2026, 3, 2), 3, "telegram", "view"): 1}
        assert fake.commits == 2
    finally:
        await tally.close()
        await committer.close()


async def test_a_quiet_shop_writes_its_counts_on_its_own_and_at_close(fake: FakeUnitOfWorkFactory,
                                                                      clock: FakeClock) -> None:
    committer, tally = _tally(fake, clock, flush_after=0.0)
    try:
        tally.view(4, "wechat")
        for _ in range(20):  # the timer's transaction (no real waiting: flush_after is 0)
            if fake.state.report_events:
                break
            await asyncio.sleep(0)
        assert fake.state.report_events == {(date(2026, 3, 2), 4, "wechat", "view"): 1}
    finally:
        await tally.close()
    later, tally = _tally(fake, clock)  # a long wait: the close writes what is left
    try:
        tally.invoice(4, "wechat")
        await tally.close()
        assert fake.state.report_events[(date(2026, 3, 2), 4, "wechat", "invoice")] == 1
    finally:
        await later.close()
