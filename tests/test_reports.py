"""Reports over a seeded month of orders, on SQLite and PostgreSQL: every figure (revenue per currency with Stars
apart, orders, buyers, repeat buyers, refunds, channels, top products, the daily series, stock cover) equals what
the seed list itself says, computed here in Python, never by the same SQL; orders paid just outside the period,
and orders never paid, are left out."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from core.clock import FakeClock
from core.reports import ReportDesk
from storage import tables as t
from storage.db import Database

ZONE = "Asia/Shanghai"
SH = ZoneInfo(ZONE)
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=SH)  # the report for November runs early on December 1st
PRODUCTS = {1: ("GIFT-50", "CNY"), 2: ("GAME-100", "CNY"), 3: ("STARS-PACK", "XTR"), 4: ("VPN-30", "USD")}
STOCK = {1: 40, 2: 0, 3: 7, 4: 3}
CHANNEL = {"telegram": "telegram", "wechat": "wechat", "api": "b2b"}


@dataclass(frozen=True)
class Seed:
    id: str
    channel: str
    buyer: str
    product: int
    qty: int
    amount: int
    status: str
    paid_at: datetime | None


def _seed() -> list[Seed]:
    rnd = random.Random(15)
    out: list[Seed] = []
    buyers = [("telegram", f"t{i}") for i in range(12)] + [("wechat", f"w{i}") for i in range(6)] + [("api", "r1")]
    for i in range(240):
        channel, who = rnd.choice(buyers)
        product = rnd.choice(list(PRODUCTS))
        qty = rnd.randint(1, 3)
        unit = {1: 5000, 2: 9900, 3: 250, 4: 799}[product]
        status = rnd.choices(["delivered", "pending", "refunded", "refunding", "expired", "held"],
                             [70, 5, 8, 3, 8, 6])[0]
        local = datetime(2026, 11, 1, tzinfo=SH) + timedelta(minutes=rnd.randrange(30 * 24 * 60))
        paid = None if status in ("expired", "held") else local
        out.append(Seed(f"o{i:05d}", channel, who, product, qty, qty * unit, status, paid))
    # Just outside the period on both ends, and exactly on its first instant.
    out.append(Seed("edge-before", "telegram", "t0", 1, 1, 5000, "delivered",
                    datetime(2026, 10, 31, 23, 59, tzinfo=SH)))
    out.append(Seed("edge-after", "telegram", "t0", 1, 1, 5000, "delivered", datetime(2026, 12, 1, 0, 0, tzinfo=SH)))
    out.append(Seed("edge-first", "wechat", "w-first", 2, 2, 19800, "delivered", datetime(2026, 11, 1, tzinfo=SH)))
    return out


async def _load(db: Database, seeds: list[Seed], *, stock: bool = True) -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.write_engine.begin() as conn:
        await conn.execute(insert(t.products), [
            {"id": pid, "sku": sku, "kind": "code", "title": {"en": sku}, "description": {}, "category": {},
             "price": 100, "currency": cur, "stars": None, "min_qty": 1, "max_qty": 5, "hold_minutes": None,
             "active": True, "rules": {}, "position": pid, "created_at": at, "updated_at": at}
            for pid, (sku, cur) in PRODUCTS.items()])
        await conn.execute(insert(t.orders), [
            {"id": s.id, "buyer_channel": s.channel, "buyer_id": s.buyer, "chat_id": s.buyer, "product_id": s.product,
             "qty": s.qty, "unit_price": s.amount // s.qty, "amount": s.amount, "currency": PRODUCTS[s.product][1],
             "stars": None, "status": s.status, "language": "en",
             "created_at": (s.paid_at or at) - timedelta(minutes=1),
             "expires_at": (s.paid_at or at) + timedelta(minutes=30), "paid_at": s.paid_at}
            for s in seeds])
        if not stock:  # codes need the vault's key when a store opens the database
            return
        codes = list(STOCK.items())
        rows = [{"id": 1000 * pid + k, "product_id": pid, "status": "available", "key_id": "k", "nonce": b"n",
                 "ciphertext": b"c", "fingerprint": f"{pid}-{k}".encode()} for pid, n in codes for k in range(n)]
        rows.append({"id": 99999, "product_id": 1, "status": "sold", "key_id": "k", "nonce": b"n", "ciphertext": b"c",
                     "fingerprint": b"sold"})
        await conn.execute(insert(t.codes), rows)


def _expected(seeds: list[Seed]) -> dict[str, object]:
    start, end = datetime(2026, 11, 1, tzinfo=SH), datetime(2026, 12, 1, tzinfo=SH)
    paid = [s for s in seeds if s.paid_at is not None and start <= s.paid_at < end]
    kept = [s for s in paid if s.status in ("delivered", "pending")]
    refunds = [s for s in paid if s.status in ("refunded", "refunding")]
    revenue: dict[str, int] = {}
    for s in kept:
        cur = PRODUCTS[s.product][1]
        revenue[cur] = revenue.get(cur, 0) + s.amount
    per_buyer: dict[tuple[str, str], int] = {}
    for s in paid:
        per_buyer[(s.channel, s.buyer)] = per_buyer.get((s.channel, s.buyer), 0) + 1
    by_channel: dict[str, dict[str, int]] = {}
    for s in kept:
        into = by_channel.setdefault(CHANNEL[s.channel], {})
        into[PRODUCTS[s.product][1]] = into.get(PRODUCTS[s.product][1], 0) + s.amount
    daily: dict[date, dict[str, int]] = {}
    for s in kept:
        assert s.paid_at is not None
        into = daily.setdefault(s.paid_at.astimezone(SH).date(), {})
        into[PRODUCTS[s.product][1]] = into.get(PRODUCTS[s.product][1], 0) + s.amount
    units = {pid: sum(s.qty for s in kept if s.product == pid) for pid in PRODUCTS}
    return {"paid": len(paid), "revenue": revenue, "refunds": len(refunds), "buyers": len(per_buyer),
            "repeat": sum(1 for n in per_buyer.values() if n >= 2), "by_channel": by_channel, "daily": daily,
            "units": units, "kept": {c: sum(1 for s in kept if PRODUCTS[s.product][1] == c) for c in revenue}}


async def test_a_month_of_orders_gives_the_figures_the_seed_says(db_url: str) -> None:
    seeds = _seed()
    db = Database(db_url)
    try:
        await _load(db, seeds)
        desk = ReportDesk(db.uow, FakeClock(NOW), zone=ZONE)
        period = desk.between("2026-11-01", "2026-11-30")
        assert (period.days, period.start, period.end) == (30, datetime(2026, 11, 1, tzinfo=SH),
                                                           datetime(2026, 12, 1, tzinfo=SH))
        f = await desk.figures(period)
    finally:
        await db.dispose()
    want = _expected(seeds)
    assert f.orders_paid == want["paid"] and f.refunds == want["refunds"]
    assert f.revenue == want["revenue"] and "XTR" in f.revenue and "CNY" in f.revenue  # Stars apart
    assert (f.buyers, f.repeat_buyers) == (want["buyers"], want["repeat"])
    assert 0 < f.repeat_buyers < f.buyers
    assert f.repurchase_rate == want["repeat"] / want["buyers"]  # type: ignore[operator]
    assert f.refund_rate == want["refunds"] / want["paid"]  # type: ignore[operator]
    assert f.by_channel == want["by_channel"] and set(f.by_channel) == {"telegram", "wechat", "b2b"}
    assert f.reseller_revenue == want["by_channel"]["b2b"]  # type: ignore[index]
    kept = want["kept"]
    assert f.average_order == {c: a // kept[c] for c, a in want["revenue"].items()}  # type: ignore[attr-defined,index]
    assert [d for d, _ in f.daily] == [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    assert {d: r for d, r in f.daily if r} == want["daily"]
    assert sum(r.get("CNY", 0) for _, r in f.daily) == want["revenue"]["CNY"]  # type: ignore[index]
    units = want["units"]
    top = f.top_by_units(1)[0]
    assert top.units == max(units.values())  # type: ignore[attr-defined]
    assert f.top_by_revenue(4)[0].revenue == max(p.revenue for p in f.products)
    cover = {c.sku: c for c in f.stock}
    for pid, (sku, _) in PRODUCTS.items():
        daily_units = units[pid] / 30  # type: ignore[index]
        assert cover[sku].available == STOCK[pid]
        assert cover[sku].days_of_cover == (STOCK[pid] / daily_units if daily_units else None)
    assert cover["GAME-100"].days_of_cover == 0.0  # sold out


async def test_a_range_ending_after_today_is_clipped_and_today_counts_from_local_midnight(db_url: str) -> None:
    seeds = [Seed("a", "telegram", "t1", 1, 1, 5000, "delivered", datetime(2026, 12, 1, 0, 30, tzinfo=SH)),
             Seed("b", "telegram", "t1", 1, 1, 5000, "delivered", datetime(2026, 11, 30, 23, 30, tzinfo=SH))]
    db = Database(db_url)
    try:
        await _load(db, seeds)
        desk = ReportDesk(db.uow, FakeClock(NOW), zone=ZONE)
        clipped = desk.between("2026-11-30", "2027-01-31")
        assert (clipped.first, clipped.last) == (date(2026, 11, 30), date(2026, 12, 1))
        today = await desk.figures(desk.period("today"))
        both = await desk.figures(clipped)
    finally:
        await db.dispose()
    assert (today.orders_paid, today.revenue, today.buyers, today.repeat_buyers) == (1, {"CNY": 5000}, 1, 0)
    assert (both.orders_paid, both.buyers, both.repeat_buyers) == (2, 1, 1)
