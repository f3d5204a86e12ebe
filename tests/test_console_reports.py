"""The console's reports page over HTTP: a period's figures over orders seeded on three days (the answers counted
here from the orders themselves), the charts as SVG, bad periods refused with why, staff kept out."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.clock import FakeClock
from core.models import Order
from locales import Translator
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import buyer, import_n, pay, product_id, settle

START = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)  # noon in Shanghai, early morning in Europe: the same date in both


async def _seed(kit: ConsoleKit, clock: FakeClock) -> tuple[list[Order], Order, list[str]]:
    """Three days of sales: alice 2 codes, bob 1 (refunded on the last day), alice 1 more; (orders, refunded, the
    codes imported)."""
    codes = await import_n(kit.app, 10)
    pid = await product_id(kit.app)
    orders = []
    for who, qty in (("alice", 2), ("bob", 1), ("alice", 1)):
        order = await kit.app.shop.reserve(buyer(who), pid, qty, "en")
        await pay(kit.app, order)
        await settle(kit.app)
        orders.append(order)
        clock.advance(days=1)
    clock.advance(days=-1, hours=1)
    await kit.web.admin.refund(OWNER, orders[1].id)
    await settle(kit.app)
    return orders, orders[1], codes


def _figure(html: str, name: str) -> str:
    start = html.index(f'data-figure="{name}">') + len(f'data-figure="{name}">')
    return html[start:html.index("<", start)]


async def test_the_figures_of_a_period_and_its_charts(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_console(db_url, tmp_path, clock=clock) as kit:
        orders, refunded, _ = await _seed(kit, clock)
        kept = [o for o in orders if o.id != refunded.id]
        currency = orders[0].currency
        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/reports?period=7d")
            assert status == 200
            assert _figure(html, "orders") == "3"
            assert _figure(html, f"revenue-{currency}") == Translator.money(sum(o.amount for o in kept), currency, "en")
            assert _figure(html, "buyers") == "2"
            assert _figure(html, "repeat") == "50%"  # alice bought twice, bob once
            assert _figure(html, "refunds") == "1 · 33%"
            assert _figure(html, f"refunded-{currency}") == Translator.money(refunded.amount, currency, "en")
            assert 'data-product="CARD-10"' in html and 'data-cover="CARD-10"' in html
            funnel = html[html.index('data-funnel="test"'):]
            funnel = funnel[:funnel.index("</tr>")]
            assert 'data-stage="paid">3<' in funnel and 'data-stage="delivered">2<' in funnel  # one was refunded
            assert 'data-chart="funnel"' in html

            status, html = await kit.get(http, "/reports?period=today")
            assert _figure(html, "orders") == "1"
            assert _figure(html, f"revenue-{currency}") == Translator.money(kept[-1].amount, currency, "en")
            day_one = (START.date()).isoformat()
            status, html = await kit.get(http, f"/reports?from={day_one}")  # one day: the first
            assert _figure(html, "orders") == "1" and f'data-period="{day_one}..{day_one}"' in html

            label = f"{(START + timedelta(days=-4)).date()}..{(START + timedelta(days=2)).date()}"
            for name in ("daily", "funnel", "top"):
                async with http.get(f"{kit.base}/console/reports/charts/{name}.svg?period={label}") as r:
                    svg = await r.text()
                    assert r.status == 200 and r.content_type == "image/svg+xml"
                assert svg.lstrip().startswith("<?xml") and "<svg" in svg and 5_000 < len(svg) < 2_000_000
            assert (await kit.get(http, "/reports/charts/nope.svg"))[0] == 404
            assert (await kit.get(http, "/reports/charts/daily.svg?period=banana"))[0] == 400

        async with kit.app.shop.uow() as uow:
            looks = [e.detail for e in await uow.audit.latest("admin", OWNER.key) if e.detail["command"] == "report"]
        assert {"command": "report", "period": f"{START.date() - timedelta(days=4)}..{START.date() + timedelta(days=2)}"
                } in looks


async def test_bad_periods_are_refused_with_why_and_staff_kept_out(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_console(db_url, tmp_path, clock=clock) as kit:
        async with kit.client(OWNER) as http:
            for query, code in (("period=banana", "report_bad_period"), ("period=0d", "report_bad_period"),
                                ("from=2026-03-05&to=2026-03-01", "report_backwards"),
                                ("from=2016-01-01&to=2026-01-01", "report_too_long"),
                                ("period=999d", "report_too_long"),
                                ("from=2026-04-01", "report_future"), ("from=2026-02-30", "report_bad_period")):
                status, html = await kit.get(http, "/reports?" + query)
                assert status == 400 and f'data-refusal="{code}"' in html, query
                assert 'data-figure="orders"' not in html
        async with kit.client(STAFF) as http:
            for path in ("/reports", "/reports?period=30d", "/reports/charts/daily.svg"):
                status, html = await kit.get(http, path)
                assert status == 403 and 'data-refusal="owner_only"' in html, path


async def test_the_periods_orders_as_csv_never_a_code_and_audited(db_url: str, tmp_path: Path, monkeypatch) -> None:
    clock = FakeClock(START)
    async with open_console(db_url, tmp_path, clock=clock) as kit:
        orders, refunded, codes = await _seed(kit, clock)
        label = f"{START.date()}..{(START + timedelta(days=2)).date()}"
        async with kit.client(OWNER) as http:
            async with http.get(f"{kit.base}/console/reports/orders.csv?period={label}") as r:
                assert r.status == 200 and r.content_type == "text/csv"
                name = f"orders_{label.replace('..', '_')}.csv"
                assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
                text = (await r.read()).decode("utf-8-sig")
            rows = [line.split(",") for line in text.strip().splitlines()]
            assert rows[0][0] == "order" and sorted(r[0] for r in rows[1:]) == sorted(o.id for o in orders)
            assert {r[0]: r[4] for r in rows[1:]}[refunded.id] == "refunded"
            assert not [c for c in codes if c in text]

            # refused: a bad period, and a period with more orders than one file takes; nothing exported
            status, html = await kit.get(http, "/reports/orders.csv?period=2026-03-09..2026-03-01")
            assert status == 400 and 'data-refusal="report_backwards"' in html
            monkeypatch.setattr("core.reports.desk.MAX_ROWS", 2)
            status, html = await kit.get(http, f"/reports/orders.csv?period={label}")
            assert status == 400 and 'data-refusal="report_export_too_big"' in html
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, f"/reports/orders.csv?period={label}")
            assert status == 403 and 'data-refusal="owner_only"' in html
        async with kit.app.shop.uow() as uow:
            [export] = await uow.audit.latest("export")
            refused = [e.detail for e in await uow.audit.latest("admin", OWNER.key) if e.detail.get("refused")]
        assert (export.actor, export.detail["period"], export.detail["rows"]) == (OWNER.key, label, 3)
        assert {d["refused"] for d in refused} >= {"report_backwards", "report_export_too_big"}
