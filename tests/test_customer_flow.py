"""The customer's conversation through the channel-neutral handlers, on a real SQLite store."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import App
from config.settings import parse_settings
from core.admin import AdminService, Merchant, ProductChange
from core.models import Buyer
from core.supply import import_codes
from handlers.actions import FEATURES, MAX_ACTION_BYTES, OLD_NAMES, Shopping
from handlers.customer import Ctx, CustomerFlow
from locales import Translator

CATALOG = [
    {"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000, "stars": 70,
     "category": {"en": "Games", "zh_CN": "游戏"}, "max_qty": 3},
    {"sku": "VIP", "title": {"en": "VIP month", "zh_CN": "会员月卡"}, "price": 1500,
     "category": {"en": "Memberships", "zh_CN": "会员"}},
]


class Recorder:
    def __init__(self) -> None:
        self.deliveries: list = []
        self.arrived = asyncio.Event()

    async def deliver(self, recipient, delivery):  # noqa: ANN001, ANN201
        self.deliveries.append((recipient, delivery))
        self.arrived.set()

    async def notify(self, recipient, language, key, params):  # noqa: ANN001, ANN201
        pass


@pytest.fixture
async def shop(tmp_path: Path):
    settings = parse_settings({"store": {"demo": True, "name": "Test Shop", "support": "@help"},
                               "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 's.db'}"},
                               "vault": {"key_file": str(tmp_path / "k")}, "catalog": CATALOG}, tmp_path)
    rec = Recorder()
    app = await App.open(settings, notifiers={"console": rec})
    await import_codes(app.db.uow, app.vault, app.clock, "GAME", [f"G-{i}\n".encode() for i in range(3)])
    await app.shop.start()
    yield app, rec
    await app.close()


def flow_for(app: App, demo: bool = True) -> CustomerFlow:
    return CustomerFlow(app.shop, Translator(), shop_name="Test Shop", support="@help", demo_payments=demo)


def ids(screen) -> list[str]:  # noqa: ANN001
    return [a.id for a in screen.flat_actions()]


def label_of(screen, action_id: str) -> str:  # noqa: ANN001
    return next(a.label for a in screen.flat_actions() if a.id == action_id)


CTX = Ctx(Buyer("console", "alice"), "chat-a", "en-US")


async def test_given_a_new_buyer_when_they_browse_buy_and_pay_then_the_code_arrives_and_stays_in_my_orders(shop):
    app, rec = shop
    flow = flow_for(app)
    [menu] = await flow.on_text(CTX, "/start")
    assert menu.title == "Welcome to Test Shop!" and ids(menu) == ["catalog", "orders:0", "help", "language", "link"]
    [cats] = await flow.on_action(CTX, "catalog")
    assert [a.label for a in cats.flat_actions()][:2] == ["Games", "Memberships"]
    [games] = await flow.on_action(CTX, "category:0")
    game_id = ids(games)[0]
    [page] = await flow.on_action(CTX, game_id)
    assert "Only 3 left" in page.body and "CN¥10.00" in page.body
    buy = next(a for a in page.flat_actions() if a.id.startswith("buy:"))
    assert buy.label == "Buy"
    [more] = await flow.on_action(CTX, f"{game_id}:2")
    assert "Quantity: 2" in more.body and "CN¥20.00" in more.body
    [invoice] = await flow.on_action(CTX, f"buy:{game_id.split(':')[1]}:2")
    order_id = invoice.invoice["order_id"]
    assert invoice.invoice["amount"] == 2000 and "15 minutes" in invoice.body
    [paid] = await flow.on_action(CTX, f"pay:{order_id}")
    assert order_id in paid.title
    await asyncio.wait_for(rec.arrived.wait(), 5)
    recipient, delivery = rec.deliveries[0]
    assert recipient == "chat-a" and sorted(delivery.codes) == sorted(delivery.codes) and len(delivery.codes) == 2
    screen = flow.render_delivery(delivery)
    assert screen.secrets == delivery.codes and order_id in screen.title
    # Paying again (a retried button press) changes nothing.
    [again] = await flow.on_action(CTX, f"pay:{order_id}")
    assert "already paid" in again.title
    [orders] = await flow.on_action(CTX, "orders:0")
    assert ids(orders)[0] == f"order:{order_id}" and "delivered" in orders.flat_actions()[0].label
    [detail] = await flow.on_action(CTX, f"order:{order_id}")
    assert f"reveal:{order_id}" in ids(detail)
    [shown] = await flow.on_action(CTX, f"reveal:{order_id}")
    assert shown.secrets == delivery.codes
    assert [e.action for e in await app.shop.audit_for(order_id)].count("reveal") == 1


async def test_given_chinese_when_the_buyer_switches_language_then_every_screen_is_in_chinese(shop):
    app, _ = shop
    flow = flow_for(app)
    [langs] = await flow.on_action(CTX, "language")
    assert [a.label for a in langs.flat_actions()] == ["English", "简体中文"]
    [menu] = await flow.on_action(CTX, "language:zh_CN")
    assert menu.title == "欢迎光临 Test Shop!" and "已切换为简体中文" in menu.body
    [cats] = await flow.on_action(CTX, "catalog")
    assert [a.label for a in cats.flat_actions()][:2] == ["游戏", "会员"]
    [games] = await flow.on_action(CTX, "category:0")
    [page] = await flow.on_action(CTX, ids(games)[0])
    assert page.title == "游戏点卡" and "仅剩 3 件" in page.body and "¥10.00" in page.body
    assert any(a.label == "购买" for a in page.flat_actions())


async def test_given_a_chinese_telegram_client_when_first_seen_then_the_shop_answers_in_chinese(shop):
    app, _ = shop
    [menu] = await flow_for(app).on_text(Ctx(Buyer("console", "li"), "c", "zh-hans"), "/start")
    assert menu.title.startswith("欢迎光临")


@pytest.mark.parametrize("garbage", [
    "zzz", "product:abc", "buy:1", "buy:x:y", "category:99", "order:NOPE", "reveal:", "language:xx",
    "product:" + "9" * 80, "pay:", "cancel:000000", "orders:-5:7", "category:-1", "product:-3", "\x00\xff",
    "product:1:2:3", "topup_account", "report:X:y:z", "challenge:t:1:1", "wallet_topup:x",
    # the same garbage under the names of earlier releases (handlers/actions.py OLD_NAMES)
    "p:abc", "c:99", "o:NOPE", "k:", "lang:xx", "p:" + "9" * 80, "x:000000", "os:-5:7", "c:-1", "p:-3"])
async def test_given_garbage_button_data_when_pressed_then_the_buyer_gets_a_clear_answer_and_the_menu(shop, garbage):
    app, _ = shop
    screens = await flow_for(app).on_action(CTX, garbage)
    assert screens[0].error in ("error.unknown", "not_found", "not_your_order", "bad_quantity")
    assert ids(screens[-1]) == ["catalog", "orders:0", "help", "language", "link"]


async def test_given_buttons_sent_before_the_upgrade_when_pressed_then_they_still_work(shop):
    """Buttons already in chats carry the action ids of earlier releases (handlers/actions.py OLD_NAMES): each
    leads where it always did."""
    app, rec = shop
    flow = flow_for(app)
    [cats] = await flow.on_action(CTX, "cat")
    assert cats.title == "Catalogue" and ids(cats)[0] == "category:0"
    [games] = await flow.on_action(CTX, "c:0")
    game_id = ids(games)[0].split(":")[1]
    [page] = await flow.on_action(CTX, f"p:{game_id}:2")
    assert page.title == "Game card" and "Quantity: 2" in page.body
    [invoice] = await flow.on_action(CTX, f"buy:{game_id}:1")
    order_id = invoice.invoice["order_id"]
    [paid] = await flow.on_action(CTX, f"pay:{order_id}")
    assert order_id in paid.title
    await asyncio.wait_for(rec.arrived.wait(), 5)
    [orders] = await flow.on_action(CTX, "os:0")
    assert ids(orders)[0] == f"order:{order_id}"
    [detail] = await flow.on_action(CTX, f"o:{order_id}")
    assert f"reveal:{order_id}" in ids(detail)
    [shown] = await flow.on_action(CTX, f"k:{order_id}")
    assert shown.secrets == rec.deliveries[0][1].codes
    [held] = await flow.on_action(CTX, f"buy:{game_id}:1")
    [cancelled] = await flow.on_action(CTX, f"x:{held.invoice['order_id']}")
    assert "cancelled" in cancelled.title
    [langs] = await flow.on_action(CTX, "lang")
    assert [a.label for a in langs.flat_actions()] == ["English", "简体中文"]
    [menu] = await flow.on_action(CTX, "lang:zh_CN")
    assert menu.title == "欢迎光临 Test Shop!"
    [link] = await flow.on_action(CTX, "lk")
    assert ids(link)[:2] == ["link_code", "link_enter"]


async def test_given_numbered_replies_stored_before_the_upgrade_then_a_number_still_picks_the_same_action(shop):
    """A console or WeChat buyer answers a screen sent before the upgrade: its stored actions carry old ids."""
    app, _ = shop
    cust = await app.shop.customer(CTX.buyer, "en")
    cust.state["actions"] = ["cat", "os:0", "help", "lang", "lk"]  # as the row was written then
    await app.shop.save_customer(cust)
    [orders] = await flow_for(app).on_text(CTX, "2")
    assert orders.title == "My orders"
    assert (await app.shop.customer(CTX.buyer, fresh=True)).state["actions"] == ids(orders)  # today's ids now


def test_every_old_action_id_leads_to_a_handler_and_every_action_has_one():
    """One table of old names (OLD_NAMES); every name of every feature has exactly one handler; old and new names
    never collide; a button's id fits Telegram's 64 bytes even with the longest arguments it carries."""
    router = CustomerFlow(None, Translator(), shop_name="x").router  # type: ignore[arg-type]
    names = {str(m) for feature in FEATURES for m in feature}
    assert set(router.routes) == names
    assert set(OLD_NAMES) & names == set()
    assert {old: router.find(old).name for old in OLD_NAMES} == {old: str(new) for old, new in OLD_NAMES.items()}
    assert set(OLD_NAMES) == {"lang", "cat", "c", "p", "tu", "ta", "tuc", "ch", "os", "o", "x", "k", "rp", "rn", "hs",
                              "lk", "lg", "lc", "lr", "lu", "lux", "wl", "wt", "wc"}
    # the longest: a challenge answer (token_urlsafe(12), a 3-digit answer, a 9-digit product id and quantity)
    assert len(Shopping.CHALLENGE.id("A" * 16, "999", "9" * 9, "9" * 9).encode()) <= MAX_ACTION_BYTES
    assert len("report:" + "2601011FGVKNBGXX" + ":wrong_product:t") <= MAX_ACTION_BYTES


async def test_given_a_reply_the_shop_does_not_understand_then_the_apology_comes_before_the_menu(shop):
    app, _ = shop
    await flow_for(app).on_text(CTX, "/start")
    [menu] = await flow_for(app).on_text(CTX, "hello there")
    assert menu.error == "error.unknown"
    assert menu.title == "Sorry, I did not understand that. Here is the menu."
    assert menu.body.startswith("Welcome to Test Shop!")  # the menu follows the apology
    assert ids(menu) == ["catalog", "orders:0", "help", "language", "link"]


async def test_given_numbered_replies_when_the_store_restarts_then_the_numbers_still_mean_the_same(shop):
    app, _ = shop
    await flow_for(app).on_text(CTX, "/start")
    # A new flow object, as after a restart: the offered actions come from the database.
    [cats] = await flow_for(app).on_text(CTX, "1")
    assert cats.title == "Catalogue"
    [unknown] = await flow_for(app).on_text(CTX, "42")
    assert unknown.error == "error.unknown"


async def test_given_no_demo_mode_when_a_demo_payment_is_attempted_then_it_is_refused(shop):
    app, rec = shop
    flow = flow_for(app, demo=False)
    product = await app.shop.product_by_sku("GAME")
    [invoice] = await flow.on_action(CTX, f"buy:{product.id}:1")
    assert not any(a.id.startswith("pay:") for a in invoice.flat_actions())
    [refused, _menu] = await flow.on_action(CTX, f"pay:{invoice.invoice['order_id']}")
    assert refused.error == "provider_disabled"
    assert rec.deliveries == []


async def test_given_another_buyers_order_when_someone_asks_for_its_codes_then_it_is_refused(shop):
    app, _ = shop
    flow = flow_for(app)
    product = await app.shop.product_by_sku("GAME")
    [invoice] = await flow.on_action(CTX, f"buy:{product.id}:1")
    order_id = invoice.invoice["order_id"]
    await flow.on_action(CTX, f"pay:{order_id}")
    mallory = Ctx(Buyer("console", "mallory"), "m", "en")
    [refused, _] = await flow.on_action(mallory, f"reveal:{order_id}")
    assert refused.error == "not_your_order" and not refused.secrets
    [refused, _] = await flow.on_action(mallory, f"cancel:{order_id}")
    assert refused.error == "not_your_order"


async def test_given_a_sold_out_product_when_bought_then_the_buyer_is_told_and_nothing_is_held(shop):
    app, _ = shop
    flow = flow_for(app)
    product = await app.shop.product_by_sku("VIP")
    [page] = await flow.on_action(CTX, f"product:{product.id}")
    assert "Sold out" in page.body and not any(a.id.startswith("buy:") for a in page.flat_actions())
    [refused, _] = await flow.on_action(CTX, f"buy:{product.id}:1")
    assert refused.error == "sold_out" and "0 left" in refused.title
    assert await app.shop.my_orders(CTX.buyer) == []


async def test_given_a_product_dropped_from_the_config_when_the_store_restarts_then_it_is_off_sale_but_orders_stay(
        tmp_path: Path):
    def settings(catalog):  # noqa: ANN001, ANN202
        return parse_settings({"store": {"demo": True}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 's.db'}"},
                               "vault": {"key_file": str(tmp_path / "k")}, "catalog": catalog}, tmp_path)

    rec = Recorder()
    async with await App.open(settings(CATALOG), notifiers={"console": rec}) as app:
        await import_codes(app.db.uow, app.vault, app.clock, "GAME", [b"G-1\n", b"G-2\n"])
        await app.shop.start()
        flow = flow_for(app)
        game = await app.shop.product_by_sku("GAME")
        [invoice] = await flow.on_action(CTX, f"buy:{game.id}:1")
        await flow.on_action(CTX, f"pay:{invoice.invoice['order_id']}")
    async with await App.open(settings(CATALOG[1:]), notifiers={"console": rec}) as app:
        flow = flow_for(app)
        assert [p.sku for p in await app.shop.products()] == ["VIP"]
        [refused, _] = await flow.on_action(CTX, f"buy:{game.id}:1")
        assert refused.error == "product_unavailable"
        [orders] = await flow.on_action(CTX, "orders:0")
        assert "Game card × 1 · delivered" in orders.flat_actions()[0].label
        [shown] = await flow.on_action(CTX, f"reveal:{invoice.invoice['order_id']}")
        assert len(shown.secrets) == 1
    async with await App.open(settings(CATALOG), notifiers={"console": rec}) as app:
        assert [p.sku for p in await app.shop.products()] == ["GAME", "VIP"]
        assert (await app.shop.product_view(game.id)).available == 1


async def test_given_a_deep_link_when_a_buyer_starts_then_its_payload_is_kept_once(shop):
    app, _ = shop
    flow = flow_for(app)
    [menu] = await flow.on_text(CTX, "/start ref_42")
    assert menu.title == "Welcome to Test Shop!"
    await flow.on_text(CTX, "/start other")
    assert (await app.shop.customer(CTX.buyer)).state["start_payload"] == "ref_42"


async def test_given_a_new_buyer_whose_first_taps_race_then_the_language_they_chose_is_kept(shop, tmp_path):
    app, _ = shop
    flow = CustomerFlow(app.shop, Translator(), shop_name="Test Shop", numbered=False)
    buyer = Buyer("telegram", "7001")
    ctx = Ctx(buyer, "7001", "en")
    # Several first updates at once (menu taps while the language switch is handled): the first-contact rows
    # made by the others must not overwrite the language stored by the switch.
    await asyncio.gather(flow.on_text(ctx, "/start"), flow.on_action(ctx, "language:zh_CN"),
                         flow.on_text(ctx, "/help"), flow.on_action(ctx, "catalog"))
    await app.close()
    again = await App.open(app.settings, notifiers={"console": Recorder()})
    try:
        stored = await again.shop.customer(buyer, "en", fresh=True)
        assert stored.language == "zh_CN"
        screens = await CustomerFlow(again.shop, Translator(), shop_name="Test Shop").on_text(ctx, "/start")
        assert screens[0].title == "欢迎光临 Test Shop!"
    finally:
        await again.close()


async def test_given_a_price_changed_by_the_merchant_then_the_next_product_page_shows_it_at_once(shop):
    app, _ = shop
    flow = flow_for(app)
    ctx = Ctx(Buyer("console", "p1"), "p1", "en")
    game = await app.shop.product_by_sku("GAME")
    assert game is not None
    before = (await flow.on_action(ctx, f"product:{game.id}"))[0]
    assert "10.00" in before.body
    service = AdminService(app.shop)
    await service.edit_product(Merchant("console", "boss"), "GAME", ProductChange(price=1250))
    after = (await flow.on_action(ctx, f"product:{game.id}"))[0]
    assert "12.50" in after.body and "10.00" not in after.body
