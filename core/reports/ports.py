"""What the reports need from storage (`uow.reports`, storage/reports.py): aggregates computed in the database."""
from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from core.reports.figures import SalesRow


class ReportRepo(Protocol):
    async def sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        """Orders paid in [start, end), grouped by product, currency, buyer channel and status."""

    async def buyers(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(distinct buyers, buyers with two or more) among the orders paid in [start, end)."""

    async def revenue(self, start: datetime, end: datetime) -> dict[str, int]:
        """Money kept (paid, not refunded) per currency, for orders paid in [start, end)."""

    async def daily(self, start: datetime, end: datetime, zone: str) -> dict[date, dict[str, int]]:
        """Money kept per day of `zone` and currency, for orders paid in [start, end) (days with none left out)."""
