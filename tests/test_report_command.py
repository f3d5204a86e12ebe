"""`/report` and `/export` through the merchant's AdminFlow on a real store (SQLite and PostgreSQL): today's figures
after real sales and a refund, in English and Chinese, followed by the charts as real PNGs; the funnel counted from a
buyer's real browsing without a transaction per product view; the day's orders as a CSV file, audited; periods that
make no sense refused with why, and audited."""
from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from core.models import Buyer
from core.reports import FlushEvents
from handlers import charts as chart_module
from handlers.customer import Ctx, CustomerFlow
from handlers.screen import Screen
from storage.reports import report_events
from tests.helpers import SKU, RecordingNotifier, import_n, open_shop, pay, settle
from tests.test_admin_flow import BOSS, CATALOG, I18N, AdminCtx, admin_audit, delivered_order, flow_for, run, text_of
from tests.test_groups import BOB, CHAT, linked


async def report(flow, text: str, lang: str = "en") -> list[Screen]:  # noqa: ANN001
    return await flow.on_command(AdminCtx(BOSS, lang), text)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


async def test_report_today_shows_the_days_sales_refunds_and_repeat_buyers(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 10)
        await delivered_order(app, "ann")
        await delivered_order(app, "ann", qty=2)
        refunded = await delivered_order(app, "bob")
        flow = flow_for(app)
        assert (await run(flow, f"/refund {refunded.id}")).error is None
        screen, *charts = await report(flow, "/report")
        assert screen.error is None, text_of(screen)
        body = text_of(screen)
        today = app.clock.now().date().isoformat()
        assert f"Report {today}..{today} (UTC)" in body
        assert "Orders paid: 3" in body and "Refunds: 1 (33%)" in body
        assert "Buyers: 2 (50% bought again)" in body  # Ann paid twice, Bob once
        assert "Revenue: CN¥30.00" in body and "Average order: CN¥15.00" in body  # Ann's 1 + 2 cards of 10.00
        assert "  test: 3 orders, CN¥30.00" in body  # the test buyers' channel, named as it is
        assert f"{SKU}: 3 units" in body
        assert "Funnel: 0 product views → 3 invoices → 3 paid → 2 delivered" in body  # orders made without a page
        assert "Cost unknown (left out of the margin): " + SKU in body
        assert [c.title for c in charts] == ["Daily revenue (CNY)", "Funnel", "Top products (units sold)"]
        assert all(png_size(c.image or b"") == (800, 450) for c in charts)
        zh, *zh_charts = await report(flow, "/report 7d", "zh_CN")
        assert "已付款订单：3" in text_of(zh) and "退款：1" in text_of(zh) and "复购率 50%" in text_of(zh)
        assert [c.title for c in zh_charts] == ["每日销售额（CNY）", "转化漏斗", "热销商品（销量）"]
        audit = await admin_audit(app)
        assert any(e.detail.get("period") == f"{today}..{today}" for e in audit)


async def test_without_the_cjk_font_the_figures_go_out_alone_with_a_note(db_url: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> chart_module.ChartStyle:
        raise chart_module.ChartFontMissing("no CJK font for charts: install fonts-noto-cjk")

    monkeypatch.setattr(chart_module, "default_style", missing)
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        await delivered_order(app, "ann")
        screens = await report(flow_for(app), "/report")
        assert len(screens) == 1 and "Orders paid: 1" in screens[0].body
        assert "The charts could not be drawn" in screens[0].footer


async def test_a_buyers_product_views_and_invoice_reach_the_funnel_without_a_transaction_each(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 5)
        shop = app.shop
        buyers = CustomerFlow(shop, I18N, shop_name="Test Shop", numbered=False)  # buttons, as in Telegram
        ann = Ctx(Buyer("test", "ann"), "ann", "en")
        await buyers.on_text(ann, "/start")
        pid = (await shop.product_by_sku(SKU)).id
        await asyncio.sleep(0)  # the first contact's write is queued ...
        await shop.committer.submit(FlushEvents())  # ... and done by now
        before = shop.committer.batches

        async def counted() -> int:
            async with app.db.uow() as uow:
                return int((await uow.reports.c.execute(select(func.coalesce(func.sum(report_events.c.n), 0))))
                           .scalar() or 0)

        for _ in range(3):
            [page] = await buyers.on_action(ann, f"product:{pid}")
        [page] = await buyers.on_action(ann, f"product:{pid}:2")  # the quantity button: the same page, no new view
        assert page.title == "Game card 10"
        assert shop.committer.batches == before and await counted() == 0  # no transaction, nothing written yet
        [invoice] = await buyers.on_action(ann, f"buy:{pid}:1")  # its reserve's transaction carries the views
        assert shop.committer.batches == before + 1 and await counted() == 3
        [order] = await shop.my_orders(ann.buyer, limit=1)
        assert (await pay(app, order)).outcome == "delivered"  # ... and the payment's the invoice
        await settle(app)
        assert await counted() == 4
        [screen, *_] = await report(flow_for(app), "/report")
        assert "Funnel: 3 product views → 1 invoices → 1 paid → 1 delivered" in text_of(screen)


async def test_a_group_order_counts_as_group_and_with_the_api_order_as_its_resellers_sales(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        app.shop.add_notifier("telegram_group", RecordingNotifier())
        await import_n(app, 10)
        desk, rid = await linked(app)  # 10% off, 50.00 in the wallet
        quote = await desk.quote(CHAT, BOB, SKU, 2, "en")
        await desk.confirm(quote.group_order.id, CHAT, BOB)  # Bob (telegram:301) orders in the group: 18.00
        reseller = await app.shop.resellers.get(rid)
        await app.shop.resellers.order(reseller, SKU, 1, "api-1")  # the reseller's own system: 9.00
        await settle(app)
        [screen, *_] = await report(flow_for(app), "/report")
        body = text_of(screen)
        assert "  Group chats: 1 orders, CN¥18.00" in body and "  Resellers (API): 1 orders, CN¥9.00" in body
        assert "Telegram" not in body  # Bob's group order is not a private Telegram sale
        assert f"Resellers: CN¥27.00\n  {reseller.name}: 2 orders, CN¥27.00" in body
        zh = text_of((await report(flow_for(app), "/report", "zh_CN"))[0])
        assert "  群聊：1 笔，¥18.00" in zh and "代理销售：¥27.00" in zh


async def test_export_sends_the_days_orders_as_a_csv_file_and_audits_it(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        codes = await import_n(app, 5)
        sold = [await delivered_order(app, "ann"), await delivered_order(app, "=bob", qty=2)]
        flow = flow_for(app)
        screen = await run(flow, "/export")
        assert screen.file is not None and screen.error is None
        today = app.clock.now().date().isoformat()
        name, data = screen.file
        assert name == f"orders_{today}_{today}.csv" and "2 orders paid" in screen.body
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert [r[0] for r in rows[1:]] == [o.id for o in sold]
        assert [(r[6], r[8], r[10], r[11]) for r in rows[1:]] == [("test:uann", "1", "10.00", "CNY"),
                                                                  ("test:u=bob", "2", "20.00", "CNY")]
        assert not any(code in text for code in codes)  # never a code
        entries = []
        async with app.db.uow() as uow:
            entries = await uow.audit.latest("export", BOSS.key, limit=5)
        assert [e.detail for e in entries] == [{"what": "orders", "period": f"{today}..{today}", "zone": "UTC",
                                                "rows": 2, "format": "csv"}]
        refused = await run(flow, "/export last-month")
        assert refused.error == "report_bad_period" and refused.file is None
        assert (await admin_audit(app))[-1].detail == {"command": "export", "refused": "report_bad_period",
                                                       "asked": "last-month"}


async def test_report_refuses_backwards_ten_years_and_garbage(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        flow = flow_for(app)
        backwards = await run(flow, "/report 2026-03-10..2026-03-01")
        assert backwards.error == "report_backwards"
        assert "ends (2026-03-01) before it starts (2026-03-10)" in text_of(backwards)
        ten_years = await run(flow, "/report 2015-01-01..2025-01-01")
        assert ten_years.error == "report_too_long" and "at most 366 days" in text_of(ten_years)
        garbage = await run(flow, "/report yesterday-ish")
        assert garbage.error == "report_bad_period" and "Not a period: yesterday-ish" in text_of(garbage)
        zh = await run(flow, "/report 2015-01-01..2025-01-01", "zh_CN")
        assert "报表最长 366 天" in text_of(zh)
        refused = [e.detail.get("refused") for e in await admin_audit(app) if e.detail.get("refused")]
        assert refused[:3] == ["report_backwards", "report_too_long", "report_bad_period"]
