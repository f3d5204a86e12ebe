"""The issue's journey in a real browser (headless Chromium through Playwright) against the real store: the Telegram
bot (aiogram, polling the local fake Bot API) and the console on the store's HTTP server, on SQLite and PostgreSQL.

A merchant sends `/console` to the bot, opens the link, sees today's figures, uploads a codes file and watches the
progress reach 100 %, sees the new stock, refunds a paid Stars order (the Bot API gets `refundStarPayment`), and
finds both actions in the audit log. And the refusals on the way: the same link again, a POST without the CSRF
token, staff on an owner page, a buyer asking for `/console`."""
from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page

from bots.http import HttpServer
from bots.web import mount_console
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront
from tests.test_telegram_admin import BOSS, command, sold_order

STAFF_ID = 77
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/console/login\?t=[A-Za-z0-9_-]+)")


async def test_a_merchant_runs_the_shop_from_the_console(api: FakeBotAPI, db_url: str, tmp_path: Path,
                                                         page: Page) -> None:
    extra = {"database": {"url": db_url},
             "console": {"enabled": True, "staff": [f"telegram:{STAFF_ID}"]}}
    async with Shopfront(api, tmp_path, extra=extra) as shop:
        server = HttpServer("127.0.0.1", 0)
        mount_console(server, shop.app)
        await server.start()
        try:
            desk = shop.app.shop.console
            assert desk is not None
            desk.base_url = base = f"http://127.0.0.1:{server.port}"
            await shop.stock(2)
            order_id, _ = await sold_order(shop, api.user(501, "Ann"), "charge-journey")

            # /console in the chat: a link for the merchant; a buyer is refused
            found = LINK.search(await command(shop, api.user(BOSS, "Boss"), "/console"))
            assert found, "no sign-in link in the bot's answer"
            link = found.group(1)
            assert "/console/login" not in await command(shop, api.user(502, "Bob"), "/console")

            # the link signs in; the dashboard shows today's figures: one Stars order of 70
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(link)
            await page.wait_for_selector('[data-figure="orders"]')
            assert await page.locator('[data-figure="orders"]').inner_text() == "1"
            assert "70" in await page.locator('[data-figure="revenue-XTR"]').inner_text()  # paid in Stars
            assert await page.locator('#stock-alerts').count() == 1

            # upload codes; the bar reaches 100 %; the products page shows the new stock
            codes = tmp_path / "codes.txt"
            codes.write_text("".join(f"JOURNEY-{i:05d}\n" for i in range(500)))
            await page.goto(base + "/console/codes")
            await page.select_option("#import-sku", "GAME")
            await page.set_input_files("#import-file", str(codes))
            await page.click("#import-submit")
            await page.wait_for_selector('#import-report[data-imported="500"]', timeout=30_000)
            assert await page.locator("#import-bar").evaluate("bar => bar.value") == 100
            await page.goto(base + "/console/products")
            row = page.locator('tr[data-sku="GAME"]')
            assert await row.locator('[data-stock="available"]').inner_text() == "501"  # 2 - 1 sold + 500

            # refund the Stars order from its page: the Bot API is asked to refund the charge
            await page.goto(f"{base}/console/orders/{order_id}")
            page.once("dialog", lambda d: d.accept())
            await page.click("#refund button")
            await page.wait_for_selector('[data-done="refund"]')
            refund = await api.wait_for("refundStarPayment", lambda c: True)
            assert refund.params["telegram_payment_charge_id"] == "charge-journey"

            # both actions in the audit log, with the merchant's identity
            await page.goto(base + "/console/audit")
            rows = page.locator('tr[data-action="admin"]')
            text = " ".join(await rows.all_inner_texts())
            assert "refund" in text and "import" in text and order_id in text
            assert f"telegram:{BOSS}" in text

            # refusals: the same link again; a POST without the CSRF token (nothing done: still signed in)
            used = await page.context.new_page()
            await used.goto(link)
            await used.wait_for_selector('[data-refusal="link_used"]')
            await used.close()
            answer = await page.request.post(base + "/console/logout", form={})
            assert answer.status == 403
            await page.goto(base + "/console/")
            await page.wait_for_selector('[data-figure="orders"]')
            assert problems == []

            # staff: signed in by their own link, kept off the owner pages
            staff_link = LINK.search(await command(shop, api.user(STAFF_ID, "Sam"), "/console"))
            assert staff_link
            browser = page.context.browser
            assert browser is not None
            staff = await browser.new_context()
            try:
                p = await staff.new_page()
                await p.goto(staff_link.group(1))
                await p.wait_for_selector('[data-figure="orders"]')
                assert await p.locator('[data-figure^="revenue"]').count() == 0
                for owner_page in ("/console/reports", "/console/audit", "/console/resellers"):
                    resp = await p.goto(base + owner_page)
                    assert resp is not None and resp.status == 403, owner_page
                    await p.wait_for_selector('[data-refusal="owner_only"]')
            finally:
                await staff.close()
        finally:
            await server.stop()
