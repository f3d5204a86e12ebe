"""The console's dashboard: what waits for the merchant — a failing supplier (as the jobs record it), a pool
running low, figures of today — read from where the jobs and the chat put them."""
from __future__ import annotations

from pathlib import Path

from tests.console_kit import OWNER, open_console
from tests.helpers import import_n


async def test_the_dashboard_names_failing_suppliers_and_low_stock(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        await import_n(kit.app, 2)
        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/")
            assert status == 200 and "Failing suppliers: <b>-</b>" in html
            await kit.web.health.failed("acme", TimeoutError())  # the supplier's last call failed
            status, html = await kit.get(http, "/")
            assert "Failing suppliers: <b>-</b>" in html  # the dashboard's figures are a few seconds old at most
            kit.web.glance.seconds = 0
            status, html = await kit.get(http, "/")
            assert "Failing suppliers: <b>acme</b>" in html
            stock = html.split('id="stock-alerts"')[1].split("</div>")[0]
            assert "CARD-10" in stock and "<b class=\"\">2</b>" in stock
            assert "Open tickets: <b>0</b>" in html
