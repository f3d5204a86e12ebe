"""Flash sales (限时秒杀): a product at a price of its own (and a Stars price, by default scaled like the amount) from
`starts_at` to `ends_at`, at most `units` units, at most `per_buyer` to one person (linked accounts are one person).

A `Promotion` (core/promotions.py), registered first (a price of its own comes before percentages). In a reserve
batch, `price` locks the live sales of the batch's products (PostgreSQL `FOR UPDATE`; SQLite has one writer), reads
the units sold or held (`sold`) and each person's units (their use rows), and decides every item in arrival order,
counting in memory what earlier items of the batch took: the cap is exact however many buyers come at once.
`claim` writes a use row per order and adds to `sold`; `release` (a lapsed, cancelled or refunded order) deletes it
and gives the units back; `paid` takes them again for a late payment of a released order, even past the cap (the
buyer paid the price shown).

What a buyer gets (decided here where the issue is silent, docs/promotions.md "Flash sales"):
- before the start: the ordinary price; the product page shows the flash price, the start and a countdown.
- during, with units left and the buyer under the limit: the flash price; the page shows "N left" and the time left.
- during, sold out or the buyer's limit reached: the ordinary price, the page says so (as shops do: 已抢光, 原价购买).
- after the window (or ended early by a merchant): the ordinary price. Orders held at the flash price before it
  closed keep it until their hold lapses.
- a buyer who tapped the flash button (the request's promo {"flash": "1"}) is never silently given the ordinary
  price: they get a clear refusal instead (not started, sold out, limit reached, ended) and nothing is held.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ErrorCode, StoreError
from core.models import Buyer, Order, Product
from core.promotions import Note, Priced, Promotion, link_sets

if TYPE_CHECKING:
    from core.ports import UnitOfWork, UnitOfWorkFactory

NAME = "flash"
WANT = "1"  # the request's promo {"flash": "1"}: the buyer tapped the flash-price button
LIVE, UPCOMING, SOLD_OUT, LIMIT = ("flash_sales.live", "flash_sales.upcoming", "flash_sales.sold_out",
                                   "flash_sales.limit_reached")  # the product page's lines (locales/*/flash_sales.po)


@dataclass(frozen=True, slots=True)
class FlashSale:
    """One flash sale (table flash_sales, migration 0021_flash_sales)."""

    id: int
    product_id: int
    price: int  # store currency, minor units, per unit
    stars: int | None  # Stars per unit (None: the product's Stars scaled like the amount)
    units: int
    per_buyer: int
    starts_at: datetime
    ends_at: datetime
    sold: int = 0  # units held or paid at the flash price
    ended_at: datetime | None = None  # ended early by a merchant
    source: str = "chat"  # "chat", or "config:<sku>:<start>" for a sale of config.yaml
    created_by: str = ""

    @property
    def closes_at(self) -> datetime:
        return min(self.ends_at, self.ended_at) if self.ended_at is not None else self.ends_at

    @property
    def left(self) -> int:
        return max(0, self.units - self.sold)

    def state(self, now: datetime) -> str:
        if now >= self.closes_at:
            return "ended"
        return "upcoming" if now < self.starts_at else "live"


class FlashSaleRepo(Protocol):
    async def add(self, sale: FlashSale, at: datetime) -> FlashSale: ...
    async def get(self, sale_id: int) -> FlashSale | None: ...
    async def open_for(self, product_ids: Sequence[int], now: datetime, *, lock: bool = False) -> list[FlashSale]:
        """Sales of these products not closed at `now` (live or upcoming), by start; `lock`: the live ones'
        rows locked FOR UPDATE in id order (PostgreSQL)."""
    async def open_all(self, now: datetime) -> list[FlashSale]:
        """Every sale not closed at `now` (live or upcoming), of any product."""
    async def recent(self, now: datetime, limit: int) -> list[FlashSale]:
        """Sales open now, and those that closed in the last week, newest first (the merchant's list)."""
    async def used(self, sale_ids: Sequence[int], buyers: Sequence[Buyer]) -> dict[tuple[int, str], int]:
        """Units held or paid at each sale's price by each of these buyers: {(sale id, buyer key): units}."""
    async def take(self, uses: Sequence[tuple[int, Order]]) -> None:
        """(sale id, order) pairs: a use row per order, and each sale's `sold` raised by the orders' units."""
    async def give_back(self, order_ids: Sequence[str]) -> list[tuple[int, int]]:
        """Delete these orders' use rows (those that have one) and lower `sold`: returns (sale id, units)."""
    async def with_uses(self, order_ids: Sequence[str]) -> set[str]: ...
    async def update(self, sale: FlashSale) -> None:
        """Price, Stars, units, limit, end and ended_at of an existing sale (config changes, /flash_end)."""
    async def by_source(self, prefix: str) -> list[FlashSale]: ...


class FlashCode(StrEnum):
    """Why a merchant's flash sale was refused (`flash_sales.error.<value>`)."""

    UNKNOWN_SKU = "unknown_sku"
    BAD_WINDOW = "bad_window"  # ends before it starts, or already over
    BAD_NUMBERS = "bad_numbers"  # price, units or limit not positive, limit above units
    OVERLAP = "overlap"  # another sale of the product is open in that window
    NOT_FOUND = "not_found"


class FlashError(Exception):
    def __init__(self, code: FlashCode, **params: Any) -> None:
        super().__init__(code.value)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class SaleSpec:
    """A sale to create (a merchant's /flash, or config.yaml's marketing.flash_sales.sales)."""

    sku: str
    price: int
    units: int
    per_buyer: int
    starts_at: datetime
    ends_at: datetime
    stars: int | None = None


def countdown(delta: timedelta) -> str:
    """A countdown the way sale pages show it: `2d 03:04:05`, `03:04:05`."""
    secs = max(0, int(delta.total_seconds()))
    days, rest = divmod(secs, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}d {clock}" if days else clock


def when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def offered(notes: Sequence[Note]) -> bool:
    """The quote's price is the flash price (the product page's Buy button then asks for it)."""
    return any(n.key == LIVE for n in notes)


def stars_of(sale: FlashSale, product: Product) -> int | None:
    """A unit's Stars price in the sale: its own, or the product's scaled like the amount (as Priced.set_unit_price
    does)."""
    if sale.stars is not None or product.stars is None or not product.price:
        return sale.stars if product.stars is not None else None
    return max(1, (product.stars * sale.price + product.price - 1) // product.price)


async def open_sales(uow: UnitOfWorkFactory, product_ids: Sequence[int], now: datetime) -> dict[int, FlashSale]:
    """Each product's sale that matters now (live, else the next to start), for pages that show it."""
    async with uow() as tx:
        return _first_per_product(await tx.flash_sales.open_for(sorted(set(product_ids)), now))


def _person(buyers: Sequence[Buyer]) -> str:
    return min(b.key for b in buyers)


_NONE: frozenset[int] = frozenset()
_generation = [0]  # bumped by every change a FlashDesk of this process commits (FlashSales' index reads again)


def _changed() -> None:
    _generation[0] += 1


class FlashSales(Promotion):
    """The flash-sale promotion (registered first in app/bootstrap.py add_promotions).

    It keeps which products have a sale not yet over (read again after `ttl` seconds, or at once after a change made
    in this process): a product without one is priced and shown without a query. A sale made by another process
    shows here within `ttl` seconds, as a catalogue change does (Shop.catalog_ttl); a sale's start and end need no
    read, as the windows are kept."""

    name = NAME

    def __init__(self, uow: UnitOfWorkFactory | None = None, ttl: float = 2.0) -> None:
        self._uow = uow  # None: no index (every price and preview reads)
        self._ttl = ttl
        self._index: dict[int, list[datetime]] = {}  # product id -> when its open sales close
        self._read: tuple[float, int] | None = None  # (monotonic time, generation) of the last read

    async def _products(self, now: datetime) -> AbstractSet[int] | None:
        """Products with a sale open at `now` or later (live or upcoming); None without an index."""
        if self._uow is None:
            return None
        read = self._read
        if read is None or read[1] != _generation[0] or time.monotonic() - read[0] >= self._ttl:
            generation = _generation[0]
            async with self._uow() as uow:
                sales = await uow.flash_sales.open_all(now)
            index: dict[int, list[datetime]] = {}
            for s in sales:
                index.setdefault(s.product_id, []).append(s.closes_at)
            self._index, self._read = index, (time.monotonic(), generation)
        if not self._index:
            return _NONE  # no sale at all (most of the time): nothing to look through
        return {pid for pid, closes in self._index.items() if any(c > now for c in closes)}

    async def reads(self, item: Priced, now: datetime) -> bool:
        products = await self._products(now)
        return products is None or item.product.id in products

    async def _people(self, uow: UnitOfWork, buyers: Sequence[Buyer]) -> dict[str, list[Buyer]]:
        """Each buyer's person: every account linked with it (uow.risk.link_set; read for all buyers at once)."""
        return await link_sets(uow, buyers)

    async def _used(self, uow: UnitOfWork, sale_ids: Sequence[int], people: dict[str, list[Buyer]]
                    ) -> dict[tuple[int, str], int]:
        """Units each person holds or bought per sale: {(sale id, person): units}."""
        members = sorted({m for group in people.values() for m in group}, key=lambda b: b.key)
        per_account = await uow.flash_sales.used(sale_ids, members) if sale_ids and members else {}
        out: dict[tuple[int, str], int] = {}
        for group in people.values():
            person = _person(group)
            for sid in sale_ids:
                out[(sid, person)] = sum(per_account.get((sid, m.key), 0) for m in group)
        return out

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        products = await self._products(now)
        if products is not None and not any(i.wanted.get(NAME) for i in items) and (
                not products or not any(i.product.id in products for i in items)):
            return  # no sale of these products (the index) and nobody asked for one: nothing to lock or read
        sales = await uow.flash_sales.open_for(sorted({i.product.id for i in items}), now, lock=True)
        by_product = _first_per_product(sales)
        wanting = [i for i in items if i.wanted.get(NAME)]
        for i in wanting:
            if i.product.id not in by_product:
                i.refuse(StoreError(ErrorCode.FLASH_ENDED, sku=i.product.sku))
            elif by_product[i.product.id].state(now) == "upcoming":
                i.refuse(StoreError(ErrorCode.FLASH_NOT_STARTED, at=when(by_product[i.product.id].starts_at)))
        live = {pid: s for pid, s in by_product.items() if s.state(now) == "live"}
        mine = [i for i in items if i.product.id in live and not i.refused]
        if not mine:
            return
        people = await self._people(uow, [i.buyer for i in mine])
        used = await self._used(uow, sorted(s.id for s in live.values()), people)
        sold = {s.id: s.sold for s in live.values()}
        for i in mine:
            sale = live[i.product.id]
            person = _person(people[i.buyer.key])
            have = used.get((sale.id, person), 0)
            if sale.units - sold[sale.id] < i.order.qty:
                if i.wanted.get(NAME):
                    i.refuse(StoreError(ErrorCode.FLASH_SOLD_OUT, left=max(0, sale.units - sold[sale.id])))
                continue  # the ordinary price
            if have + i.order.qty > sale.per_buyer:
                if i.wanted.get(NAME):
                    i.refuse(StoreError(ErrorCode.FLASH_LIMIT, limit=sale.per_buyer, have=have))
                continue
            sold[sale.id] += i.order.qty
            used[(sale.id, person)] = have + i.order.qty
            i.set_unit_price(NAME, sale.price, sale.stars, {"sale": sale.id, "qty": i.order.qty})

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        uses = [(int(i.order.promo[NAME]["sale"]), i.order) for i in items if NAME in i.order.promo]
        if uses:
            await uow.flash_sales.take(uses)

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        ids = [o.id for o in orders if NAME in o.promo]
        if ids:
            await uow.flash_sales.give_back(ids)

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> None:
        mine = [o for o in orders if NAME in o.promo]
        if not mine:
            return
        have = await uow.flash_sales.with_uses([o.id for o in mine])
        again = [(int(o.promo[NAME]["sale"]), o) for o in mine if o.id not in have]
        if again:  # a late payment of a released order: the buyer paid the flash price, the unit is theirs
            await uow.flash_sales.take(again)

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        if not await self.reads(item, now):
            return
        sale = _first_per_product(await uow.flash_sales.open_for([item.product.id], now)).get(item.product.id)
        if sale is None:
            return
        if sale.state(now) == "upcoming":
            item.notes.append(Note(UPCOMING, {"price": sale.price, "at": when(sale.starts_at),
                                              "countdown": countdown(sale.starts_at - now), "units": sale.units}))
            return
        left = sale.left
        item.available = left
        if left < item.order.qty:
            item.notes.append(Note(SOLD_OUT, {"price": sale.price}))
            return
        people = await self._people(uow, [item.buyer])
        have = (await self._used(uow, [sale.id], people)).get((sale.id, _person(people[item.buyer.key])), 0)
        if have + item.order.qty > sale.per_buyer:
            item.notes.append(Note(LIMIT, {"price": sale.price, "limit": sale.per_buyer}))
            return
        item.set_unit_price(NAME, sale.price, sale.stars, {"sale": sale.id})
        item.notes.append(Note(LIVE, {"left": left, "limit": sale.per_buyer, "ends": when(sale.closes_at),
                                      "countdown": countdown(sale.closes_at - now)}))


def _first_per_product(sales: Sequence[FlashSale]) -> dict[int, FlashSale]:
    """Each product's sale that matters now: the live one, else the next to start (sales come by start)."""
    out: dict[int, FlashSale] = {}
    for s in sales:
        out.setdefault(s.product_id, s)
    return out


# -- the merchant's side: create, list, end; config.yaml's sales ---------------------------------------------------

class FlashDesk:
    """Flash sales as a merchant (or config.yaml) makes them."""

    def __init__(self, uow: UnitOfWorkFactory, now: Any) -> None:
        self.uow = uow
        self.now = now  # () -> datetime (the shop's clock)

    async def create(self, spec: SaleSpec, by: str, source: str = "chat") -> FlashSale:
        """A new sale of `spec.sku`; refused (FlashError) for an unknown SKU, a window over or upside down, numbers
        that make no sense or an overlap with another open sale of the product."""
        now = self.now()
        if spec.ends_at <= spec.starts_at or spec.ends_at <= now:
            raise FlashError(FlashCode.BAD_WINDOW)
        if spec.price < 0 or spec.units <= 0 or not 0 < spec.per_buyer <= spec.units or (
                spec.stars is not None and spec.stars <= 0):
            raise FlashError(FlashCode.BAD_NUMBERS)
        async with self.uow(write=True) as uow:
            product = await uow.products.by_sku(spec.sku)
            if product is None:
                raise FlashError(FlashCode.UNKNOWN_SKU, sku=spec.sku[:40])
            for other in await uow.flash_sales.open_for([product.id], now):
                if other.starts_at < spec.ends_at and spec.starts_at < other.closes_at:
                    raise FlashError(FlashCode.OVERLAP, id=other.id)
            sale = await uow.flash_sales.add(FlashSale(
                0, product.id, spec.price, spec.stars, spec.units, spec.per_buyer, spec.starts_at, spec.ends_at,
                source=source, created_by=by), now)
            await uow.commit()
            _changed()  # this process's promotion reads the sales again at once
        return sale

    async def recent(self, limit: int = 20) -> list[FlashSale]:
        async with self.uow() as uow:
            return await uow.flash_sales.recent(self.now(), limit)

    async def end(self, sale_id: int) -> FlashSale:
        """End a sale now (its units held at the flash price keep it until their hold lapses)."""
        now = self.now()
        async with self.uow(write=True) as uow:
            sale = await uow.flash_sales.get(sale_id)
            if sale is None or sale.closes_at <= now:
                raise FlashError(FlashCode.NOT_FOUND, id=sale_id)
            sale = replace(sale, ended_at=now)
            await uow.flash_sales.update(sale)
            await uow.commit()
            _changed()  # this process's promotion reads the sales again at once
        return sale

    async def apply_config(self, specs: Sequence[SaleSpec]) -> None:
        """config.yaml's sales: each made once (by SKU and start), changed when its config changes; a sale no
        longer in the config ends now."""
        now = self.now()
        keys = {f"config:{s.sku}:{s.starts_at.astimezone(UTC).isoformat()}": s for s in specs}
        async with self.uow() as uow:
            existing = {s.source: s for s in await uow.flash_sales.by_source("config:")}
        for key, spec in keys.items():
            have = existing.get(key)
            if have is None:
                if spec.ends_at > now:
                    await self.create(spec, "config", source=key)
                continue
            changed = replace(have, price=spec.price, stars=spec.stars, units=spec.units, per_buyer=spec.per_buyer,
                              ends_at=spec.ends_at)
            if changed != have:
                async with self.uow(write=True) as uow:
                    await uow.flash_sales.update(changed)
                    await uow.commit()
                    _changed()  # this process's promotion reads the sales again at once
        for key, have in existing.items():
            if key not in keys and have.closes_at > now:
                async with self.uow(write=True) as uow:
                    await uow.flash_sales.update(replace(have, ended_at=now))
                    await uow.commit()
                    _changed()  # this process's promotion reads the sales again at once
