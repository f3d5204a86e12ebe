"""The two prices members get (core/promotions.py): a level's percentage off the listed price ("level"), and a
points-mall product paid whole with points ("points", registered last), with the points gateway the mall's orders are
paid through (`Shop.pay` with provider "points", amount 0)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from core.errors import ErrorCode, StoreError
from core.members import points as ledger
from core.members.policy import MemberPolicy
from core.members.ports import PointsEntry
from core.models import Order, Payment, localized
from core.ports import UnitOfWork
from core.promotions import Note, Priced, Promotion

POINTS = "points"  # the promotion's name, the key a buyer asks with (promo={"points": "1"}) and the gateway's name


class LevelPromotion(Promotion):
    """A member level's discount: its percent of the listed price, off every order of a buyer at that level (the level
    stored with the customer, written when orders are paid and refunded: core/members/desk.py). Points-mall orders
    are paid with points and get nothing off."""

    name = "level"

    def __init__(self, policy: Callable[[], MemberPolicy]) -> None:
        self.policy = policy

    def _percent(self, level: int) -> tuple[int, int, dict[str, str]]:
        lv = self.policy().level(level)
        return (lv.level, lv.discount_percent, lv.name) if lv is not None else (0, 0, {})

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        wanted = [i for i in items if i.wanted.get(POINTS) != "1"]
        if not wanted or not any(lv.discount_percent for lv in self.policy().levels):
            return
        levels = await uow.members.levels(sorted({i.buyer for i in wanted}, key=lambda b: b.key))
        for item in wanted:
            level, percent, _ = self._percent(levels.get(item.buyer.key, 0))
            if percent:
                item.take(self.name, item.list_amount * percent // 100, {"level": level, "percent": percent})

    async def reads(self, item: Priced, now: datetime) -> bool:
        return item.wanted.get(POINTS) != "1" and any(lv.discount_percent for lv in self.policy().levels)

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        if not await self.reads(item, now):
            return
        level, percent, name = self._percent((await uow.members.levels([item.buyer])).get(item.buyer.key, 0))
        if percent:
            item.take(self.name, item.list_amount * percent // 100, {})
            item.notes.append(Note("members.level_price", {"percent": percent,
                                                           "name": localized(name, item.request.language, "en")}))


class PointsPromotion(Promotion):
    """A points-mall product bought with points: with promo {"points": "1"}, the person's balance (locked) must
    cover the product's points price; the whole amount comes off and the points are taken when the order is made
    (claim). Released orders (lapsed, cancelled, refunded) give the points back; a late payment takes them again."""

    name = POINTS
    unasked = False  # only an order that asks to be paid with points

    def __init__(self, policy: Callable[[], MemberPolicy]) -> None:
        self.policy = policy

    async def reads(self, item: Priced, now: datetime) -> bool:
        return False  # no preview: a mall page shows the points price from the policy

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        used: dict[str, int] = {}  # what earlier items of this batch took, per person
        balances: dict[str, int] = {}
        for item in items:
            if item.wanted.get(POINTS) != "1":
                continue
            mall = self.policy().mall_item(item.product.sku)
            if mall is None:
                item.refuse(StoreError(ErrorCode.NOT_IN_MALL, sku=item.product.sku))
                continue
            cost = mall.points * item.order.qty
            accounts = await uow.risk.link_set(item.buyer)
            who = ledger.person_key(accounts)
            if who not in balances:
                balances[who] = await ledger.spendable(uow, accounts, now)
            have = balances[who] - used.get(who, 0)
            if have < cost:
                item.refuse(StoreError(ErrorCode.POINTS_SHORT, needed=cost, balance=max(0, have)))
                continue
            used[who] = used.get(who, 0) + cost
            item.take(self.name, item.order.amount, {"points": cost})

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        for item in items:
            record = item.order.promo.get(self.name)
            if record:
                await ledger.debit(uow, item.buyer, int(record["points"]), ledger.SPEND, f"spend:{item.order.id}", now,
                                   item.order.id)

    async def _spent(self, uow: UnitOfWork, orders: Sequence[Order]
                     ) -> list[tuple[Order, list[PointsEntry], list[PointsEntry]]]:
        """Each order that paid with points, with its spends and the returns that gave them back, oldest first."""
        mine = [o for o in orders if self.name in o.promo]
        rows = await uow.members.points_of_orders([o.id for o in mine])
        return [(o, [r for r in rows if r.order_id == o.id and r.kind == ledger.SPEND],
                 [r for r in rows if r.order_id == o.id and r.kind == ledger.RETURN]) for o in mine]

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        for o, spends, returns in await self._spent(uow, orders):
            if len(spends) > len(returns):  # taken and not given back yet
                await ledger.give_back(uow, spends[-1], f"return:{o.id}:{len(returns) + 1}", now)

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> None:
        for o, spends, returns in await self._spent(uow, orders):
            if spends and len(spends) == len(returns):  # released (it lapsed), then paid late: taken again
                await ledger.debit(uow, o.buyer, int(o.promo[self.name]["points"]), ledger.SPEND,
                                   f"spend:{o.id}:{len(spends) + 1}", now, o.id)


class PointsGateway:
    """The payment provider of points-mall orders (amount 0, provider "points"). Its refund moves no money: the
    points come back through the points promotion's release, in the refund's own transaction (once)."""

    name = POINTS

    def __init__(self) -> None:
        self.refunded: list[int] = []

    async def refund(self, payment: Payment, reason: str) -> bool:
        if payment.id is not None:
            self.refunded.append(payment.id)
        return True


