"""B2B orders waiting for stock (a product's partial policy `wait`): paid from the wallet when made, then served
first come first served, all of an order's codes or none, at the head of every wallet order batch and by
`fill_waiting` (its own group-commit request `FillWaiting`: imports, the restock job, the `b2b-waiting` job). The
first one that does not fit empties its product's pool for the batch, so nobody overtakes it. One still waiting
at its deadline is refunded to the wallet."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.batching import Request
from core.errors import ConflictError
from core.models import AuditEntry, OrderStatus, OutboxItem
from core.ports import UnitOfWork
from core.resellers.delivery import Deliveries
from core.resellers.models import CHANNEL, Waiting, WalletEntry

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock


@dataclass(frozen=True, slots=True)
class FillWaiting(Request[tuple[int, int]]):
    """Serve B2B orders waiting for stock (of these products; None: all)."""

    product_ids: tuple[int, ...] | None


class WaitingQueue:
    def __init__(self, clock: Clock, committer: GroupCommitter, deliveries: Deliveries) -> None:
        self.clock = clock
        self.committer = committer
        self.deliveries = deliveries
        committer.register(FillWaiting, self._fill_batch)

    async def fill_waiting(self, product_ids: Sequence[int] | None = None) -> tuple[int, int]:
        """Complete B2B orders waiting for stock, oldest first, now that codes came in (import, restock job); those
        waiting longer than the configured wait are refunded to the wallet. Returns (completed, refunded)."""
        out: tuple[int, int] = await self.committer.submit(
            FillWaiting(None if product_ids is None else tuple(sorted(set(product_ids)))))
        return out

    async def _fill_batch(self, uow: UnitOfWork, fills: Sequence[FillWaiting]) -> list[tuple[int, int]]:
        items = [f.product_ids for f in fills]
        now = self.clock.now()
        scope = None if any(i is None for i in items) else sorted({pid for i in items if i for pid in i})
        waiting = await uow.resellers.waiting(scope)
        if not waiting:
            return [(0, 0)] * len(items)
        resellers = await uow.resellers.lock(sorted({w.reseller_id for w in waiting}))
        wanted: dict[int, int] = {}
        for w in waiting:
            wanted[w.product_id] = wanted.get(w.product_id, 0) + w.qty
        pools = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        served = await self.serve(uow, waiting, pools, now)
        late = [w for w in waiting if w.order_id not in served and w.deadline <= now]
        if late:
            orders = await uow.orders.get_many([w.order_id for w in late], for_update=True)
            late = [w for w in late if w.order_id in orders and orders[w.order_id].status is OrderStatus.PENDING]
            balance = {rid: r.balance for rid, r in resellers.items()}
            entries: list[WalletEntry] = []
            for w in late:
                o = orders[w.order_id]
                balance[w.reseller_id] += o.amount
                entries.append(WalletEntry(None, w.reseller_id, "refund", o.amount, balance[w.reseller_id],
                                           f"waited:{o.id}", now, o.id, actor="system",
                                           note="no stock within the wait"))
            for rid in sorted({w.reseller_id for w in late}):
                if not await uow.resellers.set_balance(rid, resellers[rid].balance, balance[rid]):
                    raise ConflictError("wallet balance changed under a refund")
            await uow.resellers.add_entries(entries)
            await uow.orders.set_status([w.order_id for w in late], OrderStatus.REFUNDED, now)
            await uow.resellers.drop_waiting([w.order_id for w in late])
            await uow.audit.add_many([AuditEntry("refund", "system", CHANNEL, now, w.order_id, w.product_id,
                                                 detail={"reason": "waited", "amount": orders[w.order_id].amount})
                                      for w in late])
        return [(len(served), len(late))] * len(items)

    async def serve(self, uow: UnitOfWork, waiting: Sequence[Waiting], pools: dict[int, list[int]],
                    now: datetime) -> set[str]:
        """Waiting orders served from the pools, oldest first, all of an order's codes or none; the first one that
        cannot be served stops its product (its pool is emptied: nobody overtakes it). A group order's codes go to
        its member through the outbox, like when it was made. Returns the ids of the orders served."""
        assignments: list[tuple[int, str]] = []
        served: list[Waiting] = []
        for w in waiting:
            pool = pools.get(w.product_id, [])
            if len(pool) < w.qty:
                pools[w.product_id] = []
                continue
            assignments.extend((cid, w.order_id) for cid in pool[: w.qty])
            pools[w.product_id] = pool[w.qty :]
            served.append(w)
        if not served:
            return set()
        ids = [w.order_id for w in served]
        if await uow.codes.hold(assignments) != len(assignments) or \
                await uow.codes.sell_held(ids) != len(assignments):
            raise ConflictError("codes were claimed by another process")
        await uow.orders.set_status(ids, OrderStatus.DELIVERED, now, delivered=True)
        await uow.resellers.drop_waiting(ids)
        await uow.audit.add_many([AuditEntry("deliver", "system", CHANNEL, now, w.order_id, w.product_id,
                                             detail={"codes": w.qty, "via": w.deliver or "api", "waited": True})
                                  for w in served])
        to_send = [w for w in served if w.deliver]
        if to_send:
            orders = await uow.orders.get_many([w.order_id for w in to_send])
            products = await uow.products.get_many(sorted({w.product_id for w in to_send}))
            due = {w.order_id: d for w in to_send
                   if (d := self.deliveries.due(orders[w.order_id], products.get(w.product_id))) is not None}
            await self.deliveries.send(uow, [OutboxItem(None, "deliver", w.deliver, orders[w.order_id].chat_id,
                                                        w.order_id, {"language": orders[w.order_id].language})
                                             for w in to_send], orders, due)
        return set(ids)
