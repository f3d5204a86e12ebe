"""A live flash sale on the shop page in a real browser (tests/test_miniapp_page_browser.py's harness): the flash
price in Stars, "N left" and a countdown that ticks; Buy costs the flash price."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page, expect

from tests.test_miniapp_orders import mini_app
from tests.test_miniapp_page_browser import card, main_button, open_page, page_url, user


async def test_the_product_page_shows_the_flash_price_units_left_and_a_ticking_countdown(
        page: Page, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    sale = {"marketing": {"flash_sales": {"sales": [
        {"sku": "GAME", "price": 500, "units": 2, "per_buyer": 1, "starts": (now - timedelta(minutes=1)).isoformat(),
         "ends": (now + timedelta(hours=1)).isoformat()}]}}}
    async with mini_app(tmp_path, extra=sale) as shop:
        await shop.shop.stock(3)
        await open_page(page, page_url(shop), user())
        await card(page, "Game card").click()
        await expect(page.get_by_role("heading", name="Game card")).to_be_visible()
        flash = page.locator("#flash")
        await expect(flash).to_contain_text("⚡ Flash sale: 2 left · ends in 00:5")
        first = await flash.text_content()
        await expect(flash).not_to_have_text(first or "")  # a second later: it ticks
        assert (await main_button(page))["text"] == "Buy · ⭐35"  # 70 Stars at half the price
