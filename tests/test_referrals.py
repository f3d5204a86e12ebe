"""Referral rewards (邀请有礼) and the new-buyer gift (新人礼包), core/members/: a referrer is rewarded once per
referred person when their first paid order is paid, never for themselves (linked accounts included) nor for a pair
who referred each other, and the reward is taken back when that order is refunded; the gift is given once per
person. The referral link on WeChat is a parametric QR code (the fake WeChat API's qrcode/create)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.admin import Merchant
from core.members import REFERRAL_PREFIX
from core.models import Buyer
from handlers.admin import AdminFlow
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.fake_wechat_api import FakeWeChatAPI
from tests.helpers import buyer, import_n, open_shop, pay, product_id, settle
from tests.test_members import buy
from tests.wechat_harness import APPID, SECRET, WeChatShop, option

MEMBERS: dict[str, Any] = {"members": {"points_per_unit": 0, "referral_points": 30}}
ALICE, BOB, CAROL = buyer("alice"), buyer("bob"), buyer("carol")


def flow_of(app: Any) -> CustomerFlow:
    return CustomerFlow(app.shop, Translator(), shop_name="Test shop")


async def start(app: Any, who: Buyer, payload: str = "") -> str:
    screens = await flow_of(app).on_text(Ctx(who, who.external_id), f"/start {payload}".strip())
    return "\n".join(s.title + "\n" + s.body for s in screens)


def link_of(app: Any, who: Buyer) -> str:
    return REFERRAL_PREFIX + app.shop.members.referral_code(who)


async def invited(app: Any, referrer: Buyer, referee: Buyer) -> None:
    """The referrer opens their invite screen (the code is remembered), the referee starts with the link."""
    screens = await flow_of(app).on_action(Ctx(referrer, referrer.external_id), "invite")
    assert f"/start {link_of(app, referrer)}" in screens[0].body and "30 points" in screens[0].body
    await start(app, referee, link_of(app, referrer))


async def refund(app: Any, order_id: str) -> None:
    await AdminFlow(app.shop, Translator()).service.refund(Merchant("test", "boss"), order_id)
    await settle(app)


async def test_the_referrer_is_rewarded_once_at_the_first_paid_order_and_loses_it_on_its_refund(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MEMBERS) as (app, notifier, _):
        members = app.shop.members
        await import_n(app, 5)
        await invited(app, ALICE, BOB)
        first = await buy(app, BOB)
        await settle(app)
        assert await members.points(ALICE) == 30 and await members.points(BOB) == 0
        assert [n.params for n in notifier.notices_to(ALICE.external_id, "members.referral_rewarded")] == [
            {"points": 30}]
        await buy(app, BOB)  # a second order rewards nothing more
        assert await members.points(ALICE) == 30

        await refund(app, first.id)
        assert await members.points(ALICE) == 0
        await buy(app, BOB)  # rewarded once per referee: not again after the refund
        assert await members.points(ALICE) == 0
        assert [e.kind for e in (await members.profile(ALICE)).history] == ["reverse", "referral"]


async def test_a_buyer_cannot_refer_themselves_nor_their_linked_account(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MEMBERS) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await invited(app, ALICE, ALICE)
        await buy(app, ALICE)
        assert await members.points(ALICE) == 0
        alt = Buyer("wechat", "o-alice")  # Alice's other account, linked
        async with app.db.uow(write=True) as uow:
            await uow.risk.set_links([ALICE, alt], "P-alice", "L-alice", app.clock.now())
            await uow.commit()
        await invited(app, ALICE, alt)
        order = await app.shop.reserve(alt, await product_id(app), 1, "en")
        assert (await pay(app, order, payer=alt)).outcome == "delivered"
        assert await members.points(ALICE) == 0


async def test_two_buyers_who_referred_each_other_get_nothing(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MEMBERS) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await flow_of(app).on_action(Ctx(ALICE, ALICE.external_id), "invite")
        await flow_of(app).on_action(Ctx(BOB, BOB.external_id), "invite")
        await start(app, ALICE, link_of(app, BOB))
        await start(app, BOB, link_of(app, ALICE))
        await buy(app, BOB)
        await buy(app, ALICE)
        assert (await members.points(ALICE), await members.points(BOB)) == (0, 0)
        await invited(app, ALICE, CAROL)  # an honest referral still works
        await buy(app, CAROL)
        assert await members.points(ALICE) == 30


async def test_a_made_up_referral_code_rewards_nobody(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MEMBERS) as (app, _, _):
        await import_n(app, 3)
        menu = await start(app, BOB, "r_aaaaaaaaaa")
        assert "did not understand" not in menu
        await buy(app, BOB)
        async with app.db.uow() as uow:
            assert await uow.members.points_history([BOB, ALICE], 10) == []


async def test_the_new_buyer_gift_comes_once_per_person_on_first_start(db_url: str, tmp_path: Path) -> None:
    gift = {"members": {"gift_points": 20}}
    async with open_shop(db_url, tmp_path, marketing=gift) as (app, _, _):
        assert "20 points are yours" in await start(app, ALICE)
        assert "points are yours" not in await start(app, ALICE)
        alt = Buyer("wechat", "o-alice")
        async with app.db.uow(write=True) as uow:
            await uow.risk.set_links([ALICE, alt], "P-alice", "L-alice", app.clock.now())
            await uow.commit()
        assert "points are yours" not in await start(app, alt)  # the same person
        assert await app.shop.members.points(alt) == 20  # linked accounts count their points together


async def test_the_new_buyer_gift_on_first_purchase_is_taken_back_with_its_refund(db_url: str, tmp_path: Path) -> None:
    gift = {"members": {"gift_points": 20, "gift_on": "purchase"}}
    async with open_shop(db_url, tmp_path, marketing=gift) as (app, _, _):
        await import_n(app, 3)
        assert "points are yours" not in await start(app, ALICE)
        order = await buy(app, ALICE)
        assert await app.shop.members.points(ALICE) == 20
        await buy(app, ALICE)
        assert await app.shop.members.points(ALICE) == 20
        await refund(app, order.id)
        assert await app.shop.members.points(ALICE) == 0


async def test_on_wechat_the_referral_link_is_a_parametric_qr_code_and_scanning_it_binds_the_referee(
        tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, \
            WeChatShop(api, tmp_path, extra={"marketing": MEMBERS}) as shop:
        account = await shop.wx.text("o-ann", "我的")
        assert "积分：0" in account and "邀请有礼" in account
        reply = await shop.wx.text("o-ann", option(account, "邀请有礼"))
        [ticket] = api.qrcodes
        created = api.qrcodes[ticket]
        scene = created["action_info"]["scene"]["scene_str"]
        assert created["action_name"] == "QR_STR_SCENE" and created["expire_seconds"] == 30 * 86400
        assert scene == link_of(shop.app, Buyer("wechat", "o-ann"))
        assert "showqrcode?ticket=" in reply and "30 积分" in reply
        again = await shop.wx.text("o-ann", "我的")
        await shop.wx.text("o-ann", option(again, "邀请有礼"))
        assert len(api.qrcodes) == 1  # made once, then reused

        await shop.wx.subscribe("o-bob", scene)  # Bob scans Ann's code and follows the account
        customer = await shop.app.shop.customer(Buyer("wechat", "o-bob"), fresh=True)
        assert customer.state.get("start_payload") == scene
        await shop.wx.text("o-cy", "hi")  # a follower already, who scans the code later: bound the same way
        status, _ = await shop.wx.post(shop.wx.event_xml("o-cy", "SCAN", scene))
        assert status == 200
        customer = await shop.app.shop.customer(Buyer("wechat", "o-cy"), fresh=True)
        assert customer.state.get("start_payload") == scene
