"""What the reports need from storage (`uow.reports`, storage/reports.py): aggregates computed in the database, the
funnel's event counters, and the orders of a period for an export."""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from core.reports.figures import SalesRow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.reports.events import EventCount
    from core.reports.export import OrderLine


class ReportRepo(Protocol):
    async def sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        """Orders paid in [start, end), grouped by product, currency, buyer channel and status."""

    async def api_sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        """The B2B API's orders among them (buyer channel `api`), grouped the same way and by reseller."""

    async def group_sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        """The group-chat orders among them (each is also in `sales`, under its member's channel), grouped the
        same way with the reseller whose wallet paid."""

    async def buyers(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(distinct buyers, buyers with two or more) among the orders paid in [start, end)."""

    async def revenue(self, start: datetime, end: datetime) -> dict[str, int]:
        """Money kept (paid, not refunded) per currency, for orders paid in [start, end)."""

    async def daily(self, start: datetime, end: datetime, zone: str) -> dict[date, dict[str, int]]:
        """Money kept per day of `zone` and currency, for orders paid in [start, end) (days with none left out)."""

    async def add_events(self, counts: Sequence[EventCount]) -> None:
        """Add to the funnel's counters (one row per day, product, channel and kind)."""

    async def events(self, first: date, last: date) -> list[EventCount]:
        """The counters of the days first..last (both included), summed over the days: `day` is `first`."""

    async def purchases(self, since: datetime, until: datetime) -> dict[tuple[str, str], tuple[int, int]]:
        """Restock purchases finished in [since, until), per (supplier, supplier SKU): (units bought, total cost)."""

    async def reseller_names(self, ids: Sequence[int]) -> dict[int, str]: ...

    async def orders(self, start: datetime, end: datetime, limit: int) -> list[OrderLine]:
        """Orders paid in [start, end), oldest first, at most `limit` (never a code)."""
