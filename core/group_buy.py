"""Group-buy (拼团): a buyer opens a group at a product's group price and pays at once; others join through a shared
link (Telegram `t.me/<bot>?start=g_<id>`, WeChat the text `拼团 <id>`) and pay the same price. Every member's codes
are held from their order on, but nobody's are delivered until `size` members have paid within `hours` of the
opening: the payment that fills the group delivers everyone's, in its own transaction. A group that does not fill in
time fails: the `group-buy-expiry` job refunds every paid member (outbox refunds, reason `group_failed`), cancels the
unpaid holds and gives the codes back to the pool.

The price is the promotion `group` (core/promotions.py), the first registered (a price of its own):

- `price`: an order asking `{"group": "new"}` opens a group (its id is made here, its row written by `claim`); one
  asking `{"group": ID}` joins it: the group row is locked, and the join refused (nothing held) when the group is
  unknown, no longer open (filled, failed, or past its time), has as many members holding or paid as its size, or
  the buyer is in it already. Seats taken by earlier items of the same batch are counted.
- `paid`: the member is paid. The group row is locked; while it is open and in time, the order waits (pending,
  codes held, nothing sent) unless this payment fills it: then the group is complete and every waiting member's
  order is released for delivery with this payment (core/orders.py pay_batch, `PaidDecision`).
- `release`: a member whose hold lapsed or was cancelled leaves (its seat is free again; a late payment takes it
  back, even past the size: the buyer paid the price shown); a refunded member is marked refunded.

Completion and failure are decided once: both lock the group row and look at its status and deadline. The job never
waits for a lock (a group or member order another transaction holds is left for its next run), so a payment and the
job cannot deadlock.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from core import stock_alerts
from core.errors import ErrorCode, StoreError
from core.models import Buyer, Order, OrderStatus, OutboxItem, Product
from core.promotions import REFUNDED, Note, PaidDecision, Priced, Promotion, release_all

if TYPE_CHECKING:
    from core.clock import Clock
    from core.ports import UnitOfWork, UnitOfWorkFactory

GROUP = "group"  # the promotion's name: the key of `ReserveRequest.promo` and of `Order.promo`
NEW = "new"  # promo {"group": "new"}: open a group
START_PREFIX = "g_"  # the deep link's payload: g_<group id>
FAILED_REASON = "group_failed"  # the refund reason of a group that did not fill in time
OPEN, COMPLETE, FAILED = "open", "complete", "failed"
HELD, PAID, LEFT, DELIVERED, MEMBER_REFUNDED = "held", "paid", "left", "delivered", "refunded"
LIVE = (HELD, PAID)  # members that take a seat
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L: read aloud and typed on WeChat


def new_group_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def parse_group_id(raw: str) -> str | None:
    """A group id as typed or carried by a link (case and a `g_` prefix ignored); None when it cannot be one."""
    raw = raw.strip()
    if raw[:2].lower() == START_PREFIX:
        raw = raw[2:]
    gid = raw.upper()
    return gid if 4 <= len(gid) <= 16 and all(c in _ID_ALPHABET for c in gid) else None


@dataclass(frozen=True, slots=True)
class GroupOffer:
    """A product's group price (`marketing.group_buy.offers`): `size` members paid within `hours` of the opening."""

    sku: str
    price: int
    stars: int | None
    size: int
    hours: int


@dataclass(slots=True)
class Group:
    id: str
    product_id: int
    opener: Buyer
    size: int
    price: int
    stars: int | None
    opened_at: datetime
    deadline: datetime
    status: str = OPEN
    closed_at: datetime | None = None
    paid: int = 0  # members paid (waiting or delivered)
    seats: int = 0  # members holding or paid

    def open_at(self, now: datetime) -> bool:
        return self.status == OPEN and now < self.deadline


@dataclass(frozen=True, slots=True)
class Member:
    order_id: str
    group_id: str
    buyer: Buyer
    state: str
    joined_at: datetime


class GroupBuyRepo(Protocol):
    """Groups and members (storage/group_buy.py; tables group_buys, group_buy_members)."""

    async def lock(self, ids: Sequence[str]) -> dict[str, Group]:
        """The groups, locked until the transaction ends (PostgreSQL FOR UPDATE), with their member counts."""
    async def lock_free(self, group_id: str) -> Group | None:
        """The group locked, or None when it is missing or another transaction holds it (never waits)."""
    async def get(self, group_id: str) -> Group | None: ...
    async def add(self, groups: Sequence[Group]) -> None: ...
    async def add_members(self, members: Sequence[Member]) -> None: ...
    async def members(self, group_ids: Sequence[str], states: Sequence[str] = ()) -> list[Member]:
        """Members of the groups (only those in `states` when given), in the order they joined."""
    async def set_state(self, order_ids: Sequence[str], state: str) -> None: ...
    async def close(self, group_id: str, status: str, at: datetime) -> None: ...
    async def due(self, now: datetime, limit: int) -> list[str]:
        """Groups to fail: open past their deadline, or failed with members paid since (late payments)."""


class GroupBuyPromotion(Promotion):
    """The group price: see the module's docstring."""

    name = GROUP
    unasked = False  # a group price only for an order that opens or joins a group

    def __init__(self, offers: Mapping[str, GroupOffer]) -> None:
        self.offers = dict(offers)

    def offer_for(self, product: Product) -> GroupOffer | None:
        return self.offers.get(product.sku)

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        mine = [i for i in items if GROUP in i.wanted]
        if not mine:
            return
        ids = sorted({gid for i in mine if (gid := parse_group_id(i.wanted[GROUP]))})
        groups = await uow.group_buys.lock(ids) if ids else {}
        live = {(m.group_id, m.buyer.key) for m in await uow.group_buys.members(ids, LIVE)} if ids else set()
        for item in mine:
            offer = self.offer_for(item.product)
            wish = item.wanted[GROUP]
            if wish == NEW:
                if offer is None:
                    item.refuse(StoreError(ErrorCode.GROUP_NOT_OFFERED, sku=item.product.sku))
                    continue
                item.set_unit_price(GROUP, offer.price, offer.stars,
                                    {"id": new_group_id(), "size": offer.size, "hours": offer.hours})
                continue
            g = groups.get(parse_group_id(wish) or "")
            if g is None or g.product_id != item.product.id:
                item.refuse(StoreError(ErrorCode.GROUP_NOT_FOUND, group=wish[:16]))
            elif not g.open_at(now):
                item.refuse(StoreError(ErrorCode.GROUP_CLOSED, group=g.id))
            elif (g.id, item.buyer.key) in live:
                item.refuse(StoreError(ErrorCode.GROUP_JOINED, group=g.id))
            elif g.seats >= g.size:
                item.refuse(StoreError(ErrorCode.GROUP_FULL, group=g.id, size=g.size))
            else:
                g.seats += 1
                live.add((g.id, item.buyer.key))
                item.set_unit_price(GROUP, g.price, g.stars, {"id": g.id})

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        groups, members = [], []
        for item in items:
            rec = item.order.promo.get(GROUP)
            if not rec:
                continue
            o = item.order
            if "size" in rec:  # opened by this order
                groups.append(Group(rec["id"], o.product_id, o.buyer, int(rec["size"]), o.unit_price, o.stars, now,
                                    now + timedelta(hours=int(rec["hours"]))))
            members.append(Member(o.id, rec["id"], o.buyer, HELD, now))
        if groups:
            await uow.group_buys.add(groups)
        if members:
            await uow.group_buys.add_members(members)

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        mine = [o.id for o in orders if GROUP in o.promo]
        if mine:
            await uow.group_buys.set_state(mine, MEMBER_REFUNDED if why == REFUNDED else LEFT)

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> PaidDecision | None:
        mine = [o for o in orders if GROUP in o.promo]
        if not mine:
            return None
        by_group: dict[str, list[Order]] = {}
        for o in mine:
            by_group.setdefault(str(o.promo[GROUP]["id"]), []).append(o)
        groups = await uow.group_buys.lock(sorted(by_group))
        decision = PaidDecision()
        notices: list[OutboxItem] = []
        for gid, batch in sorted(by_group.items()):
            g = groups.get(gid)
            ids = [o.id for o in batch]
            if g is not None and g.status == COMPLETE:  # a late payment into a full group: delivered at once
                await uow.group_buys.set_state(ids, DELIVERED)
                continue
            if g is not None and g.open_at(now) and g.paid + len(batch) >= g.size:  # this payment fills it
                await uow.group_buys.close(gid, COMPLETE, now)
                waited = [m.order_id for m in await uow.group_buys.members([gid], (PAID,)) if m.order_id not in ids]
                earlier = await uow.orders.get_many(sorted(waited), for_update=True)
                decision.release.extend(o for o in earlier.values() if o.status is OrderStatus.PENDING)
                await uow.group_buys.set_state(ids + waited, DELIVERED)
                for o in [*batch, *decision.release]:
                    if o.promo.get(GROUP, {}).get("id") == gid:
                        notices.append(_notice(o, "group_buy.complete", g, g.size))
                continue
            # Waiting for the group (or it failed or its time is up: the expiry job refunds it).
            decision.wait.update(ids)
            await uow.group_buys.set_state(ids, PAID)
            paid = (g.paid if g is not None else 0) + len(batch)
            for o in batch:
                if g is not None and g.open_at(now):
                    notices.append(_notice(o, "group_buy.waiting", g, paid))
        if notices:
            await uow.outbox.add_many(notices)
        return decision

    async def reads(self, item: Priced, now: datetime) -> bool:
        return item.wanted.get(GROUP) not in (None, NEW)  # joining: the group's own price

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        """A group's price when joining one (the group page); on the product page, the line offering to start one."""
        wish = item.wanted.get(GROUP)
        offer = self.offer_for(item.product)
        if wish is None:
            if offer is not None:
                item.notes.append(Note("group_buy.offer", {"price": offer.price, "size": offer.size,
                                                           "hours": offer.hours}))
            return
        if wish == NEW:
            if offer is not None:
                item.set_unit_price(GROUP, offer.price, offer.stars, {})
            return
        g = await uow.group_buys.get(parse_group_id(wish) or "")
        if g is not None and g.product_id == item.product.id:
            item.set_unit_price(GROUP, g.price, g.stars, {})


def _notice(o: Order, key: str, g: Group, paid: int) -> OutboxItem:
    return OutboxItem(None, "notify", o.buyer.channel, o.chat_id, o.id, {
        "key": key, "language": o.language,
        "params": {"group": g.id, "order": o.id, "paid": paid, "size": g.size,
                   "deadline": g.deadline.strftime("%Y-%m-%d %H:%M UTC")}})


@dataclass(frozen=True, slots=True)
class GroupView:
    """A group as its page shows it."""

    group: Group
    product: Product
    members: list[Member]
    now: datetime

    @property
    def left(self) -> timedelta:
        return max(timedelta(0), self.group.deadline - self.now)

    def member(self, buyer: Buyer) -> Member | None:
        return next((m for m in self.members if m.buyer == buyer and m.state != LEFT), None)


class GroupBuyDesk:
    """The group pages' reads and the `group-buy-expiry` job (failing groups that did not fill in time)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, promotions: Callable[[], Sequence[Promotion]],
                 wake: Callable[[], None] | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.promotions = promotions  # every promotion: the unpaid holds of a failed group give back what they took
        self.wake = wake

    async def view(self, group_id: str) -> GroupView | None:
        gid = parse_group_id(group_id)
        if gid is None:
            return None
        async with self.uow() as uow:
            g = await uow.group_buys.get(gid)
            if g is None:
                return None
            members = await uow.group_buys.members([gid])
            p = (await uow.products.get_many([g.product_id]))[g.product_id]
        return GroupView(g, p, members, self.clock.now())

    async def expire(self, limit: int = 100) -> tuple[int, int]:
        """Fail the groups whose time ran out: (groups failed, members refunded). Each group in its own transaction;
        one a payment holds right now is left for the next run (that payment may be the one that fills it)."""
        async with self.uow() as uow:
            due = await uow.group_buys.due(self.clock.now(), limit)
        failed = refunded = 0
        for gid in due:
            async with self.uow(write=True) as uow:
                done = await self._fail(uow, gid, self.clock.now())
                if done is None:
                    continue
                await uow.commit()
            failed += done[0]
            refunded += done[1]
        if (failed or refunded) and self.wake is not None:
            self.wake()
        return failed, refunded

    async def _fail(self, uow: UnitOfWork, gid: str, now: datetime) -> tuple[int, int] | None:
        g = await uow.group_buys.lock_free(gid)
        if g is None or g.status == COMPLETE or (g.status == OPEN and g.deadline > now):
            return None  # held by a payment right now, or decided: nothing to do
        members = await uow.group_buys.members([gid], LIVE)
        orders = await uow.orders.get_many(sorted(m.order_id for m in members), for_update=True, skip_locked=True)
        if len(orders) < len(members):
            return None  # a payment holds one of them: the next run decides
        newly = g.status == OPEN
        if newly:
            await uow.group_buys.close(gid, FAILED, now)
        paid = [o for o in orders.values() if o.status is OrderStatus.PENDING]
        held = [o for o in orders.values() if o.status is OrderStatus.HELD]
        outbox: list[OutboxItem] = []
        for o in paid:
            captured = [p for p in await uow.payments.for_order(o.id) if p.status == "captured"]
            for pay in captured[:1]:
                assert pay.id is not None
                await uow.payments.set_status(pay.id, "refund_pending")
                outbox.append(OutboxItem(None, "refund", o.buyer.channel, o.chat_id, o.id,
                                         {"payment_id": pay.id, "reason": FAILED_REASON, "language": o.language}))
        gone = [o.id for o in paid + held]
        if gone:
            await uow.codes.release(gone)
            await stock_alerts.returned(uow, [(o.product_id, o.qty) for o in paid + held], now)
        if paid:
            await uow.orders.set_status([o.id for o in paid], OrderStatus.REFUNDING, now)
            await uow.group_buys.set_state([o.id for o in paid], MEMBER_REFUNDED)
        if held:
            await uow.orders.set_status([o.id for o in held], OrderStatus.CANCELLED, now)
            await release_all(self.promotions(), uow, held, now, "cancelled")
            await uow.group_buys.set_state([o.id for o in held], LEFT)
        if newly:  # everyone in it hears it failed (the paid ones then hear their refund is done)
            outbox.extend(_notice(o, "group_buy.failed", g, g.paid) for o in paid + held)
        if outbox:
            await uow.outbox.add_many(outbox)
        return int(newly), len(paid)
