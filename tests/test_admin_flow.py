"""The merchant's commands through the channel-neutral AdminFlow, on a real store (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.bootstrap import product_specs
from core.admin import AdminError, Merchant
from core.models import CodeStatus
from handlers.admin import AdminCtx, AdminFlow, ImportFile, TableScreen
from handlers.screen import Screen
from locales import Translator
from tests.helpers import (
    SKU,
    buyer,
    import_n,
    open_shop,
    order_status,
    pay,
    payments_for,
    product_id,
    settle,
    stock_of,
)

CATALOG = [
    {"sku": SKU, "title": {"en": "Game card 10", "zh_CN": "游戏点卡 10"}, "price": 1000, "stars": 70, "max_qty": 5},
    {"sku": "VIP", "title": "VIP month", "price": 1500, "stars": 100},
]
BOSS = Merchant("test", "boss")
I18N = Translator(("en", "zh_CN"))


def flow_for(app, **kw) -> AdminFlow:
    return AdminFlow(app.shop, I18N, **kw)


async def run(flow: AdminFlow, text: str, lang: str = "en", **kw) -> Screen:
    screens = await flow.on_command(AdminCtx(BOSS, lang), text, **kw)
    assert len(screens) == 1
    return screens[0]


def text_of(screen: Screen) -> str:
    return f"{screen.title}\n{screen.body}\n{screen.footer}"


async def admin_audit(app) -> list:
    async with app.db.uow() as uow:
        return list(reversed(await uow.audit.latest("admin", BOSS.key, limit=500)))


async def delivered_order(app, who: str = "ann", qty: int = 1):
    order = await app.shop.reserve(buyer(who), await product_id(app), qty, "en")
    assert (await pay(app, order)).outcome == "delivered"
    await settle(app)
    return order


# -- stock, orders, order detail ----------------------------------------------------------------------------

async def test_given_stock_and_sales_when_the_merchant_asks_stock_then_a_table_shows_sku_title_and_counts(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 5)
        await delivered_order(app)
        await app.shop.reserve(buyer("bob"), await product_id(app), 2, "en")
        flow = flow_for(app)

        screen = await run(flow, "/stock")
        assert isinstance(screen, TableScreen)
        header, *rows = screen.body.splitlines()
        assert header.split() == ["SKU", "Title", "Available", "Held", "Sold"]
        assert rows[0].split()[0] == SKU and "Game card 10" in rows[0]
        assert rows[0].split()[-3:] == ["2", "2", "1"]
        assert rows[1].split()[0] == "VIP" and rows[1].split()[-3:] == ["0", "0", "0"]

        zh = await run(flow, "/stock@shop_bot", "zh_CN")
        assert zh.title == "库存" and "游戏点卡 10" in zh.body and "可售" in zh.body
        assert [e.detail["command"] for e in await admin_audit(app)] == ["stock", "stock"]


async def test_given_orders_in_several_states_then_orders_lists_newest_first_filters_by_status_and_pages(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 20)
        delivered = [await delivered_order(app, f"d{i}") for i in range(12)]
        held = await app.shop.reserve(buyer("h"), await product_id(app), 1, "en")
        flow = flow_for(app)

        first = await run(flow, "/orders")
        ids = [line.split()[0] for line in first.body.splitlines()[1:]]
        assert len(ids) == 10 and held.id in ids
        assert "/orders all 2" in first.footer

        only = await run(flow, "/orders delivered 2")
        rows = only.body.splitlines()[1:]
        assert len(rows) == 2 and all("delivered" in r for r in rows)
        assert {r.split()[0] for r in rows} <= {o.id for o in delivered}
        assert "delivered" in only.title

        assert (await run(flow, "/orders held")).body.count(held.id) == 1
        assert (await run(flow, "/orders refunded")).body == "No orders."
        bad = await run(flow, "/orders paid")
        assert bad.error == "bad_status" and "delivered" in bad.title
        audit = await admin_audit(app)
        assert [e.detail.get("status") for e in audit[:4]] == ["all", "delivered", "held", "refunded"]
        statuses = "held, pending, delivered, expired, cancelled, refunding, refunded"
        assert audit[-1].detail == {"command": "orders", "refused": "bad_status", "given": "paid",
                                    "statuses": statuses[:64]}  # audited parameters are cut at 64 characters


async def test_given_a_delivered_order_then_its_detail_shows_payments_code_ids_and_audit_trail_never_codes(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        codes = await import_n(app, 3)
        order = await delivered_order(app, qty=2)
        await app.shop.reveal(order.id, buyer("ann"))
        flow = flow_for(app)

        screen = await run(flow, f"/order {order.id.lower()}")
        text = text_of(screen)
        assert order.id in screen.title
        assert "Status: delivered" in text and "test:uann" in text
        assert f"txn-{order.id}" in text and "captured" in text
        async with app.db.uow() as uow:
            stored = (await uow.codes.for_orders([order.id]))[order.id]
        assert "Codes: 2" in text and all(str(c.id) in text for c in stored)
        assert "deliver" in text and "reveal" in text
        assert not any(code in text for code in codes)

        missing = await run(flow, "/order 260101XXXXXXXX")
        assert missing.error == "order_not_found" and "does not exist" in missing.title
        usage = await run(flow, "/order")
        assert usage.error == "usage" and "/order ID" in usage.body
        # The view itself is in the order's audit trail.
        trail = await app.shop.audit_for(order.id)
        assert [(e.action, e.actor, e.detail.get("command")) for e in trail][-1] == ("admin", BOSS.key, "order")


# -- refunds ------------------------------------------------------------------------------------------------

async def test_given_a_delivered_order_when_the_merchant_refunds_it_then_the_provider_refunds_once_and_codes_burn(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, notifier, gateway):
        await import_n(app, 4)
        order = await delivered_order(app, qty=2)
        assert await stock_of(app) == (2, 0, 2)
        flow = flow_for(app)

        screen = await run(flow, f"/refund {order.id}")
        assert screen.error is None and "Refund queued" in screen.body and "2 code(s)" in screen.body
        assert await order_status(app, order.id) == "refunding"
        async with app.db.uow() as uow:
            stored = (await uow.codes.for_orders([order.id]))[order.id]
        assert {c.status for c in stored} == {CodeStatus.BURNED}
        assert await stock_of(app) == (2, 0, 0)  # burned: neither available nor sold

        await settle(app)
        assert [(p.provider_txn_id, reason) for p, reason in gateway.refunds] == [(f"txn-{order.id}", "merchant")]
        assert await order_status(app, order.id) == "refunded"
        assert [p.status for p in await payments_for(app, order.id)] == ["refunded"]
        told = notifier.notices_to("uann", "refund.done")
        assert len(told) == 1 and told[0].params == {"order": order.id, "reason": "merchant"}

        again = await run(flow, f"/refund {order.id}")
        assert again.error == "already_refunded" and "cannot be refunded twice" in again.title
        assert "refunded" in again.title
        await settle(app)
        assert len(gateway.refunds) == 1

        # The burned codes are never sold again: two more buyers get the two codes still available, a third none.
        others = [await delivered_order(app, f"o{i}") for i in range(2)]
        async with app.db.uow() as uow:
            got = await uow.codes.for_orders([o.id for o in others])
        assert not {c.id for cs in got.values() for c in cs} & {c.id for c in stored}

        entries = [e for e in await admin_audit(app) if e.detail["command"] == "refund"]
        assert entries[0].order_id == order.id and entries[0].detail["codes_burned"] == 2
        assert entries[1].detail["refused"] == "already_refunded"


async def test_refusing_to_refund_what_was_not_paid_or_does_not_exist(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, gateway):
        await import_n(app, 2)
        held = await app.shop.reserve(buyer("h"), await product_id(app), 1, "en")
        flow = flow_for(app)
        not_paid = await run(flow, f"/refund {held.id}")
        assert not_paid.error == "not_paid" and "awaiting payment" in not_paid.title
        assert (await run(flow, "/refund NOPE")).error == "order_not_found"
        assert (await run(flow, "/refund")).error == "usage"
        assert await order_status(app, held.id) == "held"
        await settle(app)
        assert gateway.refunds == []


async def test_given_two_merchants_refunding_the_same_order_at_once_then_exactly_one_refund_goes_out(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, gateway), \
            open_shop(db_url, tmp_path, catalog=CATALOG) as (app2, _, gateway2):
        await import_n(app, 2)
        order = await delivered_order(app)
        services = [flow_for(app).service, flow_for(app2).service]
        results = await asyncio.gather(*(s.refund(BOSS, order.id) for s in services * 2),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, AdminError)]
        assert len(refused) == 3 and {r.reason for r in refused} == {"already_refunded"}
        await settle(app, app2)
        assert len(gateway.refunds) + len(gateway2.refunds) == 1
        assert await order_status(app, order.id) == "refunded"


# -- products -----------------------------------------------------------------------------------------------

async def test_given_product_commands_then_price_title_and_sale_change_and_merchant_products_survive_a_restart(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        flow = flow_for(app)
        pid = await product_id(app)

        changed = await run(flow, f"/product {SKU} price 1250")
        assert "CN¥10.00 → CN¥12.50" in changed.body and "config.yaml" in changed.footer
        view = await app.shop.product_view(pid)
        assert view.product.price == 1250

        await run(flow, f"/product {SKU} title zh-cn 新游戏点卡  十元")
        assert (await app.shop.product(pid)).title == {"en": "Game card 10", "zh_CN": "新游戏点卡  十元"}
        await run(flow, f"/product {SKU} stars 0")
        assert (await app.shop.product(pid)).stars is None
        await run(flow, f"/product {SKU} stars 80")
        assert (await app.shop.product(pid)).stars == 80

        off = await run(flow, f"/product {SKU} off")
        assert "off sale" in off.body
        assert SKU not in [p.sku for p in await app.shop.products()]
        await run(flow, f"/product {SKU} on")
        assert SKU in [p.sku for p in await app.shop.products()]

        created = await run(flow, "/product new NETFLIX-1M 3000 200 Netflix one month")
        assert created.error is None and "NETFLIX-1M" in created.title and "CN¥30.00" in created.body
        made = await app.shop.product_by_sku("NETFLIX-1M")
        assert made.source == "admin" and made.title == {"*": "Netflix one month"} and made.stars == 200
        assert made.currency == "CNY" and made.active
        assert (await run(flow, "/product new NETFLIX-1M 3000 200 Again")).error == "sku_exists"
        detail = await run(flow, "/product NETFLIX-1M")
        assert "Created by a merchant command" in detail.body and "On sale" in detail.body

        # A restart applies the config again: VIP is no longer listed (off sale), the merchant's product stays.
        await app.shop.sync_catalog([s for s in product_specs(app.settings) if s.sku == SKU])
        skus = [p.sku for p in await app.shop.products()]
        assert "NETFLIX-1M" in skus and "VIP" not in skus and SKU in skus
        audit = await admin_audit(app)
        assert [e.detail["command"] for e in audit] == ["product"] * 6 + ["product_new", "product", "product"]
        assert audit[0].detail == {"command": "product", "sku": SKU, "field": "price", "old": 1000, "new": 1250}
        assert audit[7].detail["refused"] == "sku_exists"


@pytest.mark.parametrize("command, error", [
    ("/product", "usage"),
    ("/product GAME", "unknown_sku"),
    ("/product CARD-10 price", "usage"),
    ("/product CARD-10 price -5", "usage"),
    ("/product CARD-10 price 12.50", "usage"),
    ("/product CARD-10 title xx Name", "bad_language"),
    ("/product CARD-10 fly", "usage"),
    ("/product new bad/sku 100 1 Title", "bad_sku"),
    ("/product new OK 100 1", "usage"),
])
async def test_bad_product_commands_are_refused_and_change_nothing(sqlite_url: str, tmp_path: Path, command: str,
                                                                  error: str) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        before = await app.shop.products(include_inactive=True)
        screen = await run(flow_for(app), command)
        assert screen.error == error
        assert await app.shop.products(include_inactive=True) == before
        assert (await admin_audit(app))[-1].detail["refused"] == error


# -- import -------------------------------------------------------------------------------------------------

async def test_given_a_file_of_codes_then_import_reports_progress_and_duplicates_and_rejected_lines(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 1, prefix="OLD")
        lines = [f"NEW-{i:03d}" for i in range(9)] + ["NEW-000", "", "bad\x01code", "x" * 600, "NEW-009"]
        data = ("\n".join(lines) + "\n").encode()
        shown: list[Screen] = []

        async def progress(screen: Screen) -> None:
            shown.append(screen)

        fetched = []

        async def fetch() -> bytes:
            fetched.append(1)
            return data

        flow = flow_for(app, progress_interval=0, import_batch=3)
        screens = await flow.on_command(AdminCtx(BOSS, "en"), f"/import {SKU}",
                                        ImportFile("codes.txt", len(data), fetch), progress)
        result = screens[-1]
        assert "Imported: 10" in result.body and "Duplicates (skipped): 1" in result.body
        assert "Rejected: 2" in result.body and "12 (control characters), 13 (too long)" in result.body
        assert await stock_of(app) == (11, 0, 0)
        assert shown[0].body.startswith("0% read") and shown[-1].body.startswith("100% read")
        assert len(shown) >= 3 and fetched == [1]
        entry = (await admin_audit(app))[-1]
        assert entry.detail == {"command": "import", "sku": SKU, "file": "codes.txt", "bytes": len(data),
                                "imported": 10, "duplicates": 1, "rejected": 2}
        async with app.db.uow() as uow:
            imports = await uow.audit.latest("import", BOSS.key)
        assert imports[0].channel == "test" and imports[0].detail["imported"] == 10


async def test_given_a_chat_import_with_a_bidi_override_the_merchant_is_told_the_line_in_their_language(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        data = "OK-1\nEVIL\u202e-2\nOK-3\n".encode()

        async def fetch() -> bytes:
            return data

        async def progress(screen: Screen) -> None:
            pass

        screens = await flow_for(app, progress_interval=0).on_command(
            AdminCtx(BOSS, "zh_CN"), f"/import {SKU}", ImportFile("codes.txt", len(data), fetch), progress)
        assert "2 (含不可见字符（双向控制符、零宽字符）)" in screens[-1].body
        assert await stock_of(app) == (2, 0, 0)


async def test_progress_updates_are_throttled_to_a_first_and_a_final_state_when_the_import_is_quick(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        data = b"".join(f"Q-{i}\n".encode() for i in range(20))
        shown: list[Screen] = []

        async def progress(screen: Screen) -> None:
            shown.append(screen)

        async def fetch() -> bytes:
            return data

        flow = flow_for(app, progress_interval=3600, import_batch=2)  # ten batches, well inside one interval
        await run(flow, f"/import {SKU}", file=ImportFile("q.csv", len(data), fetch), progress=progress)
        assert [s.body.split()[0] for s in shown] == ["0%", "100%"]
        assert await stock_of(app) == (20, 0, 0)


@pytest.mark.parametrize("name, data, size, error", [
    ("codes.xlsx", b"CODE-1\n", None, "bad_file_type"),
    ("codes.txt", b"\x00\x01\x02binary", None, "binary_file"),
    ("codes.csv", b"  \n\n", None, "empty_file"),
    ("codes.txt", b"CODE-1\n", 21 * 1024 * 1024, "file_too_big"),
])
async def test_files_that_are_not_codes_are_refused_and_nothing_is_imported(
        sqlite_url: str, tmp_path: Path, name: str, data: bytes, size: int | None, error: str) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        shown: list[Screen] = []

        async def progress(screen: Screen) -> None:
            shown.append(screen)

        async def fetch() -> bytes:
            return data

        screen = await run(flow_for(app), f"/import {SKU}", file=ImportFile(name, size or len(data), fetch),
                           progress=progress)
        assert screen.error == error and "nothing was imported" in screen.title.lower()
        assert shown == [] and await stock_of(app) == (0, 0, 0)


async def test_import_without_a_file_or_for_an_unknown_sku_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        flow = flow_for(app)
        assert (await run(flow, f"/import {SKU}")).error == "no_file"
        assert (await run(flow, "/import")).error == "usage"

        async def fetch() -> bytes:
            raise AssertionError("nothing is downloaded for an unknown SKU")

        assert (await run(flow, "/import NOPE", file=ImportFile("c.txt", 7, fetch))).error == "unknown_sku"
        assert await stock_of(app) == (0, 0, 0)


# -- who may ------------------------------------------------------------------------------------------------

async def test_a_refused_non_merchant_is_recorded_and_shown_nothing(sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=CATALOG) as (app, _, _):
        screen = await flow_for(app).deny("test", "mallory", "/stock", "zh_CN")
        assert screen.title.startswith("无权操作") and screen.body == "" and screen.error == "not_allowed"
        async with app.db.uow() as uow:
            denied = await uow.audit.latest("admin_denied")
        assert [(e.actor, e.detail) for e in denied] == [("test:mallory", {"command": "/stock"})]
