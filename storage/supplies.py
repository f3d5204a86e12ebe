"""The ledger of supplier calls (`uow.supplies`, core/supply/desk.py): one row per request id, its status,
cost and the supplier's own order number."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.models import SupplyRequest
from storage import tables as t
from storage.base import SqlRepo


def _supply(r: Row[Any]) -> SupplyRequest:
    return SupplyRequest(r.request_id, r.supplier, r.supplier_sku, r.kind, r.status, r.created_at, r.updated_at,
                         r.order_id, r.qty, r.cost, r.upstream_id, r.detail)


class SupplyRepo(SqlRepo):
    async def get(self, request_id: str) -> SupplyRequest | None:
        r = (await self.c.execute(select(t.supply_requests)
                                  .where(t.supply_requests.c.request_id == request_id))).first()
        return _supply(r) if r else None

    async def save(self, request: SupplyRequest) -> None:
        row = {"request_id": request.request_id, "supplier": request.supplier, "supplier_sku": request.supplier_sku,
               "kind": request.kind, "status": request.status, "order_id": request.order_id, "qty": request.qty,
               "cost": request.cost, "upstream_id": request.upstream_id[:128], "detail": request.detail[:1000],
               "created_at": request.created_at, "updated_at": request.updated_at}
        ins = (pg_insert if self.pg else sqlite_insert)(t.supply_requests).values(**row)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["request_id"], set_={
            k: row[k] for k in ("status", "cost", "upstream_id", "detail", "updated_at")}))

    async def pending_topups(self, limit: int) -> list[SupplyRequest]:
        c = t.supply_requests.c
        rows = await self.c.execute(select(t.supply_requests).where(c.kind == "topup", c.status == "pending")
                                    .order_by(c.updated_at).limit(limit))
        return [_supply(r) for r in rows]

    async def spent_since(self, supplier: str, since: datetime) -> int:
        c = t.supply_requests.c
        return (await self.c.execute(select(func.coalesce(func.sum(c.cost), 0)).where(
            c.supplier == supplier, c.created_at >= since, c.status != "failed"))).scalar() or 0
