"""Linked accounts (core/links.py): a one-time code asked for by one account and sent from another makes them one
person for quotas, bans, the bound phone and My orders; wrong, expired, reused and guessed codes link nothing; an
unlink cannot reset a quota or shake off a ban. Real SQLite and PostgreSQL, FakeClock. The same flow in the chats,
WeChat to Telegram, is tests/test_link_chat.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.errors import ErrorCode
from core.links import ALPHABET, CODE_LENGTH, FAILURES_PER_HOUR, ISSUES_PER_HOUR, shown
from core.models import Buyer, OrderStatus
from storage import tables as t
from tests.helpers import import_n
from tests.risk_helpers import open_guarded, product, refusal

TG, WX = Buyer("telegram", "101"), Buyer("wechat", "o-wx")
EVE = Buyer("telegram", "666")
ADMIN = Buyer("test", "merchant")
CATALOG = [product("LIM", per_buyer=1), product("DAY", per_day=1), product("VIP", phone_required=True),
           product("FREE")]


async def _pid(app: Any, sku: str) -> int:
    p = await app.shop.product_by_sku(sku)
    assert p is not None
    return p.id


async def _link(app: Any, asks: Buyer, sends: Buyer) -> None:
    issued = await app.shop.links.issue(asks)
    await app.shop.links.redeem(sends, shown(issued.code))


def _wrong(code: str) -> str:
    """Another valid-looking code (one character changed)."""
    first = ALPHABET[(ALPHABET.index(code[0]) + 1) % len(ALPHABET)]
    return first + code[1:]


async def test_given_a_wechat_and_a_telegram_account_linked_then_quotas_bans_phone_and_orders_are_shared(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, CATALOG) as (app, _, _):
        for sku in ("LIM", "DAY", "VIP", "FREE"):
            await import_n(app, 5, sku)
        # Before the link: the WeChat buyer has no phone, and each account has its own quota.
        assert (await refusal(app.shop.reserve(WX, await _pid(app, "VIP"), 1, "en"))).params["rule"] == \
            "phone_required"
        issued = await app.shop.links.issue(WX)  # /link in WeChat
        assert len(issued.code) == CODE_LENGTH and set(issued.code) <= set(ALPHABET)
        linked = await app.shop.links.redeem(TG, shown(issued.code).lower())  # /link CODE in Telegram
        assert linked.other == WX and set(linked.accounts) == {TG, WX} and not linked.already

        first = await app.shop.reserve(TG, await _pid(app, "LIM"), 1, "en")  # per_buyer 1, taken on Telegram
        err = await refusal(app.shop.reserve(WX, await _pid(app, "LIM"), 1, "en"))
        assert err.params["rule"] == "per_buyer" and err.params["left"] == 0
        await app.shop.reserve(WX, await _pid(app, "DAY"), 1, "en")  # per_day 1, taken on WeChat
        assert (await refusal(app.shop.reserve(TG, await _pid(app, "DAY"), 1, "en"))).params["rule"] == "per_day"

        await app.shop.risk.bind_phone(TG, "+86 138 0013 8000")  # Telegram shares its own contact
        vip = await app.shop.reserve(WX, await _pid(app, "VIP"), 1, "en")  # the phone counts on WeChat too
        assert vip.status is OrderStatus.HELD

        # My orders lists both accounts' orders, on either side.
        assert {o.id for o in await app.shop.my_orders(TG)} == {o.id for o in await app.shop.my_orders(WX)}
        assert first.id in {o.id for o in await app.shop.my_orders(WX)}
        # ... but the other account's order is for looking at only: never paid or shown from here.
        order, _ = await app.shop.linked_order(first.id, WX)
        assert order.buyer == TG
        assert (await refusal(app.shop.order_for(first.id, WX))).code is ErrorCode.NOT_YOUR_ORDER
        assert (await refusal(app.shop.linked_order(first.id, EVE))).code is ErrorCode.NOT_YOUR_ORDER

        # A ban of one account is a ban of both.
        await app.shop.risk.ban("user", TG.key, ADMIN, "chargebacks")
        assert (await refusal(app.shop.reserve(WX, await _pid(app, "FREE"), 1, "en"))).code is \
            ErrorCode.RISK_REFUSED
        assert (await app.shop.risk.risk_for(WX)).banned == ["user"]
        assert [b.key for b in (await app.shop.risk.risk_for(WX)).linked] == [TG.key]
        # The other account's owner was told of the link (it can undo it there).
        async with app.db.uow() as uow:
            o = t.outbox.c
            notices = (await uow.risk.c.execute(select(o.channel, o.recipient, o.payload)
                                                .where(o.kind == "notify"))).all()
        assert [(ch, to, p["key"]) for ch, to, p in notices] == [("wechat", "o-wx", "link.notice.linked")]


async def test_given_a_wrong_an_expired_a_used_or_an_own_code_then_nothing_is_linked(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, CATALOG) as (app, _, _):
        await import_n(app, 5, "LIM")
        links = app.shop.links
        issued = await links.issue(WX)
        for typed in (_wrong(issued.code), "", "nonsense", "ABCD"):  # each counts as a wrong try of Eve's
            assert (await refusal(links.redeem(EVE, typed))).code is ErrorCode.LINK_CODE_INVALID
        assert (await refusal(links.redeem(WX, issued.code))).code is ErrorCode.LINK_SELF  # not from itself
        app.clock.advance(minutes=10, seconds=1)  # valid 10 minutes
        assert (await refusal(links.redeem(TG, issued.code))).code is ErrorCode.LINK_CODE_INVALID
        assert await links.linked(TG) == [TG] and await links.linked(WX) == [WX]

        again = await links.issue(WX)
        newer = await links.issue(WX)  # a new code voids the earlier unused one
        assert (await refusal(links.redeem(TG, again.code))).code is ErrorCode.LINK_CODE_INVALID
        await links.redeem(TG, newer.code)
        assert (await refusal(links.redeem(EVE, newer.code))).code is ErrorCode.LINK_CODE_INVALID  # used once
        assert await links.linked(EVE) == [EVE]
        await app.shop.reserve(TG, await _pid(app, "LIM"), 1, "en")  # Eve's quota is her own
        await app.shop.reserve(EVE, await _pid(app, "LIM"), 1, "en")

        async with app.db.uow() as uow:  # only a keyed hash of a code is stored
            rows = (await uow.risk.c.exec_driver_sql("SELECT digest, used_by FROM link_codes")).all()
        assert rows and all(newer.code not in d and len(d) == 64 for d, _ in rows)


async def test_given_someone_guessing_codes_then_they_are_stopped_even_with_the_right_one_until_the_hour_is_up(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, CATALOG) as (app, _, _):
        links = app.shop.links
        issued = await links.issue(WX)
        lefts = []
        for _ in range(FAILURES_PER_HOUR):
            lefts.append((await refusal(links.redeem(EVE, _wrong(issued.code)))).params["left"])
        assert lefts == list(range(FAILURES_PER_HOUR - 1, -1, -1))
        stopped = await refusal(links.redeem(EVE, issued.code))  # the right code, one guess too late
        assert stopped.code is ErrorCode.RATE_LIMITED
        assert await links.linked(WX) == [WX]
        # Codes cannot be asked for without end either.
        for _ in range(ISSUES_PER_HOUR):
            await links.issue(TG)
        assert (await refusal(links.issue(TG))).code is ErrorCode.RATE_LIMITED
        app.clock.advance(minutes=61)
        fresh = await links.issue(WX)
        await links.redeem(EVE, fresh.code)  # an hour later, a right code works
        assert set(await links.linked(WX)) == {WX, EVE}


async def test_given_an_unlink_then_orders_and_phone_part_but_quotas_and_bans_keep_counting_the_person(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, CATALOG) as (app, _, _):
        for sku in ("DAY", "VIP", "FREE"):
            await import_n(app, 5, sku)
        await _link(app, WX, TG)
        await app.shop.risk.bind_phone(TG, "+8613800138000")
        day = await app.shop.reserve(TG, await _pid(app, "DAY"), 1, "en")
        others = await app.shop.links.unlink(WX)  # from either side
        assert others == [TG]
        assert (await refusal(app.shop.links.unlink(WX))).code is ErrorCode.NOT_LINKED

        assert day.id not in {o.id for o in await app.shop.my_orders(WX)}  # history parts at once
        assert (await refusal(app.shop.reserve(WX, await _pid(app, "VIP"), 1, "en"))).params["rule"] == \
            "phone_required"  # so does the phone
        # The day's quota still counts for the person: unlinking does not reset it.
        assert (await refusal(app.shop.reserve(WX, await _pid(app, "DAY"), 1, "en"))).params["rule"] == "per_day"
        await app.shop.risk.ban("phone", "+8613800138000", ADMIN)  # nor shake off a ban
        assert (await refusal(app.shop.reserve(WX, await _pid(app, "FREE"), 1, "en"))).code is \
            ErrorCode.RISK_REFUSED
        # An unlinked account stays in its person: an account it links with later joins the person's count (and
        # its bans), sharing orders with it only; linking back is always possible.
        await _link(app, EVE, WX)
        assert set(await app.shop.links.linked(WX)) == {WX, EVE} and TG not in await app.shop.links.linked(EVE)
        assert (await refusal(app.shop.reserve(EVE, await _pid(app, "FREE"), 1, "en"))).code is \
            ErrorCode.RISK_REFUSED
        await _link(app, TG, WX)
        assert set(await app.shop.links.linked(WX)) == {TG, WX, EVE}


async def test_given_linked_people_when_one_asks_to_link_with_another_persons_account_then_it_is_refused(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, CATALOG) as (app, _, _):
        bob_tg, bob_wx = Buyer("telegram", "202"), Buyer("wechat", "o-bob")
        await _link(app, WX, TG)
        await _link(app, bob_wx, bob_tg)
        err = await refusal(_link(app, bob_wx, TG))
        assert err.code is ErrorCode.LINK_CONFLICT
        assert set(await app.shop.links.linked(TG)) == {TG, WX}
        assert set(await app.shop.links.linked(bob_tg)) == {bob_tg, bob_wx}
        third = Buyer("wechat", "o-wx-2")  # a third account of the same person joins the link
        await _link(app, third, TG)
        assert set(await app.shop.links.linked(WX)) == {TG, WX, third}
        again = await app.shop.links.issue(TG)
        assert (await app.shop.links.redeem(WX, again.code)).already
