"""Back in stock: a buyer on a sold-out product asks to be told when it is back (`subscribe`, `unsubscribe`); when
codes come into the product's pool (an import: the CLI, chat /import, the console's upload and the restock job all
go through core.supply.import_codes; a hold that lapses, is cancelled, rejected or recalled gives its codes back),
`refilled` tells the waiting subscribers in the order they subscribed, through the outbox, in the same transaction
as the stock: at most as many as the codes that came (and at most `PER_REFILL`), so five codes do not wake ten
thousand people; the rest wait for the next refill. A subscriber who bought the product since subscribing is
dropped, not told. Each one is told once: its row is marked by a conditional UPDATE whose row count is checked, so
two refills racing cannot both tell it (the loser moves on to the next subscriber).

Pacing: the notices are ordinary outbox rows ("notify"), sent at the channel's own send limits (core/outbox.py),
like every other message (docs/operating.md "Back in stock")."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from core.models import Buyer, OutboxItem, Product, localized

if TYPE_CHECKING:
    from core.ports import UnitOfWork
    from core.shop import Shop

PER_REFILL = 200  # at most this many subscribers told per refill (a pool of 10,000 codes imported at once)
NOTICE = "stock_alerts.back"  # the notice's message key (locales/*/stock_alerts.po)


@dataclass(frozen=True, slots=True)
class StockAlert:
    """One buyer waiting for one product (table stock_alerts, migration 0017_stock_alerts)."""

    id: int
    product_id: int
    buyer: Buyer
    chat_id: str
    language: str
    created_at: datetime


class StockAlertRepo(Protocol):
    async def subscribe(self, product_id: int, buyer: Buyer, chat_id: str, language: str, at: datetime) -> bool:
        """Wait for the product: True when the buyer was not waiting already (a buyer told before waits again, at
        the back of the line); False when they were (their place is kept)."""
    async def unsubscribe(self, product_id: int, buyer: Buyer) -> bool:
        """Stop waiting; False when the buyer was not waiting."""
    async def waiting(self, product_id: int, limit: int, exclude: Sequence[int] = ()) -> list[StockAlert]:
        """Up to `limit` subscribers not told yet, in the order they subscribed (ids in exclude skipped)."""
    async def is_waiting(self, product_id: int, buyer: Buyer) -> bool: ...
    async def bought_since(self, alerts: Sequence[StockAlert]) -> set[int]:
        """The alerts (ids) whose buyer has paid for the product since subscribing."""
    async def mark_told(self, alert_id: int, at: datetime) -> bool:
        """Mark it told if it was not yet: True only for the one transaction that did."""
    async def drop(self, ids: Sequence[int]) -> None: ...


class Subscribed(StrEnum):
    """What `subscribe` and `unsubscribe` did (each the key of its answer: `stock_alerts.<value>`)."""

    SUBSCRIBED = "subscribed"
    ALREADY = "already"  # was waiting: nothing changed
    IN_STOCK = "in_stock"  # nothing to wait for: it can be bought now
    CANCELLED = "cancelled"
    NOT_WAITING = "not_waiting"  # unsubscribe of a buyer who was not waiting: nothing changed


async def subscribe(shop: Shop, buyer: Buyer, chat_id: str, language: str, product_id: int) -> Subscribed:
    """The buyer asks to be told when the product is back. Idempotent; a product in stock gets IN_STOCK."""
    view = await shop.product_view(product_id)  # unknown or off sale: StoreError NOT_FOUND
    if view.available != 0:
        return Subscribed.IN_STOCK
    async with shop.uow(write=True) as uow:
        made = await uow.stock_alerts.subscribe(product_id, buyer, chat_id, language, shop.clock.now())
        await uow.commit()
    return Subscribed.SUBSCRIBED if made else Subscribed.ALREADY


async def unsubscribe(shop: Shop, buyer: Buyer, product_id: int) -> Subscribed:
    """The buyer no longer wants to be told. Idempotent."""
    async with shop.uow(write=True) as uow:
        gone = await uow.stock_alerts.unsubscribe(product_id, buyer)
        await uow.commit()
    return Subscribed.CANCELLED if gone else Subscribed.NOT_WAITING


async def is_waiting(shop: Shop, buyer: Buyer, product_id: int) -> bool:
    async with shop.uow() as uow:
        return await uow.stock_alerts.is_waiting(product_id, buyer)


async def refilled(uow: UnitOfWork, product: Product | int, added: int, now: datetime,
                   default_language: str = "en", per_refill: int = PER_REFILL) -> int:
    """`added` codes came into the product's pool in this transaction: tell up to that many waiting subscribers
    (outbox notices, committed with the stock). Returns how many were told."""
    room = min(added, per_refill)
    if room <= 0:
        return 0
    product_id = product if isinstance(product, int) else product.id
    told: list[StockAlert] = []
    seen: list[int] = []
    while len(told) < room:
        batch = await uow.stock_alerts.waiting(product_id, room - len(told), seen)
        if not batch:
            break
        seen += [a.id for a in batch]
        bought = await uow.stock_alerts.bought_since(batch)
        if bought:
            await uow.stock_alerts.drop(sorted(bought))
        for a in batch:
            if a.id not in bought and await uow.stock_alerts.mark_told(a.id, now):
                told.append(a)  # another refill that marked it first told it; this one tells the next instead
    if not told:
        return 0
    # The product is read only when someone is told: a lapsed hold with nobody waiting costs one query.
    p = product if not isinstance(product, int) else await uow.products.get(product_id)
    title = p.title if p is not None else ""
    await uow.outbox.add_many([
        OutboxItem(None, "notify", a.buyer.channel, a.chat_id, None, {
            "key": NOTICE, "language": a.language,
            "params": {"product": product_id, "title": localized(title, a.language, default_language)}})
        for a in told])
    return len(told)


async def returned(uow: UnitOfWork, lines: Sequence[tuple[int, int]], now: datetime) -> None:
    """Codes went back into pools (holds released): (product id, how many) per order; each product's subscribers
    are told as by `refilled`."""
    per: dict[int, int] = {}
    for product_id, n in lines:
        per[product_id] = per.get(product_id, 0) + n
    for product_id, n in sorted(per.items()):
        await refilled(uow, product_id, n, now)
