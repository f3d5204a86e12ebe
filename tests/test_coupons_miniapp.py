"""A coupon in the Mini App (`POST /app/api/orders` with `coupon`, bots/miniapp/api.py): the order is priced by the
core pipeline, the invoice link asks for the lower Stars price; a wrong, used-up or malformed coupon is refused in
words (or as a malformed field) and holds nothing."""
from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from core.coupons import PERCENT, Terms
from core.supply import import_codes
from tests.test_miniapp_orders import mini_app
from tests.test_miniapp_page_browser import BUYER, CATALOG, card, open_page, page_url, until, user


async def test_a_mini_app_order_with_a_coupon_is_invoiced_at_the_coupon_price(tmp_path: Path) -> None:
    async with mini_app(tmp_path) as page:
        await page.shop.stock(3)
        await page.shop.app.shop.coupons.create("APP10", "APPCODE10", Terms(PERCENT, 10, "CNY", total_limit=1))
        gid = await page.pid("GAME")

        status, body = await page.order(gid, 1, 601, coupon="appcode10")
        assert status == 201, body
        assert body["order"]["amount"]["amount"] == 63 and body["order"]["discount"]["amount"] == 100
        assert page.api.invoice_of(body["pay"]["url"])["total_amount"] == 63

        for coupon, code, http in (("APPCODE10", "coupon_exhausted", 409), ("WRONGCODE", "coupon_unknown", 422)):
            status, body = await page.order(gid, 1, 602, coupon=coupon)
            assert (status, body["error"]["code"]) == (http, code), body
            assert body["error"]["message"]
        for bad in (12, "X" * 65, None):
            status, body = await page.order(gid, 1, 602, coupon=bad)
            assert (status, body["error"]["field"]) == (400, "coupon")
        status, body = await page.order(gid, 1, 602, coupons="APPCODE10")  # unknown fields are still refused
        assert (status, body["error"]["field"]) == (400, "coupons")
        assert await page.held_by(602) == [] and await page.available("GAME") == 2


async def test_the_mini_app_page_takes_a_coupon_and_opens_the_invoice_at_its_price(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        app = shop.shop.app
        await import_codes(app.db.uow, app.vault, app.clock, "LIMITED", [b"GIFT-1\n", b"GIFT-2\n"])
        await app.shop.coupons.create("PAGE", "PAGECODE1", Terms(PERCENT, 10, "CNY"))
        await open_page(page, page_url(shop), user())
        await card(page, "Gift card").click()
        await page.get_by_label("Coupon code (optional)").fill("WRONG-CODE")
        await page.evaluate("window.__tg.pressMain()")
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("That coupon code is not valid")
        assert await page.evaluate("window.__tg.invoices") == [] and await shop.held_by(BUYER) == []
        await expect(page.get_by_label("Coupon code (optional)")).to_have_value("WRONG-CODE")  # kept to correct
        await page.get_by_label("Coupon code (optional)").fill("pagecode1")
        await page.evaluate("window.__tg.pressMain()")
        await until(page, "window.__tg.invoices.length === 1")
        link = (await page.evaluate("window.__tg.invoices"))[0]
        assert shop.api.invoice_of(link)["total_amount"] == 9  # 10 Stars, a tenth off
