"""When a B2B order's codes become the buyer's (rule deliver_on_effective: on the product's date, not before), and
how a group-chat order's codes go out: outbox `deliver` rows written in the transaction that sold them (due on the
date, with a notice now, for goods that start later). API orders are read by the reseller (`GET` the order)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from core.models import Order, OrderStatus, OutboxItem, Product
from core.ports import UnitOfWork
from core.risk import rules_of

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock


class Deliveries:
    def __init__(self, clock: Clock, committer: GroupCommitter, wake: Callable[[], None]) -> None:
        self.clock = clock
        self.committer = committer
        self.wake = wake  # the outbox dispatcher: something new to send

    def due(self, order: Order, product: Product | None) -> datetime | None:
        """When a delivered order's codes become the buyer's, if that is still to come (deliver_on_effective)."""
        if order.status is not OrderStatus.DELIVERED or order.paid_at is None or product is None:
            return None
        due = rules_of(product.rules).delivery_due(order.paid_at)
        return due if due is not None and due > self.clock.now() else None

    async def send(self, uow: UnitOfWork, sends: Sequence[OutboxItem], orders: dict[str, Order],
                   due: dict[str, datetime]) -> None:
        """Outbox deliveries of group orders: now, or (deliver_on_effective) on their date with a notice now."""
        if not sends:
            return
        now_items = [x for x in sends if x.order_id not in due]
        if now_items:
            await uow.outbox.add_many(now_items)
        for x in sends:
            when = due.get(x.order_id or "")
            if when is None:
                continue
            o = orders[x.order_id or ""]
            await uow.outbox.add_many([x], due_at=when)
            await uow.outbox.add_many([OutboxItem(None, "notify", x.channel, x.recipient, o.id, {
                "key": "rules.scheduled", "language": o.language,
                "params": {"order": o.id, "date": when.strftime("%Y-%m-%d %H:%M UTC")}})])
        self.committer.after_this_commit(self.wake)
