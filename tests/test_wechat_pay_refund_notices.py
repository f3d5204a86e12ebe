"""WeChat Pay refunds through the one payment entry: money that moved, and who moved it (a refund WeChat only
accepted stays refunding until its refund notice, one whose notice never came is found by refundquery, a banned
payer's payment is refunded and never delivered). The store and the fake WeChat Pay server are
tests/test_wechat_pay.py's."""
from __future__ import annotations

from pathlib import Path

from bots.wechat.pay import SUCCESS_XML
from core.models import Buyer, Order
from tests.helpers import order_status, payments_for, settle
from tests.test_wechat_pay import Env, wechat_store

# -- the one payment entry: money that moved, and who moved it ------------------------------------------------

async def lapsed_and_refunding(env: Env) -> tuple[Order, str]:
    """Alice's hold lapses, Bob takes the only code, Alice's payment arrives: a refund for stock_gone."""
    late = await env.reserve("o-alice")
    await env.gateway.create_native(late, "card")
    env.clock.advance(minutes=16)
    await env.app.shop.expire_holds()
    await env.reserve("o-bob")
    txn = env.fake.mark_paid(late.id, "o-alice")
    assert await env.post(env.fake.notify_xml(late.id, openid="o-alice")) == (200, SUCCESS_XML.decode())
    await settle(env.app)
    return late, txn


async def test_a_refund_wechat_only_accepted_stays_refunding_until_its_refund_notice_says_the_money_moved(
        tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=1) as env:
        env.fake.instant_refunds = False  # a refund to a bank card: accepted now, the money moves later
        late, txn = await lapsed_and_refunding(env)
        assert len(env.fake.refunds()) == 1
        assert await order_status(env.app, late.id) == "refunding"
        (payment,) = await payments_for(env.app, late.id)
        assert payment.status == "refund_pending" and env.notifier.notices_to("o-alice") == []

        # A forged refund notice (not encrypted under the merchant's key) changes nothing.
        forged = env.fake.refund_notice_xml(f"R{txn}", api_key="not-the-merchant-key", settle=False)
        status, text = await env.post(forged)
        assert status == 400 and "FAIL" in text
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunding"

        # WeChat's refund notice: the refund is done, the order refunded and Alice told, once.
        notice = env.fake.refund_notice_xml(f"R{txn}")
        assert await env.post(notice) == (200, SUCCESS_XML.decode())
        assert await env.post(notice) == (200, SUCCESS_XML.decode())  # a repeat changes nothing
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunded"
        (payment,) = await payments_for(env.app, late.id)
        assert payment.status == "refunded"
        assert [n.key for n in env.notifier.notices_to("o-alice")] == ["refund.done"]
        assert len(env.fake.requests_to("/secapi/pay/refund")) == 1


async def test_a_refund_whose_notice_never_came_is_found_done_by_refundquery(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=1) as env:
        env.fake.instant_refunds = False
        late, txn = await lapsed_and_refunding(env)
        assert await order_status(env.app, late.id) == "refunding"
        env.fake.refund_notice_xml(f"R{txn}")  # settles at WeChat; the notice itself is lost
        env.clock.advance(minutes=2)  # the outbox asks again
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunded"
        assert [n.key for n in env.notifier.notices_to("o-alice")] == ["refund.done"]


async def test_a_friend_may_pay_a_wechat_qr_code_but_a_banned_payer_is_refunded_and_never_delivered(
        tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        merchant = Buyer("wechat", "o-merchant")
        await env.app.shop.risk.ban("payer", "wechat:o-mallory", merchant, "stolen cards")
        ann = await env.reserve("o-ann")
        await env.gateway.create_native(ann, "card")
        env.fake.mark_paid(ann.id, "o-mallory")  # Mallory scans Ann's QR code and pays
        assert await env.post(env.fake.notify_xml(ann.id, openid="o-mallory")) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        assert env.notifier.deliveries == [] and await order_status(env.app, ann.id) == "held"
        (payment,) = await payments_for(env.app, ann.id)
        assert payment.payer == "wechat:o-mallory" and payment.status == "refunded"
        assert [r["transaction_id"] for r in env.fake.refunds()] == [payment.provider_txn_id]
        async with env.app.db.uow() as uow:
            (refused,) = await uow.audit.latest("payment_refused")
        assert refused.actor == "wechat:o-mallory" and refused.order_id == ann.id

        # A friend who is not banned pays Bob's QR code: Bob gets his code.
        bob = await env.reserve("o-bob")
        await env.gateway.create_native(bob, "card")
        env.fake.mark_paid(bob.id, "o-friend")
        assert await env.post(env.fake.notify_xml(bob.id, openid="o-friend")) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        assert await order_status(env.app, bob.id) == "delivered"
        assert [r for r, _ in env.notifier.deliveries] == ["o-bob"]
