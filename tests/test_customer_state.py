"""A buyer's language and conversation state are written field by field: two updates of the same buyer that
read the customer at the same time (a language switch and a delivery remembering its screen, or two processes)
each keep what they changed. Real SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import buyer, open_shop


async def test_given_a_language_switch_and_a_delivery_racing_then_neither_change_is_lost(db_url: str,
                                                                                            tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        ann = buyer("ann")
        first = await app.shop.customer(ann, "en")
        first.state["actions"] = ["p:1"]
        await app.shop.save_customer(first)

        # Both read the customer before either writes (fresh: as another process would).
        switch = await app.shop.customer(ann, fresh=True)
        delivery = await app.shop.customer(ann, fresh=True)
        switch.language = "zh_CN"
        delivery.state["actions"] = ["o:261204ABCDEFGH"]
        delivery.state["challenge"] = {"token": "t1"}
        await app.shop.save_customer(switch)
        await app.shop.save_customer(delivery)

        stored = await app.shop.customer(ann, fresh=True)
        assert stored.language == "zh_CN"
        assert stored.state == {"actions": ["o:261204ABCDEFGH"], "challenge": {"token": "t1"}}

        # A key one update removes is removed; a key the other update never touched stays.
        a = await app.shop.customer(ann, fresh=True)
        b = await app.shop.customer(ann, fresh=True)
        del a.state["challenge"]
        b.state["pending"] = "report"
        await app.shop.save_customer(a)
        await app.shop.save_customer(b)
        stored = await app.shop.customer(ann, fresh=True)
        assert stored.state == {"actions": ["o:261204ABCDEFGH"], "pending": "report"}
        assert stored.language == "zh_CN"
