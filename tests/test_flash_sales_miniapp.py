"""A flash sale on the Mini App / H5 product JSON (bots/miniapp/api.py): the flash price in the host's currency,
the units left, the window (the page counts down to its start or end); sold out: the ordinary price again."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.flash_sales import FlashDesk, SaleSpec
from tests.helpers import buyer, import_n, product_id
from tests.test_miniapp_api import open_miniapp


async def test_the_product_json_shows_the_flash_price_units_left_and_the_window(db_url: str, tmp_path: Path) -> None:
    async with open_miniapp(db_url, tmp_path) as kit:
        app = kit.app
        await import_n(app, 5, "CARD10")
        pid = await product_id(app, "CARD10")
        now = app.clock.now()
        desk = FlashDesk(app.shop.uow, app.clock.now)
        live = await desk.create(SaleSpec("CARD10", 500, 2, 1, now - timedelta(minutes=1), now + timedelta(hours=1)),
                                 "test")
        upcoming = await desk.create(SaleSpec("STREAM", 1500, 3, 1, now + timedelta(hours=2),
                                              now + timedelta(hours=3), stars=90), "test")

        status, body = await kit.get(f"/products/{pid}")
        assert status == 200, body
        p = body["product"]
        assert p["price"]["amount"] == 35 and p["list_price"]["amount"] == 70  # Stars: the Mini App is Telegram's
        flash = p["flash"]
        assert (flash["state"], flash["left"], flash["units"], flash["per_buyer"]) == ("live", 2, 2, 1)
        assert flash["ends_at"] == live.ends_at.isoformat() and flash["price"]["currency"] == "XTR"

        status, body = await kit.get("/catalog")
        items = {x["sku"]: x for x in body["products"]}
        assert items["CARD10"]["flash"]["state"] == "live"
        stream = items["STREAM"]["flash"]
        assert (stream["state"], stream["price"]["amount"], stream["starts_at"]) == (
            "upcoming", 90, upcoming.starts_at.isoformat())
        assert items["STREAM"]["price"]["amount"] == 200  # not started: the ordinary price

        for i in range(2):
            await app.shop.reserve(buyer(i), pid, 1, "en")
        status, body = await kit.get(f"/products/{pid}")
        p = body["product"]
        assert (p["flash"]["state"], p["flash"]["left"], p["price"]["amount"]) == ("sold_out", 0, 70)
        assert "list_price" not in p
