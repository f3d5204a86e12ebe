"""Direct top-up (直充) through the real Telegram storefront: the buyer taps Buy, types the phone number,
confirms it, pays with Stars, and is told when the supplier has topped the number up. Both libraries, the
local fake Bot API and the local fake supplier."""
from __future__ import annotations

import pytest

from bots.telegram.common import buyer_of
from core.models import OrderStatus
from core.supply import poll_topups
from tests.fake_bot_api import FakeBotAPI
from tests.fake_supplier import FakeSupplier
from tests.telegram_harness import Shopfront, buttons

TOPUP = {"sku": "CM-30", "title": {"en": "China Mobile ¥30", "zh_CN": "中国移动话费 30 元"}, "price": 3000,
         "stars": 200, "kind": "topup", "supplier": "up", "supplier_sku": "SUP-CM-30", "cost": 2940,
         "account_pattern": r"^1[3-9]\d{9}$"}


@pytest.fixture
async def supplier():
    server = await FakeSupplier().start()
    yield server
    await server.stop()


async def test_given_a_topup_when_the_buyer_types_a_wrong_then_a_right_number_pays_and_the_supplier_finishes(
        api: FakeBotAPI, supplier: FakeSupplier, tmp_path, library: str) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [TOPUP]}
    async with Shopfront(api, tmp_path, library=library, extra=extra) as shop:
        ann, chat = api.user(901, "Ann", "en"), {"id": 901, "type": "private"}
        pid = (await shop.app.shop.product_by_sku("CM-30")).id

        def last_to_ann():  # noqa: ANN202
            return api.calls("sendMessage")[-1] if api.calls("sendMessage") else None

        await shop.send(api.callback_update(ann, f"product:{pid}", {"message_id": 1, "chat": chat, "date": 0}))
        page = last_to_ann()
        assert "China Mobile" in page.params["text"] and buttons(page)[0]["text"] == "Buy"
        await shop.send(api.callback_update(ann, buttons(page)[0]["callback_data"], page.result))
        assert api.calls("sendInvoice") == []  # nothing is held before the number is known

        await shop.send(api.message_update(ann, "12345"))  # not a mainland mobile number: asked again
        assert "12345" in last_to_ann().params["text"] and api.calls("sendInvoice") == []
        await shop.send(api.message_update(ann, "138 0013 8000"))
        confirm = last_to_ann()
        assert "13800138000" in confirm.params["text"]
        confirm_data = next(b["callback_data"] for b in buttons(confirm)
                            if b["callback_data"].startswith("topup_confirm:"))
        await shop.send(api.callback_update(ann, confirm_data, confirm.result))
        [invoice] = api.calls("sendInvoice")
        order_id, stars = invoice.params["payload"], invoice.params["prices"][0]["amount"]
        assert stars == 200

        await shop.send(api.pre_checkout_update(ann, order_id, stars))
        assert api.calls("answerPreCheckoutQuery")[-1].params["ok"] is True
        await shop.send(api.successful_payment_update(ann, order_id, stars, "charge-topup"))
        await shop.app.shop.dispatcher.drain()
        request_id = f"T{order_id}"
        assert supplier.orders[request_id].account == "13800138000" and supplier.purchases[request_id] == 1
        order, _ = await shop.app.shop.order_for(order_id, buyer_of(901))
        assert order.status is OrderStatus.PENDING

        supplier.finish(request_id, "success")  # the operator tops the number up; the store asks and learns it
        assert await poll_topups(shop.app.shop) == 1
        await shop.app.shop.dispatcher.drain()
        order, _ = await shop.app.shop.order_for(order_id, buyer_of(901))
        assert order.status is OrderStatus.DELIVERED
        done = last_to_ann()
        assert done.params["chat_id"] == 901 and "13800138000" in done.params["text"]
        assert supplier.purchases[request_id] == 1 and api.calls("refundStarPayment") == []
