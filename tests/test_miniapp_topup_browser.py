"""A top-up (直充) bought on the shop page in a real browser (Chromium via Playwright), against the real store, its
aiogram bot polling the fake Bot API, and the local fake supplier; tests/miniapp_stub.js is the Telegram client.
The buyer types the account, is told when it does not fit (the page's own early check, then the server's refusal
under the field), buys, pays through the bot's own path and sees the supplier's top-up of that account done."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from core.supply import poll_topups
from tests.fake_supplier import FakeSupplier
from tests.test_miniapp_orders import mini_app
from tests.test_miniapp_page_browser import BUYER, card, main_button, open_page, page_url, until, user
from tests.test_miniapp_topup import PROMPT, REFUSAL, topups
from tests.test_telegram_topup import TOPUP


@pytest.fixture
async def supplier() -> AsyncIterator[FakeSupplier]:
    server = await FakeSupplier().start()
    yield server
    await server.stop()


async def test_a_buyer_types_the_account_buys_the_topup_and_sees_it_done(page: Page, tmp_path: Path,
                                                                         supplier: FakeSupplier) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [TOPUP]}
    async with mini_app(tmp_path, extra=extra) as shop:
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        await open_page(page, page_url(shop), user())
        await card(page, "China Mobile ¥30").click()
        await expect(page.get_by_role("heading", name="China Mobile ¥30")).to_be_visible()

        # a labelled field with a number pad and the chat's prompt; no quantity; Buy waits for the account
        field = page.get_by_label("Account to top up")
        await expect(field).to_have_attribute("inputmode", "tel")
        await expect(page.locator("#account-hint")).to_have_text(PROMPT)
        await expect(page.get_by_text("Check the account: a top-up cannot be taken back.")).to_be_visible()
        await expect(page.locator("#qty")).to_have_count(0)
        assert await main_button(page) == {"visible": True, "active": False, "text": "Buy · ⭐200"}
        await page.evaluate("window.__tg.pressMain()")  # an inactive button does nothing
        await field.fill("   ")
        assert (await main_button(page))["active"] is False  # spaces are not an account

        # a number that does not fit: the page says so as the buyer leaves the field (Buy stays: the server decides)
        await field.fill("12345")
        assert (await main_button(page))["active"] is True
        await field.press("Tab")
        error = page.locator("#account-error")
        await expect(error).to_have_text("This does not look like an account for this top-up. Please check it.")
        await expect(field).to_have_attribute("aria-invalid", "true")

        # bought anyway: the server's refusal under the field, the number kept, nothing held or invoiced
        await page.evaluate("window.__tg.pressMain()")
        await expect(error).to_have_text(REFUSAL)
        await expect(field).to_have_value("12345")
        await expect(field).to_be_focused()
        assert await page.evaluate("window.__tg.invoices") == [] and await shop.held_by(BUYER) == []

        # corrected (typed as people type phone numbers): the refusal goes, the invoice opens
        await field.fill("138 0013 8000")
        await expect(error).to_be_hidden()
        await page.evaluate("window.__tg.pressMain()")
        await until(page, "window.__tg.invoices.length === 1")
        link = (await page.evaluate("window.__tg.invoices"))[0]
        assert shop.api.invoice_of(link)["total_amount"] == 200

        # paid through the bot: the order screen shows the account, waiting for the supplier, then done
        pre, paid = shop.api.pay_link_updates(shop.api.user(BUYER, language_code="en"), link)
        await shop.shop.send(pre)
        await shop.shop.send(paid)
        await page.evaluate("window.__tg.closeInvoice('paid')")
        await expect(page.locator("#order-account")).to_have_text("Account: 13800138000")
        await expect(page.locator('[data-state="pending"]')).to_have_text(
            "Paid — the supplier is topping up 13800138000. The chat will tell you when it is done.", timeout=10_000)
        await shop.shop.app.shop.dispatcher.drain()
        [asked] = topups(supplier)
        assert asked["account"] == "13800138000"
        supplier.finish(asked["request_id"], "success")
        assert await poll_topups(shop.shop.app.shop) == 1
        await expect(page.locator('[data-state="delivered"]')).to_have_text(
            "Done — 13800138000 has been topped up.", timeout=10_000)
        await expect(page.locator("#reveal")).to_have_count(0)  # a top-up has no codes to show
        assert not problems, problems


async def test_a_topup_the_supplier_fails_says_the_payment_is_refunded(page: Page, tmp_path: Path,
                                                                       supplier: FakeSupplier) -> None:
    supplier.topup_status = "failed"  # the operator refuses the number
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [TOPUP]}
    async with mini_app(tmp_path, extra=extra) as shop:
        await open_page(page, page_url(shop), user())
        await card(page, "China Mobile ¥30").click()
        await page.get_by_label("Account to top up").fill("13800138000")
        await page.evaluate("window.__tg.pressMain()")
        await until(page, "window.__tg.invoices.length === 1")
        link = (await page.evaluate("window.__tg.invoices"))[0]
        pre, paid = shop.api.pay_link_updates(shop.api.user(BUYER, language_code="en"), link)
        await shop.shop.send(pre)
        await shop.shop.send(paid)
        await page.evaluate("window.__tg.closeInvoice('paid')")
        await shop.shop.app.shop.dispatcher.drain()
        await expect(page.get_by_role("alert")).to_have_text(
            "This order could not be completed: your payment is being refunded. The chat tells you more.",
            timeout=10_000)
        await expect(page.locator("#order-account")).to_have_text("Account: 13800138000")
        await shop.api.wait_for("refundStarPayment")  # the Stars went back through the bot
