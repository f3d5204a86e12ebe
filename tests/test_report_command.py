"""`/report` through the merchant's AdminFlow on a real store (SQLite and PostgreSQL): today's figures after real
sales and a refund, in English and Chinese; periods that make no sense refused with why, and audited."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import SKU, import_n, open_shop
from tests.test_admin_flow import CATALOG, admin_audit, delivered_order, flow_for, run, text_of


async def test_report_today_shows_the_days_sales_refunds_and_repeat_buyers(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 10)
        await delivered_order(app, "ann")
        await delivered_order(app, "ann", qty=2)
        refunded = await delivered_order(app, "bob")
        flow = flow_for(app)
        assert (await run(flow, f"/refund {refunded.id}")).error is None
        screen = await run(flow, "/report")
        assert screen.error is None, text_of(screen)
        body = text_of(screen)
        today = app.clock.now().date().isoformat()
        assert f"Report {today}..{today} (UTC)" in body
        assert "Orders paid: 3" in body and "Refunds: 1 (33%)" in body
        assert "Buyers: 2 (50% bought again)" in body  # Ann paid twice, Bob once
        assert "Revenue: CN¥30.00" in body and "Average order: CN¥15.00" in body  # Ann's 1 + 2 cards of 10.00
        assert "  test: 3 orders, CN¥30.00" in body  # the test buyers' channel, named as it is
        assert f"{SKU}: 3 units" in body
        zh = text_of(await run(flow, "/report 7d", "zh_CN"))
        assert "已付款订单：3" in zh and "退款：1" in zh and "复购率 50%" in zh
        audit = await admin_audit(app)
        assert any(e.detail.get("period") == f"{today}..{today}" for e in audit)


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
