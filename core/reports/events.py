"""The funnel's first two stages, counted as they happen: a product page opened (`view`) and an order held for
payment (`invoice`: the Stars invoice, the WeChat Pay QR code, the demo's pay button). Paid and delivered come
from the orders themselves (core/reports/desk.py).

Cheap by design: an event is a counter in memory, keyed (day in the store's zone, product, channel, kind). The
group committer (core/batching.py) carries the counters into the database with whatever transaction it runs next
(`EventTally` is a `Rider`): one upsert of a few rows, just before that commit, never a transaction per view. When
nothing else is written for `flush_after` seconds, a `FlushEvents` request makes that transaction; the shop's
close flushes what is left. A crash loses at most the counts of those last seconds: these are figures for the
merchant, not money.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from core.background import Background
from core.batching import GroupCommitter, QuietRequest
from core.clock import Clock
from core.ports import UnitOfWork

log = logging.getLogger(__name__)

VIEW = "view"
INVOICE = "invoice"
KINDS = (VIEW, INVOICE)
FLUSH_AFTER = 10.0  # seconds an event waits at most for a transaction to ride with

Key = tuple[date, int, str, str]  # (day, product id, channel, kind)


@dataclass(frozen=True, slots=True)
class EventCount:
    """How many events of one kind one product had on one channel on one day (a `report_events` row)."""

    day: date
    product_id: int
    channel: str
    kind: str
    n: int


@dataclass(frozen=True, slots=True)
class FlushEvents(QuietRequest[None]):
    """Make a transaction for the counters to ride with (nothing else was written for a while)."""


class EventTally:
    """Funnel events counted in memory and written with the next group commit (a `core.batching.Rider`)."""

    def __init__(self, clock: Clock, committer: GroupCommitter, zone: Callable[[], str],
                 flush_after: float = FLUSH_AFTER) -> None:
        self.clock = clock
        self.committer = committer
        self.zone = zone  # the store's zone, read at each event (the composition root sets it after building)
        self.flush_after = flush_after
        self._counts: dict[Key, int] = {}
        self._timer = Background(log, "writing the report's event counts")
        committer.register(FlushEvents, self._nothing)
        committer.ride(self)

    def view(self, product_id: int, channel: str) -> None:
        """A buyer opened a product's page."""
        self._add(product_id, channel, VIEW)

    def invoice(self, product_id: int, channel: str) -> None:
        """An order was held for a buyer to pay."""
        self._add(product_id, channel, INVOICE)

    def _add(self, product_id: int, channel: str, kind: str) -> None:
        day = self.clock.now().astimezone(ZoneInfo(self.zone())).date()
        key = (day, product_id, channel[:16], kind)
        self._counts[key] = self._counts.get(key, 0) + 1
        if not self._timer:
            self._timer.spawn(self._flush_later())

    @property
    def pending(self) -> int:
        return sum(self._counts.values())

    # -- the Rider --------------------------------------------------------------------------------
    def take(self) -> list[EventCount] | None:
        if not self._counts:
            return None
        counts, self._counts = self._counts, {}
        return [EventCount(*key, n) for key, n in sorted(counts.items())]  # sorted: rows locked in one order

    async def write(self, uow: UnitOfWork, taken: object) -> None:
        assert isinstance(taken, list)
        await uow.reports.add_events(taken)

    def give_back(self, taken: object) -> None:
        assert isinstance(taken, list)
        for e in taken:
            key = (e.day, e.product_id, e.channel, e.kind)
            self._counts[key] = self._counts.get(key, 0) + e.n

    # -- flushing ---------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what is counted now (the shop's close; tests)."""
        if self._counts:
            await self.committer.submit(FlushEvents())

    async def _flush_later(self) -> None:
        while self._counts:
            await asyncio.sleep(self.flush_after)
            if self._counts:  # else another transaction took them meanwhile
                await self.committer.submit(FlushEvents())

    async def close(self) -> None:
        """Write what is left and stop the timer."""
        await self._timer.stop()
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - figures only; the shop closes anyway
            log.warning("the report's last event counts were not written: %s", type(exc).__name__)

    @staticmethod
    async def _nothing(uow: UnitOfWork, items: Sequence[FlushEvents]) -> list[None]:
        return [None] * len(items)
