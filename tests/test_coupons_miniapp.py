"""A coupon in the Mini App (`POST /app/api/orders` with `coupon`, bots/miniapp/api.py): the order is priced by the
core pipeline, the invoice link asks for the lower Stars price; a wrong, used-up or malformed coupon is refused in
words (or as a malformed field) and holds nothing."""
from __future__ import annotations

from pathlib import Path

from core.coupons import PERCENT, Terms
from tests.test_miniapp_orders import mini_app


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
