"""Buyers waiting for a sold-out product in memory (core/stock_alerts.py StockAlertRepo)."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from core.models import Buyer
from core.stock_alerts import StockAlert
from tests.unit.fakes.state import FakeRepo


class FakeStockAlertRepo(FakeRepo):
    """Rows: alert id -> (the alert, when it was told or None)."""

    def _find(self, product_id: int, buyer: Buyer) -> int | None:
        return next((i for i, (a, _) in self.s.stock_alerts.items()
                     if a.product_id == product_id and a.buyer == buyer), None)

    async def subscribe(self, product_id: int, buyer: Buyer, chat_id: str, language: str, at: datetime) -> bool:
        i = self._find(product_id, buyer)
        if i is None:
            i = self.s.next_id()
        elif self.s.stock_alerts[i][1] is None:
            return False
        self.s.stock_alerts[i] = (StockAlert(i, product_id, buyer, chat_id, language, at), None)
        return True

    async def unsubscribe(self, product_id: int, buyer: Buyer) -> bool:
        i = self._find(product_id, buyer)
        if i is None or self.s.stock_alerts[i][1] is not None:
            return False
        del self.s.stock_alerts[i]
        return True

    async def is_waiting(self, product_id: int, buyer: Buyer) -> bool:
        i = self._find(product_id, buyer)
        return i is not None and self.s.stock_alerts[i][1] is None

    async def waiting(self, product_id: int, limit: int, exclude: Sequence[int] = ()) -> list[StockAlert]:
        rows = sorted((a for a, told in self.s.stock_alerts.values()
                       if a.product_id == product_id and told is None and a.id not in exclude),
                      key=lambda a: (a.created_at, a.id))
        return [dataclasses.replace(a) for a in rows[:limit]]

    async def bought_since(self, alerts: Sequence[StockAlert]) -> set[int]:
        return {a.id for a in alerts for o in self.s.orders.values()
                if o.product_id == a.product_id and o.buyer == a.buyer and o.paid_at and o.paid_at >= a.created_at}

    async def mark_told(self, alert_id: int, at: datetime) -> bool:
        row = self.s.stock_alerts.get(alert_id)
        if row is None or row[1] is not None:
            return False
        self.s.stock_alerts[alert_id] = (row[0], at)
        return True

    async def drop(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.s.stock_alerts.pop(i, None)
