"""Reseller group chats, core and storage: linking, members, quotes, one order however many confirms
race, redelivery after the member starts the bot, refunds back to the wallet. On SQLite and PostgreSQL; the
Telegram side is tests/test_telegram_groups.py."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.settings import ConfigError, parse_settings
from core.admin import AdminService
from core.clock import FakeClock
from core.groups import GroupError
from core.models import Buyer
from tests.helpers import SKU, RecordingNotifier, import_n, open_shop, settle

CHAT, OWNER, BOB, CAROL = "-1001", "300", "301", "302"
BOSS = Buyer("telegram", "1")


async def linked(app) -> tuple[object, int]:  # noqa: ANN001
    """A reseller owned by 300 at 10% off with 50.00, linked to CHAT, Bob allowed by @username."""
    desk = app.shop.groups
    r = await desk.add_reseller(OWNER, discount_percent=10, actor=BOSS.key)
    await app.shop.resellers.top_up(r.id, 5000, actor=BOSS.key)
    await desk.link(CHAT, r.id, actor=BOSS.key)
    await desk.seen(CHAT, BOB, "Bob")
    assert await desk.allow(CHAT, OWNER, "@bob", True) == BOB
    return desk, r.id


async def balance(app, rid: int) -> int:  # noqa: ANN001
    r = await app.shop.resellers.get(rid)
    assert await app.shop.resellers.ledger_sum(rid) == r.balance
    return r.balance


async def test_confirms_racing_make_one_order_one_debit_one_delivery_and_a_refund_credits_back(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        sent = RecordingNotifier()
        app.shop.add_notifier("telegram_group", sent)
        codes = set(await import_n(app, 10))
        desk, rid = await linked(app)
        q = await desk.quote(CHAT, BOB, SKU, 2, "en")
        assert (q.group_order.unit, q.group_order.amount, q.balance_after) == (900, 1800, 3200)
        assert await balance(app, rid) == 5000  # a quote charges nothing
        # Carol may not confirm Bob's quote, nor can she ask for one
        with pytest.raises(GroupError, match="not_yours"):
            await desk.confirm(q.group_order.id, CHAT, CAROL)
        with pytest.raises(GroupError, match="not_allowed"):
            await desk.quote(CHAT, CAROL, SKU, 1, "en")
        # five taps at once: one order, one debit
        done = await asyncio.gather(*(desk.confirm(q.group_order.id, CHAT, BOB) for _ in range(5)))
        assert sum(d.created for d in done) == 1 and len({d.order.id for d in done}) == 1
        assert await balance(app, rid) == 3200
        await settle(app)
        assert [r for r, _ in sent.deliveries] == [BOB] and set(sent.codes()) <= codes and len(sent.codes()) == 2
        order = done[0].order
        assert order.buyer == Buyer("telegram", BOB)
        # the merchant refunds it: the wallet (the payer), not the member, gets the money back
        await AdminService(app.shop).refund(BOSS, order.id)
        await settle(app)
        assert await balance(app, rid) == 5000


async def test_an_unreachable_member_gets_the_codes_queued_again_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        sent = RecordingNotifier()
        app.shop.add_notifier("telegram_group", sent)
        await import_n(app, 5)
        desk, rid = await linked(app)
        q = await desk.quote(CHAT, BOB, SKU, 1, "en")
        order = (await desk.confirm(q.group_order.id, CHAT, BOB)).order
        await settle(app)
        assert (await desk.unreachable(order.id)).status == "unreachable"  # type: ignore[union-attr]
        assert await desk.redeliver(CAROL, order.id) == []  # only the member's own start counts
        assert await desk.redeliver(BOB) == [order.id]  # a plain /start finds it too
        assert await desk.redeliver(BOB, order.id) == []  # a second start queues nothing more
        await settle(app)
        assert len(sent.delivered_to(BOB)) == 2  # the first (failed on Telegram) and the one after start
        assert (await desk.delivered(order.id)).status == "delivered"  # type: ignore[union-attr]
        assert await balance(app, rid) == 5000 - 900


async def test_quotes_refuse_what_the_wallet_or_the_stock_cannot_pay_and_lapse(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 3)
        desk, rid = await linked(app)
        with pytest.raises(GroupError, match="sold_out"):
            await desk.quote(CHAT, BOB, SKU, 4, "en")
        with pytest.raises(GroupError, match="unknown_sku"):
            await desk.quote(CHAT, BOB, "NOPE", 1, "en")
        await app.shop.resellers.update(rid, discount_percent=0)
        await import_n(app, 5, prefix="MORE")
        with pytest.raises(GroupError, match="insufficient_funds"):
            await desk.quote(CHAT, BOB, SKU, 6, "en")  # 60.00 > 50.00
        q = await desk.quote(CHAT, BOB, SKU, 1, "en")
        clock.advance(minutes=11)
        with pytest.raises(GroupError, match="expired"):
            await desk.confirm(q.group_order.id, CHAT, BOB)
        assert await balance(app, rid) == 5000
        with pytest.raises(GroupError, match="not_owner"):
            await desk.allow(CHAT, BOB, CAROL, True)
        await desk.unlink(CHAT, actor=BOSS.key)
        with pytest.raises(GroupError, match="not_linked"):
            await desk.quote(CHAT, BOB, SKU, 1, "en")


def test_group_settings_are_checked_naming_the_key(tmp_path: Path) -> None:
    ok = parse_settings({"telegram": {"groups": {"confirm_minutes": 5, "buys_per_member_per_minute": 2}}}, tmp_path,
                        env={})
    assert (ok.telegram.groups.confirm_minutes, ok.telegram.groups.buys_per_member_per_minute,
            ok.telegram.groups.buys_per_group_per_minute) == (5, 2, 8)
    with pytest.raises(ConfigError, match=r"telegram\.groups\.buys_per_member_per_minute"):
        parse_settings({"telegram": {"groups": {"buys_per_member_per_minute": 0}}}, tmp_path, env={})
    with pytest.raises(ConfigError, match=r"telegram\.groups\.confirm"):
        parse_settings({"telegram": {"groups": {"confirm": 5}}}, tmp_path, env={})
