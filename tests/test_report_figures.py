"""The report's newer figures over a seeded month, on SQLite and PostgreSQL: group-chat orders counted as "group"
(not under their member's Telegram), reseller sales per reseller (API and group orders), the funnel from the event
counters and the orders, supplier cost and margin (the catalogue's cost, else the restock purchases in the supplier
ledger), and the month's orders as a CSV export. Every expected figure is computed here from the seed lists."""
from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from core.clock import FakeClock
from core.reports import ReportDesk, ReportsError
from core.reports import desk as desk_module
from storage import tables as t
from storage.db import Database
from storage.groups import group_orders
from storage.reports import report_events
from storage.resellers import resellers
from tests.test_reports import NOW, PRODUCTS, SH, ZONE, Seed, _load

START, END = datetime(2026, 11, 1, tzinfo=SH), datetime(2026, 12, 1, tzinfo=SH)
COSTS = {"GIFT-50": 4000}  # the catalogue's cost (CNY fen)
RESTOCK = {"GAME-100": ("up", "G100")}  # GAME-100 has no cost configured: its restock purchases price it
PURCHASES = [  # (supplier, supplier sku, kind, status, order, qty, cost, when): only done restock buys of 90 days count
    ("up", "G100", "buy", "done", None, 10, 80_000, datetime(2026, 11, 20, tzinfo=UTC)),
    ("up", "G100", "buy", "done", None, 5, 43_000, datetime(2026, 9, 10, tzinfo=UTC)),
    ("up", "G100", "buy", "failed", None, 7, 0, datetime(2026, 11, 21, tzinfo=UTC)),
    ("up", "G100", "buy", "done", None, 50, 1_000, datetime(2026, 8, 1, tzinfo=UTC)),  # older than 90 days
    ("up", "G100", "buy", "done", "o00001", 1, 99_999, datetime(2026, 11, 5, tzinfo=UTC)),  # an order's, not stock
    ("up", "G100", "buy", "done", None, 4, 40_000, datetime(2026, 12, 2, tzinfo=UTC)),  # after the period
]
RESELLERS = {1: "Acme", 2: "Beta"}
FORMULA = 9  # a product whose SKU a spreadsheet would run as a formula
ALL = {**PRODUCTS, FORMULA: ("=HYPERLINK(1)", "CNY")}
KEPT = ("delivered", "pending")


@dataclass(frozen=True)
class Month:
    seeds: list[Seed]
    groups: dict[str, int]  # order id -> reseller, group-chat orders
    events: list[tuple[date, int, str, str, int]]


def _month() -> Month:
    rnd = random.Random(1515)
    seeds: list[Seed] = []
    groups: dict[str, int] = {}
    for i in range(300):
        kind = rnd.choices(["telegram", "wechat", "api", "group"], [50, 25, 10, 15])[0]
        if kind == "api":
            reseller = rnd.choice(list(RESELLERS))
            channel, who = "api", str(reseller)
        elif kind == "group":
            channel, who = "telegram", f"m{rnd.randrange(5)}"
        else:
            channel, who = kind, f"{kind[0]}{rnd.randrange(15)}"
        product = rnd.choice(list(PRODUCTS))
        qty = rnd.randint(1, 3)
        unit = {1: 5000, 2: 9900, 3: 250, 4: 799}[product]
        status = rnd.choices(["delivered", "pending", "refunded", "expired"], [80, 5, 8, 7])[0]
        at = START + timedelta(minutes=rnd.randrange(30 * 24 * 60))
        seed = Seed(f"o{i:05d}", channel, who, product, qty, qty * unit, status, None if status == "expired" else at)
        seeds.append(seed)
        if kind == "group":
            groups[seed.id] = rnd.choice(list(RESELLERS))
    # a group order of the member m1 paid after the period, and a Telegram order of the same member inside it
    seeds.append(Seed("g-late", "telegram", "m1", 1, 1, 5000, "delivered", END + timedelta(hours=2)))
    groups["g-late"] = 1
    seeds.append(Seed("m1-own", "telegram", "m1", 1, 1, 5000, "delivered", START + timedelta(days=3)))
    seeds.append(Seed("formula", "wechat", "w1", FORMULA, 1, 100, "delivered", START + timedelta(days=4)))
    events = [(date(2026, 11, 1) + timedelta(days=rnd.randrange(30)), rnd.choice(list(PRODUCTS)),
               rnd.choice(["telegram", "wechat"]), rnd.choice(["view", "view", "invoice"]), rnd.randint(1, 40))
              for _ in range(80)]
    events = list({(d, p, c, k): n for d, p, c, k, n in events}.items())  # one row per key
    events = [(*k, n) for k, n in events]  # type: ignore[misc]
    events.append((date(2026, 10, 31), 1, "telegram", "view", 1000))  # the day before: left out
    events.append((date(2026, 12, 1), 1, "telegram", "view", 1000))  # the day after
    return Month(seeds, groups, events)


async def _seed(db: Database, month: Month) -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.write_engine.begin() as conn:
        await conn.execute(insert(t.products).values(
            id=FORMULA, sku=ALL[FORMULA][0], kind="code", title={"en": "x"}, description={}, category={}, price=100,
            currency="CNY", stars=None, min_qty=1, max_qty=1, hold_minutes=None, active=True, rules={},
            position=9, created_at=at, updated_at=at))
    await _load(db, [s for s in month.seeds if s.product != FORMULA])
    async with db.write_engine.begin() as conn:
        await conn.execute(insert(t.orders), [
            {"id": s.id, "buyer_channel": s.channel, "buyer_id": s.buyer, "chat_id": s.buyer, "product_id": s.product,
             "qty": s.qty, "unit_price": s.amount // s.qty, "amount": s.amount, "currency": "CNY", "stars": None,
             "status": s.status, "language": "en", "created_at": s.paid_at, "expires_at": s.paid_at,
             "paid_at": s.paid_at} for s in month.seeds if s.product == FORMULA])
        await conn.execute(insert(resellers), [
            {"id": rid, "name": name, "status": "active", "prices": {}, "currency": "CNY", "created_at": at}
            for rid, name in RESELLERS.items()])
        by_id = {s.id: s for s in month.seeds}
        rows = [{"id": f"q{n}", "chat": "-100", "user": by_id[oid].buyer, "reseller_id": rid,
                 "product_id": by_id[oid].product, "qty": by_id[oid].qty, "unit": 1, "amount": by_id[oid].amount,
                 "currency": "CNY", "status": "paid", "language": "en", "order_id": oid,
                 "created_at": (by_id[oid].paid_at or at) - timedelta(minutes=3),
                 "expires_at": (by_id[oid].paid_at or at) + timedelta(minutes=7)}
                for n, (oid, rid) in enumerate(sorted(month.groups.items()))]
        rows.append({**rows[0], "id": "q-open", "order_id": None, "status": "pending"})  # a quote never confirmed
        await conn.execute(insert(group_orders), rows)
        await conn.execute(insert(report_events), [
            {"day": d, "product_id": p, "channel": c, "kind": k, "n": n} for d, p, c, k, n in month.events])
        await conn.execute(insert(t.supply_requests), [
            {"request_id": f"rs-{n}", "supplier": sup, "supplier_sku": sku, "kind": kind, "status": st,
             "order_id": order, "qty": qty, "cost": cost, "upstream_id": "", "detail": "", "created_at": when,
             "updated_at": when} for n, (sup, sku, kind, st, order, qty, cost, when) in enumerate(PURCHASES)])


def _channel(s: Seed, month: Month) -> str:
    return "group" if s.id in month.groups else {"telegram": "telegram", "wechat": "wechat", "api": "b2b"}[s.channel]


def _reseller(s: Seed, month: Month) -> int | None:
    return month.groups.get(s.id) or (int(s.buyer) if s.channel == "api" else None)


def _desk(db: Database) -> ReportDesk:
    return ReportDesk(db.uow, FakeClock(NOW)).configure(zone=ZONE, currency="CNY", costs=COSTS, restocks=RESTOCK)


async def test_groups_resellers_funnel_and_margin_are_what_the_seeded_month_says(db_url: str) -> None:
    month = _month()
    db = Database(db_url)
    try:
        await _seed(db, month)
        desk = _desk(db)
        f = await desk.figures(desk.between("2026-11-01", "2026-11-30"))
    finally:
        await db.dispose()
    paid = [s for s in month.seeds if s.paid_at is not None and START <= s.paid_at < END]
    kept = [s for s in paid if s.status in KEPT]
    cur = {pid: c for pid, (_, c) in ALL.items()}
    sku = {pid: name for pid, (name, _) in ALL.items()}
    # channels: a group order is "group", never its member's Telegram
    by_channel: dict[str, dict[str, int]] = {}
    for s in kept:
        per = by_channel.setdefault(_channel(s, month), {})
        per[cur[s.product]] = per.get(cur[s.product], 0) + s.amount
    assert f.by_channel == by_channel and set(f.by_channel) == {"telegram", "wechat", "b2b", "group"}
    assert f.orders_by_channel == {ch: sum(1 for s in paid if _channel(s, month) == ch) for ch in by_channel}
    # resellers: what each bought from its wallet, by API and in its groups
    want: dict[int, tuple[int, dict[str, int]]] = {}
    for s in kept:
        rid = _reseller(s, month)
        if rid is not None:
            n, money = want.setdefault(rid, (0, {}))
            money[cur[s.product]] = money.get(cur[s.product], 0) + s.amount
            want[rid] = (n + 1, money)
    assert {r.name: (r.orders, r.revenue) for r in f.resellers} == {RESELLERS[r]: v for r, v in want.items()}
    total: dict[str, int] = {}
    for _, money in want.values():
        for c, a in money.items():
            total[c] = total.get(c, 0) + a
    assert f.reseller_revenue == total
    # the funnel: views and invoices of the period's days, paid and delivered chat orders (no group, no API)
    for channel in ("telegram", "wechat"):
        views = sum(n for d, _, c, k, n in month.events if c == channel and k == "view" and START.date() <= d
                    < END.date())
        invoices = sum(n for d, _, c, k, n in month.events if c == channel and k == "invoice" and START.date() <= d
                       < END.date())
        chat = [s for s in paid if _channel(s, month) == channel]
        funnel = f.funnel_by_channel[channel]
        assert (funnel.views, funnel.invoices, funnel.paid, funnel.delivered) == (
            views, invoices, len(chat), sum(1 for s in chat if s.status == "delivered"))
    assert set(f.funnel_by_channel) == {"telegram", "wechat"}
    assert f.funnel.views == f.funnel_by_channel["telegram"].views + f.funnel_by_channel["wechat"].views
    # cost and margin: GIFT-50 at its configured cost, GAME-100 at its restock purchases' average, others unknown
    game_unit = round((80_000 + 43_000) / (10 + 5))
    unit_cost = {"GIFT-50": 4000, "GAME-100": game_unit}
    units: dict[tuple[str, str], int] = {}
    revenue: dict[tuple[str, str], int] = {}
    for s in kept:
        key = (sku[s.product], cur[s.product])
        units[key] = units.get(key, 0) + s.qty
        revenue[key] = revenue.get(key, 0) + s.amount
    for p in f.products:
        assert p.unit_cost == unit_cost.get(p.sku)
        assert p.cost == (units[(p.sku, p.currency)] * unit_cost[p.sku] if p.sku in unit_cost else None)
    cost = sum(units[k] * unit_cost[k[0]] for k in units if k[0] in unit_cost)
    margin = sum(revenue[k] - units[k] * unit_cost[k[0]] for k in units if k[0] in unit_cost and k[1] == "CNY")
    assert f.cost_of_goods == {"CNY": cost}
    assert f.margin == {"CNY": margin}
    cny_costed = sum(revenue[k] for k in units if k[0] in unit_cost and k[1] == "CNY")
    assert f.margin_rate["CNY"] == pytest.approx(margin / cny_costed)
    assert f.uncosted == sorted({sku[s.product] for s in kept} - set(unit_cost))


async def test_the_months_orders_export_adds_up_to_the_report_and_carries_no_formula(db_url: str,
                                                                                     monkeypatch: pytest.MonkeyPatch
                                                                                     ) -> None:
    month = _month()
    db = Database(db_url)
    try:
        await _seed(db, month)
        desk = _desk(db)
        period = desk.between("2026-11-01", "2026-11-30")
        figures = await desk.figures(period)
        export = await desk.export_orders(period, actor="telegram:1", channel="telegram")
        async with db.uow() as uow:
            audit = await uow.audit.latest("export", "telegram:1", limit=5)
        monkeypatch.setattr(desk_module, "MAX_ROWS", 10)
        with pytest.raises(ReportsError) as refused:
            await desk.export_orders(period, actor="telegram:1", channel="telegram")
        async with db.uow() as uow:
            assert len(await uow.audit.latest("export", "telegram:1", limit=5)) == 1  # the refusal exported nothing
    finally:
        await db.dispose()
    assert refused.value.code == "report_export_too_big" and refused.value.params["most"] == 10
    text = export.data.decode("utf-8")
    assert text.startswith("\ufeff") and export.name == "orders_2026-11-01_2026-11-30.csv"
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["order", "created (Asia/Shanghai)", "paid (Asia/Shanghai)", "delivered (Asia/Shanghai)",
                       "status", "channel", "buyer", "sku", "qty", "unit_price", "amount", "currency"]
    paid = {s.id: s for s in month.seeds if s.paid_at is not None and START <= s.paid_at < END}
    lines = {r[0]: r for r in rows[1:]}
    assert set(lines) == set(paid) and export.rows == len(paid)
    for oid, r in lines.items():
        s = paid[oid]
        assert r[5] == _channel(s, month) and r[4] == s.status and int(r[8]) == s.qty
        assert s.paid_at is not None and r[2] == s.paid_at.astimezone(SH).strftime("%Y-%m-%d %H:%M:%S")
    kept_cny = sum(round(float(r[10]) * 100) for r in rows[1:] if r[11] == "CNY" and r[4] in KEPT)
    assert kept_cny == figures.revenue["CNY"]  # the file adds up to the report
    assert lines["formula"][7] == "'=HYPERLINK(1)"  # shown as text, never run
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    [entry] = audit
    assert entry.detail == {"what": "orders", "period": "2026-11-01..2026-11-30", "zone": ZONE, "rows": len(paid),
                            "format": "csv"}
    assert entry.channel == "telegram"
