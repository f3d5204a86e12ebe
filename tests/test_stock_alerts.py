"""Back in stock (core/stock_alerts.py): a buyer on a sold-out product asks to be told; when codes come in, the
waiting buyers are told in the order they asked, at most as many as the codes that came; one who bought meanwhile
is dropped; each one is told once even when two refills race. The store on SQLite and PostgreSQL; the chat end to
end on Telegram (both libraries, the fake Bot API) and WeChat (the fake WeChat API)."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

from app import App
from bots.console import BUYER, ConsoleNotifier, run_console
from core import stock_alerts
from core.models import Buyer
from core.stock_alerts import NOTICE, Subscribed
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.dbtemplate import from_template
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.helpers import buyer, import_n, make_settings, open_shop, pay, product_id, settle
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.test_telegram_storefront import browse_to_product
from tests.wechat_harness import APPID, SECRET, WeChatShop, option


async def _subscribe(app, *who: int) -> None:  # noqa: ANN001
    pid = await product_id(app)
    for n in who:
        assert await stock_alerts.subscribe(app.shop, buyer(n), f"chat-{n}", "en", pid) is Subscribed.SUBSCRIBED


def _told(notifier) -> list[str]:  # noqa: ANN001
    return [n.recipient for n in notifier.notices if n.key == NOTICE]


async def _waiting(app) -> list[str]:  # noqa: ANN001
    async with app.db.uow() as uow:
        return [a.chat_id for a in await uow.stock_alerts.waiting(await product_id(app), 100)]


# -- the store --------------------------------------------------------------------------------------------------

async def test_given_three_waiting_when_two_codes_come_in_then_the_first_two_are_told_in_order_and_the_third_waits(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await _subscribe(app, 1, 2, 3)
        await import_n(app, 2)
        await settle(app)
        assert _told(notifier) == ["chat-1", "chat-2"]
        assert notifier.notices[0].params["title"] == "Game card 10"
        assert await _waiting(app) == ["chat-3"]
        await import_n(app, 1)  # the next refill: the third one's turn; nobody is told twice
        await settle(app)
        assert _told(notifier) == ["chat-1", "chat-2", "chat-3"]
        assert await _waiting(app) == []


async def test_given_a_waiting_buyer_who_bought_meanwhile_then_they_are_dropped_not_told(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await _subscribe(app, 1, 2, 3)
        await import_n(app, 1)  # the first one is told
        order = await app.shop.reserve(buyer(2), await product_id(app), 1, "en", "chat-2")
        await pay(app, order)  # the second one bought it before their turn
        await settle(app)
        await import_n(app, 2)
        await settle(app)
        assert _told(notifier) == ["chat-1", "chat-3"]
        assert await _waiting(app) == []
        assert not await stock_alerts.is_waiting(app.shop, buyer(2), await product_id(app))


async def test_given_two_refills_racing_then_each_waiting_buyer_is_told_exactly_once(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await _subscribe(app, 1, 2, 3, 4, 5)
        await asyncio.gather(import_n(app, 2, prefix="A"), import_n(app, 2, prefix="B"))
        await settle(app)
        told = _told(notifier)
        assert sorted(told) == ["chat-1", "chat-2", "chat-3", "chat-4"]  # 4 codes came: 4 told, once each
        assert await _waiting(app) == ["chat-5"]


async def test_given_two_refills_in_open_transactions_at_once_then_the_second_tells_the_next_ones_not_the_same(
        db_url: str, tmp_path: Path) -> None:
    """Both transactions see the same first waiting buyers (PostgreSQL: the second one's marks wait for the first
    one's commit, then find them told and move on; SQLite: one writer at a time)."""
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await _subscribe(app, 1, 2, 3, 4, 5)
        pid = await product_id(app)

        async def refill() -> int:
            async with app.db.uow(write=True) as uow:
                n = await stock_alerts.refilled(uow, pid, 2, app.clock.now())
                await asyncio.sleep(0.2)  # hold the transaction open while the other one runs
                await uow.commit()
            return n

        assert await asyncio.gather(refill(), refill()) == [2, 2]
        await settle(app)
        assert sorted(_told(notifier)) == ["chat-1", "chat-2", "chat-3", "chat-4"]
        assert await _waiting(app) == ["chat-5"]


async def test_given_a_hold_that_lapses_then_its_codes_back_in_the_pool_wake_a_waiting_buyer(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await import_n(app, 1)
        pid = await product_id(app)
        order = await app.shop.reserve(buyer(9), pid, 1, "en", "chat-9")  # the last code is held: sold out
        await _subscribe(app, 1)
        await app.shop.cancel(order.id, buyer(9))
        await settle(app)
        assert _told(notifier) == ["chat-1"]


async def test_subscribing_is_idempotent_unsubscribing_stops_the_notice_and_an_in_stock_product_says_so(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        pid = await product_id(app)
        await _subscribe(app, 1, 2)
        assert await stock_alerts.subscribe(app.shop, buyer(1), "chat-1", "en", pid) is Subscribed.ALREADY
        assert await stock_alerts.unsubscribe(app.shop, buyer(1), pid) is Subscribed.CANCELLED
        assert await stock_alerts.unsubscribe(app.shop, buyer(1), pid) is Subscribed.NOT_WAITING
        await import_n(app, 2)
        await settle(app)
        assert _told(notifier) == ["chat-2"]
        assert await stock_alerts.subscribe(app.shop, buyer(3), "chat-3", "en", pid) is Subscribed.IN_STOCK
        assert await _waiting(app) == []


# -- Telegram ---------------------------------------------------------------------------------------------------

async def _tap(shop: Shopfront, user: dict, data: str):  # noqa: ANN202
    api = shop.api
    mark = api.mark()
    await shop.send(api.callback_update(user, data, api.last_message(user["id"]) or {
        "message_id": 1, "date": 0, "chat": {"id": user["id"], "type": "private"}}))
    return await api.wait_for("sendMessage", lambda c: c.params.get("chat_id") == user["id"], since=mark)


async def test_given_a_sold_out_product_on_telegram_when_the_buyer_taps_notify_me_then_a_refill_tells_them(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        ann, bob = api.user(701, "Ann"), api.user(702, "Bob")
        page = await browse_to_product(shop, ann)
        assert "Sold out" in page.params["text"]
        done = await _tap(shop, ann, data_of(page, "🔔 Notify me when back"))
        assert "we will tell you when it is back" in done.params["text"]
        assert "Cancel the alert" in [b["text"] for b in buttons(done)]
        again = await _tap(shop, ann, data_of(page, "🔔 Notify me when back"))  # the old button, tapped again
        assert "already on the list" in again.params["text"]
        # Bob asks, then changes his mind: he is not told.
        bob_page = await browse_to_product(shop, bob)
        await _tap(shop, bob, data_of(bob_page, "🔔 Notify me when back"))
        bob_done = await _tap(shop, bob, data_of(await _tap(shop, bob, data_of(bob_page, "🔔 Notify me when back")),
                                                 "Cancel the alert"))
        assert "alert is cancelled" in bob_done.params["text"]
        assert "🔔 Notify me when back" in [b["text"] for b in buttons(bob_done)]

        mark = api.mark()
        await shop.stock(1)
        await shop.app.shop.dispatcher.drain()
        notice = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 701, since=mark)
        assert "Back in stock: Game card" in notice.params["text"]
        assert not [c for c in api.calls_since(mark, "sendMessage") if c.params["chat_id"] == 702]
        product = await _tap(shop, ann, data_of(notice, "Open the product"))
        assert "Game card" in product.params["text"]
        assert any(b["callback_data"].startswith("buy:") for b in buttons(product))
        # In stock now: a stale "notify me" gets the clear answer instead of an alert.
        in_stock = await _tap(shop, ann, data_of(page, "🔔 Notify me when back"))
        assert "It is in stock now" in in_stock.params["text"]


async def test_given_garbage_alert_data_then_the_buyer_gets_the_usual_refusal(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        ann = api.user(703)
        for data in ("alert:abc", "alert:", "unalert:-1", "alert:1:2", "alert:" + "9" * 40):
            menu = await _tap(shop, ann, data)  # garbage: the menu, as for any unreadable button
            assert "Catalogue" in str(menu.params.get("reply_markup")), data
        for data in ("alert:999999", "unalert:999999"):  # no such product: refused, nothing stored
            refused = await _tap(shop, ann, data)
            assert "does not exist" in refused.params["text"], data
        async with shop.app.db.uow() as uow:
            assert await uow.stock_alerts.waiting(1, 10) == []
            assert not await uow.stock_alerts.is_waiting(999999, Buyer("telegram", "703"))


# -- WeChat -----------------------------------------------------------------------------------------------------

async def test_given_a_sold_out_product_on_wechat_when_the_buyer_replies_the_alert_number_then_a_refill_tells_them(
        tmp_path: Path) -> None:
    ann = "o-ann"
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path) as shop:
        menu = await shop.wx.subscribe(ann)
        catalog = await shop.wx.text(ann, option(menu, "商品列表"))
        page = await shop.wx.text(ann, option(catalog, "游戏点卡"))
        assert "到货通知我" in page
        done = await shop.wx.text(ann, option(page, "到货通知我"))
        assert "已登记" in done and "取消到货通知" in done
        await shop.stock(1)
        await shop.idle()
        notice = next(t for t in api.texts(ann) if "到货通知" in t)
        assert "游戏点卡" in notice and "查看商品" in notice
        product = await shop.wx.text(ann, option(notice, "查看商品"))
        assert "游戏点卡" in product and "购买" in product


# -- the terminal demo ------------------------------------------------------------------------------------------

async def test_given_a_sold_out_product_in_the_terminal_demo_then_notify_me_is_an_option_and_the_notice_opens_it(
        tmp_path: Path) -> None:
    settings = make_settings(from_template(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"), tmp_path)
    out = io.StringIO()
    notifier = ConsoleNotifier(out)
    i18n = Translator(settings.store.languages, settings.store.default_language)
    app = await App.open(settings, notifiers={"console": notifier})
    try:
        flow = CustomerFlow(app.shop, i18n, shop_name="Demo", demo_payments=True)
        notifier.flow = flow
        # Catalogue -> the product (sold out: "1" is the alert) -> Notify me
        await run_console(flow, notifier, i18n, stdin=io.StringIO("1\n1\n1\n"))
        assert "1. 🔔 Notify me when back" in out.getvalue()
        assert "we will tell you when it is back" in out.getvalue() and "1. Cancel the alert" in out.getvalue()
        await import_n(app, 1)
        await settle(app)
        notice = out.getvalue().rsplit("Back in stock", 1)[1]
        assert "Game card 10" in notice and "1. Open the product" in notice
        [page] = await flow.on_text(Ctx(BUYER, "demo"), "1")  # the buyer answers "1" to the notice: the product
        assert page.title == "Game card 10" and page.flat_actions()[0].label == "Buy"
    finally:
        await app.close()
