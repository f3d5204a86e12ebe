"""`/audit ORDER` for merchants: Telegram end to end on both libraries (the local fake Bot API), and the same
text command on WeChat (signed XML to /wechat). Every reveal is listed (who, when, channel, chat), never a code;
the command is audited; anyone else is refused (and that is audited too)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bots.telegram.common import buyer_of
from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.telegram_harness import Shopfront
from tests.test_telegram_admin import BOSS, admin_commands, command, sold_order, texts_to
from tests.test_wechat_storefront import buy_game
from tests.wechat_harness import ADMIN, APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop


async def delivered_recorded(shop: Shopfront, order_id: str) -> None:
    """The delivery's audit entry is written once the outbox marks the send done (just after the message)."""
    for _ in range(100):
        if any(e.action == "deliver" for e in await shop.app.shop.audit_for(order_id)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no deliver entry")


async def test_audit_lists_every_reveal_with_chat_and_channel_but_never_a_code(api: FakeBotAPI, tmp_path: Path,
                                                                              library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(3)
        ann = api.user(501)
        order_id, code = await sold_order(shop, ann, "charge-a")
        await delivered_recorded(shop, order_id)
        for chat in ("501", "-100777"):
            await shop.app.shop.reveal(order_id, buyer_of(501), chat=chat)
        boss = api.user(BOSS, "Boss")
        mark = api.mark()

        text = await command(shop, boss, f"/audit {order_id}")
        assert f"Audit trail of order {order_id}" in text
        assert "telegram:501" in text and "GAME × 1" in text
        reveal_lines = [ln for ln in text.splitlines() if ln.split(" ")[2:3] == ["reveal"]]
        assert len(reveal_lines) == 2
        assert "chat=501" in reveal_lines[0] and "chat=-100777" in reveal_lines[1]
        assert all("· telegram:501 · telegram" in ln for ln in reveal_lines)
        assert any(" deliver (delivered) · system · telegram" in ln for ln in text.splitlines())
        assert "run.py audit export --order" in text
        assert not any(c in t for t in texts_to(api, BOSS, mark) for c in codes) and code in codes

        assert (await admin_commands(shop))[-1] == {"command": "audit", "entries": 3}
        # The audit command itself now shows in the order's trail.
        again = await command(shop, boss, f"/audit {order_id.lower()}")
        assert "command=audit" in again and "entries=3" in again

        assert "does not exist" in await command(shop, boss, "/audit 261125NOSUCH00")
        assert "/audit ID" in await command(shop, boss, "/audit")


async def test_audit_from_someone_who_is_not_a_merchant_is_refused_and_recorded(api: FakeBotAPI,
                                                                                tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(2)
        ann, eve = api.user(501), api.user(666, "Eve")
        order_id, _ = await sold_order(shop, ann, "charge-e")
        answer = await command(shop, eve, f"/audit {order_id}")
        assert "Not allowed" in answer and order_id not in answer
        assert await admin_commands(shop, "telegram:666", "admin_denied") == [{"command": "/audit"}]
        assert await admin_commands(shop) == []


async def test_audit_on_wechat_as_a_text_command(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        pay = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
        try:
            async with WeChatShop(api, tmp_path, pay=pay) as shop:
                codes = await shop.stock(2)
                ann = Buyer("wechat", "o-ann")
                order_id = await buy_game(shop, "o-ann")
                assert (await shop.pay_notice(order_id, "o-ann"))[0] == 200
                await shop.idle()
                order, _ = await shop.app.shop.order_for(order_id, ann)
                await shop.app.shop.reveal(order.id, ann, chat="o-ann")

                text = await shop.wx.text(ADMIN, f"/audit {order.id}")
                assert f"订单 {order.id} 的审计记录" in text and "再次查看" in text and "chat=o-ann" in text
                assert not any(c in text for c in codes)
                assert "无权操作" in await shop.wx.text("o-ann", f"/audit {order.id}")
                async with shop.app.db.uow() as uow:
                    mine = await uow.audit.latest("admin", f"wechat:{ADMIN}")
                    denied = await uow.audit.latest("admin_denied", "wechat:o-ann")
                assert mine[0].detail == {"command": "audit", "entries": 2} and mine[0].order_id == order.id
                assert denied[0].detail == {"command": "/audit"}
        finally:
            await pay.stop()


async def _press(shop: Shopfront, user: dict, data: str) -> None:
    here = {"message_id": 1, "chat": {"id": user["id"], "type": "private"}, "date": 0}
    await shop.send(shop.api.callback_update(user, data, here))


async def test_a_ticket_from_the_buyer_reaches_the_merchant_who_reissues_or_rejects_it(api: FakeBotAPI,
                                                                                      tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        codes = await shop.stock(4)
        ann, boss = api.user(501), api.user(BOSS, "Boss")
        first, old = await sold_order(shop, ann, "charge-t1")
        second, _ = await sold_order(shop, ann, "charge-t2")
        await delivered_recorded(shop, first)

        # The buyer reports "wrong product" from My orders: outside the automatic policy, a ticket.
        mark = api.mark()
        await _press(shop, ann, f"rp:{first}:wrong_product")
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "went to the shop" in told.params["text"]
        alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert first in alert.params["text"] and "wrong_product" in alert.params["text"]

        # The merchant answers it with a reissue: the buyer gets "a new code" and the code, once.
        mark = api.mark()
        answer = await command(shop, boss, f"/reissue {first}")
        assert "1 new code(s)" in answer and "telegram:501" in answer
        new = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501
                                 and "tg-spoiler" in c.params["text"], since=mark)
        fresh = new.params["text"].split("<code>")[1].split("</code>")[0]
        assert fresh in codes and fresh != old
        assert any("new code for order" in t for t in texts_to(api, 501, mark))
        assert not any(c in t for t in texts_to(api, BOSS, mark) for c in codes)

        # Another ticket is turned down with a reason the buyer reads in the chat.
        mark = api.mark()
        await command(shop, boss, f"/reject {second} The code was redeemed on 11-25 at 09:14 from your account")
        rejected = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "redeemed on 11-25" in rejected.params["text"] and second in rejected.params["text"]
        assert [d["command"] for d in await admin_commands(shop)] == ["reissue", "reject"]
        trail = await shop.app.shop.audit_for(first)
        assert [e.detail.get("outcome") for e in trail if e.action in ("report", "reissue")] == ["ticket", "reissued"]
        assert "does not exist" in await command(shop, boss, "/reissue 261125NOSUCH00")
        assert "/reject ID TEXT" in await command(shop, boss, f"/reject {second}")
