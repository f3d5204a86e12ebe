"""Promotions: how a price other than the listed one is decided, always by the server, inside the one order pipeline.

Every marketing feature that changes what an order costs (a flash sale, a member level's discount, a coupon, points
spent, a group-buy's price) is a `Promotion` registered with the order book (`OrderBook.promotions`, in the order
they apply: a price first, then percentages, then amounts off). In a reserve batch (core/orders.py):

1. `price(uow, items, now)`: every order the batch is about to make, in arrival order, as a `Priced`. A promotion
   reads and locks what it needs (its rows `FOR UPDATE` on PostgreSQL; SQLite writes one transaction at a time),
   then lowers an item's price (`Priced.set_unit_price`, `Priced.take`) or refuses it (`Priced.refuse`). It counts
   what earlier items of the same batch took, in memory: a limit holds however many come at once.
2. `claim(uow, items, now)`: the items that became orders (their stock is held): write the uses. An item refused
   later (sold out) never reaches claim, so it takes nothing.
3. `release(uow, orders, now, why)`: orders that lapsed, were cancelled or refunded ("lapsed" | "cancelled" |
   "refunded"): give back what they took. Called with every such order; a promotion picks its own from `order.promo`.
4. `paid(uow, orders, now)`: orders whose payment was accepted, in the payment's transaction. A late payment may
   pay an order whose hold lapsed (and was released): take again what release gave back, even past a limit, since
   the buyer paid the price they were shown. It may return a `PaidDecision`: orders whose delivery waits (`wait`:
   they stay paid and `pending`, their codes held, nothing is sent) and orders that waited and are delivered now,
   in this payment's transaction (`release`: their held codes are sold and their deliveries queued). A group-buy
   (core/group_buy.py) waits until the group is full, then releases every member's order with the payment that
   filled it; one that never fills is refunded by its own job.

An order remembers what was applied in `order.promo` ({promotion name: what it needs to give it back}), and its
discount in `order.discount` (store currency, minor units) and `order.stars_discount` (Stars), so refunds, reports
and the buyer's receipt can say what each promotion cost.

Stars follow the store price: a discount of a fifth of the amount takes a fifth of the Stars (rounded so that a
paid order never costs less than one Star). A promotion that sets a price of its own may set its Stars price too.

`quote(...)` (read-only) tells screens what a buyer would pay now, with each promotion's lines to show (a flash
sale's countdown, a level's discount); the reserve decides again in its own transaction.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.errors import StoreError
from core.models import Buyer, Order, Product

if TYPE_CHECKING:
    from core.orders import ReserveRequest
    from core.ports import UnitOfWork

LAPSED, CANCELLED, REFUNDED = "lapsed", "cancelled", "refunded"
MONEY_PARAMS = frozenset({"amount", "price", "was", "off", "min_spend"})  # a Note's params a screen shows as money


@dataclass(frozen=True, slots=True)
class Note:
    """A line a promotion wants shown with a price: a locale key and its parameters (an int under a key in
    MONEY_PARAMS is money in minor units, formatted by the screen in the product's currency)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Priced:
    """One order a reserve batch is about to make, as the promotions see it: `order` carries the listed price until
    a promotion changes it."""

    request: ReserveRequest
    product: Product
    order: Order
    refusal: StoreError | None = None
    notes: list[Note] = field(default_factory=list)
    list_amount: int = 0  # the price before any promotion (store currency), for percentages of the listed price
    list_stars: int | None = None  # the Stars price before any promotion (total)
    available: int | None = None  # a quote: what a promotion's own cap has left (a flash sale's units), if any

    def __post_init__(self) -> None:
        self.list_amount = self.order.amount
        self.list_stars = self.order.stars * self.order.qty if self.order.stars is not None else None

    @property
    def buyer(self) -> Buyer:
        return self.request.buyer

    @property
    def wanted(self) -> dict[str, str]:
        """What the buyer asked for with this order (the request's promo: {"coupon": code, "points": "1", ...})."""
        return self.request.promo

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def refuse(self, error: StoreError) -> None:
        """Nothing is held for this order; the buyer gets `error` (the first refusal stands)."""
        if self.refusal is None:
            self.refusal = error

    def set_unit_price(self, name: str, unit_price: int, stars: int | None, record: Any) -> None:
        """A price of a promotion's own (a flash sale, a group-buy): the new listed price the others apply to.
        `stars`: the unit's Stars price (None: the product's, scaled like the amount)."""
        o = self.order
        if stars is None and o.stars is not None and o.unit_price:
            stars = max(1, (o.stars * unit_price + o.unit_price - 1) // o.unit_price)
        o.unit_price, o.amount = unit_price, unit_price * o.qty
        o.stars = stars if o.stars is not None else None
        self.list_amount = o.amount
        self.list_stars = o.stars * o.qty if o.stars is not None else None
        o.promo[name] = record

    def take(self, name: str, amount_off: int, record: Any) -> int:
        """Take up to `amount_off` (store currency) off the order's amount; returns what was taken (never more
        than is left). Stars come off in the same proportion of the listed price."""
        o = self.order
        off = max(0, min(amount_off, o.amount))
        o.amount -= off
        o.discount += off
        if self.list_stars is not None and self.list_amount > 0:
            stars_due = _stars_for(self.list_stars, o.amount, self.list_amount)
            o.stars_discount = self.list_stars - stars_due
        o.promo[name] = record
        return off


class _NoReads:
    """The unit of work a quote passes when every promotion said it would not read (Promotion.reads)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a promotion read uow.{name} in a preview after saying it would not (Promotion.reads)")


NO_READS: Any = _NoReads()


def _stars_for(list_stars: int, amount: int, list_amount: int) -> int:
    """Stars due for `amount` of a `list_amount` priced at `list_stars`: rounded up, at least 1 unless free."""
    if amount <= 0:
        return 0
    return max(1, -(-list_stars * amount // list_amount))


@dataclass(slots=True)
class PaidDecision:
    """What a promotion's `paid` decided about deliveries: `wait` (ids of orders just paid whose delivery waits:
    they become `pending`, codes still held) and `release` (orders that waited, paid earlier: delivered now)."""

    wait: set[str] = field(default_factory=set)
    release: list[Order] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a buyer would pay now for qty of a product (read-only; reserve decides again)."""

    product: Product
    qty: int
    amount: int  # store currency, minor units
    list_amount: int  # the product's listed price for qty, before any promotion
    stars: int | None  # total Stars due (None: no Stars price)
    notes: tuple[Note, ...] = ()
    available: int | None = None  # a promotion's own cap left (a flash sale's units), None when none applies
    refusal: StoreError | None = None  # a promotion the buyer asked for that would refuse the order (a coupon)

    @property
    def discounted(self) -> bool:
        return self.amount != self.list_amount


class Promotion:
    """A promotion's hooks; every one does nothing unless a promotion overrides it."""

    name = "promotion"
    # Whether `price` may change an order nobody asked this promotion for (a flash sale's price, a level's
    # discount). False: it acts only on requests that name it in their promo (a coupon, a group, points), and a
    # batch in which no request asks for anything skips its `price` altogether.
    unasked = True

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        return None

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        return None

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        return None

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> PaidDecision | None:
        return None

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        """Like `price` for one item, reading only (for a quote): lower the price, add notes, never write. By default
        nothing changes."""
        return None

    async def reads(self, item: Priced, now: datetime) -> bool:
        """Whether `preview` would read the database for this item. When no promotion would, a quote opens no
        transaction at all (a product page costs nothing more than before promotions), and `preview` gets NO_READS:
        a promotion that said False and reads anyway fails loudly. By default: it reads."""
        return True


async def link_sets(uow: UnitOfWork, buyers: Iterable[Buyer]) -> dict[str, list[Buyer]]:
    """Each buyer's accounts as `uow.risk.link_set` reads them (itself and the accounts linked with it), for many
    buyers at once: one read of the buyers' facts, then `link_set` only for those in a link set (an account in none
    is its own)."""
    unique = list({b.key: b for b in buyers}.values())
    facts = await uow.risk.buyer_facts(unique) if unique else {}
    out: dict[str, list[Buyer]] = {}
    for b in unique:
        f = facts.get(b.key)
        out[b.key] = await uow.risk.link_set(b) if f is not None and f.link_set else [b]
    return out


async def price_all(promotions: Sequence[Promotion], uow: UnitOfWork, items: Sequence[Priced], now: datetime
                    ) -> None:
    """Run every promotion's `price` over the items not refused yet, in registration order (a promotion that acts
    only when asked is skipped when no request of the batch asks for anything: most batches)."""
    asked = any(i.request.promo for i in items)
    live = list(items)
    for promo in promotions:
        if not (asked or promo.unasked):
            continue
        live = [i for i in live if i.refusal is None]
        if not live:
            return
        await promo.price(uow, live, now)


async def claim_all(promotions: Sequence[Promotion], uow: UnitOfWork, items: Sequence[Priced], now: datetime
                    ) -> None:
    """Every promotion's `claim` over the items a promotion applied to (one whose order carries no promotion has
    nothing to claim: a promotion claims only what its `price` recorded in `order.promo`)."""
    with_promo = [i for i in items if i.order.promo]
    if not with_promo:
        return
    for promo in promotions:
        await promo.claim(uow, with_promo, now)


async def release_all(promotions: Sequence[Promotion], uow: UnitOfWork, orders: Sequence[Order], now: datetime,
                      why: str) -> None:
    with_promo = [o for o in orders if o.promo]
    if not with_promo:
        return
    for promo in promotions:
        await promo.release(uow, with_promo, now, why)


async def paid_all(promotions: Sequence[Promotion], uow: UnitOfWork, orders: Sequence[Order], now: datetime
                   ) -> PaidDecision:
    """Every promotion's `paid` over the orders that carry a promotion; their decisions together."""
    out = PaidDecision()
    with_promo = [o for o in orders if o.promo]
    if not with_promo:
        return out
    for promo in promotions:
        decided = await promo.paid(uow, with_promo, now)
        if decided is not None:
            out.wait |= decided.wait
            out.release.extend(decided.release)
    return out
