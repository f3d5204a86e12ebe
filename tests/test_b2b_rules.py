"""B2B API and group-chat orders pass the same product rules and risk check as chat orders (core/risk/guard.py
Guard.screen): the sale window, per-day / per-person limits (a group order counts for its member), bans, and
deliver_on_effective (codes not handed out before the date). What resellers may skip is a named setting per rule
(`resellers.api_exempt` / `resellers.group_exempt`). Real SQLite and PostgreSQL, a FakeClock, the API over HTTP."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import App
from bots.b2b_api import B2BApi
from bots.http import HttpServer
from config.settings import ConfigError, parse_settings
from core.clock import FakeClock
from core.errors import ErrorCode
from core.groups import GroupError
from core.models import Buyer
from handlers.errors import message_of
from handlers.groups import GroupCtx, GroupFlow
from locales import Translator
from tests.helpers import CHANNEL, PROVIDER, RecordingGateway, RecordingNotifier, import_n, settle, stock_of
from tests.risk_helpers import START, product, refusal
from tests.test_b2b_api import Client

TR = Translator(("en", "zh_CN"))
CHAT, OWNER, BOB = "-1001", "300", "301"
BOSS = Buyer("telegram", "1")
LATER = START + timedelta(days=30)  # the date goods start / go on sale in these tests


@asynccontextmanager
async def b2b_store(url: str, tmp_path: Path, catalog: Sequence[dict[str, Any]], clock: FakeClock, *,
                    resellers: dict[str, Any] | None = None, risk: dict[str, Any] | None = None
                    ) -> AsyncIterator[tuple[Any, Client, RecordingNotifier]]:
    """A store with `catalog` (10 codes each), a reseller "Acme" owned by OWNER with 500.00 in its wallet and an
    API key, its group CHAT where BOB may order, and the B2B API on a real HTTP server. Yields (app, the
    reseller's client, the notifier of group deliveries)."""
    settings = parse_settings({"store": {"demo": True}, "database": {"url": url},
                               "vault": {"key_file": str(tmp_path / "vault.key")}, "catalog": list(catalog),
                               "resellers": resellers or {}, "risk": risk or {}}, tmp_path, env={})
    app = await App.open(settings, clock=clock, notifiers={CHANNEL: RecordingNotifier()},
                         gateways={PROVIDER: RecordingGateway()})
    sent = RecordingNotifier()
    app.shop.add_notifier("telegram_group", sent)
    server = HttpServer("127.0.0.1", 0)
    try:
        for p in catalog:
            await import_n(app, 10, p["sku"], prefix=p["sku"])
        desk = app.shop.groups
        r = await desk.add_reseller(OWNER, actor=BOSS.key)
        await app.shop.resellers.top_up(r.id, 50_000, actor=BOSS.key)
        await desk.link(CHAT, r.id, actor=BOSS.key)
        await desk.allow(CHAT, OWNER, BOB, True)
        key_id, secret = await app.shop.resellers.create_api_key(r.id, rate_per_second=1000)
        server.add_b2b_api(B2BApi(app.shop.resellers, TR))
        await server.start()
        async with aiohttp.ClientSession() as http:
            yield app, Client(f"http://127.0.0.1:{server.port}", key_id, secret, http, server), sent
    finally:
        await server.stop()
        await app.close()


def configure(app: Any, resellers: dict[str, Any]) -> None:
    """The `resellers:` section as the store would read it at its next start."""
    app.shop.resellers.configure(parse_settings({"resellers": resellers}, Path("."), env={}).resellers)


async def api_order(api: Client, clock: FakeClock, sku: str, qty: int, key: str) -> tuple[int, Any]:
    """POST /orders signed at the store's (fake) time."""
    status, body, _ = await api.call("POST", "/api/v1/orders", {"sku": sku, "qty": qty},
                                     headers={"Idempotency-Key": key}, timestamp=int(clock.now().timestamp()))
    return status, body


async def api_get(api: Client, clock: FakeClock, path: str) -> tuple[int, Any]:
    status, body, _ = await api.call("GET", path, timestamp=int(clock.now().timestamp()))
    return status, body


async def group_order(app: Any, sku: str, qty: int, user: str = BOB) -> Any:
    """A member's /buy confirmed at once (core/groups.py)."""
    q = await app.shop.groups.quote(CHAT, user, sku, qty, "en")
    return await app.shop.groups.confirm(q.group_order.id, CHAT, user)


async def balance(app: Any) -> int:
    r = await app.shop.resellers.get(1)
    assert await app.shop.resellers.ledger_sum(1) == r.balance
    return r.balance


# -- the sale window --------------------------------------------------------------------------------------------

async def test_given_a_product_on_sale_only_later_when_ordered_over_the_api_or_in_the_group_then_refused_naming_it(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("NEW", sale_start=LATER.isoformat())], clock) as (app, api, _):
        # the API: a clear refusal that names the rule and the start; nothing sold, nothing debited
        status, body = await api_order(api, clock, "NEW", 2, "early-1")
        assert status == 403 and body["error"]["code"] == "rule_refused"
        assert body["error"]["details"] == {"rule": "sale_not_started", "start": LATER.strftime("%Y-%m-%d %H:%M UTC")}
        # the group: /buy is answered with the rule's own words, no quote to confirm
        flow = GroupFlow(app.shop.groups, TR)
        answer = await flow.on_command(GroupCtx(CHAT, BOB, "bob", "en", False), "/buy", ["NEW", "1"])
        assert answer is not None and answer.quote is None and answer.screen.error == "rule_refused"
        assert "goes on sale at" in answer.screen.title and not answer.screen.actions
        zh = await flow.on_command(GroupCtx(CHAT, BOB, "bob", "zh_CN", False), "/buy", ["NEW", "1"])
        assert zh is not None and zh.screen.title == TR.t("zh_CN", "rules.refused.sale_not_started",
                                                          start=LATER.strftime("%Y-%m-%d %H:%M UTC"))
        assert await stock_of(app, "NEW") == (10, 0, 0) and await balance(app) == 50_000
        # once the sale starts, both channels sell
        clock.advance(days=30)
        assert (await api_order(api, clock, "NEW", 2, "early-1"))[0] == 201  # the refused key was not used up
        assert (await group_order(app, "NEW", 1)).created
        assert await stock_of(app, "NEW") == (7, 0, 3)


async def test_given_a_quote_shown_before_the_sale_ended_when_confirmed_after_then_the_order_is_refused(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    catalog = [product("END", sale_end=(START + timedelta(minutes=5)).isoformat())]
    async with b2b_store(db_url, tmp_path, catalog, clock) as (app, _, sent):
        q = await app.shop.groups.quote(CHAT, BOB, "END", 1, "en")
        clock.advance(minutes=6)  # still within the quote's 10 minutes
        with pytest.raises(GroupError) as err:
            await app.shop.groups.confirm(q.group_order.id, CHAT, BOB)
        assert err.value.code == "rule_refused" and err.value.params["rule"] == "sale_ended"
        assert message_of(err.value).key == "rules.refused.sale_ended"
        await settle(app)
        assert sent.deliveries == [] and await balance(app) == 50_000 and await stock_of(app, "END") == (10, 0, 0)


# -- limits: a group order is its member's ------------------------------------------------------------------------

async def test_given_a_per_day_limit_then_group_orders_count_for_the_member_with_their_chat_orders(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("LIM", per_day=2)], clock) as (app, _, _):
        await group_order(app, "LIM", 2)
        # a third unit today is refused to Bob: in the group (at /buy, before any quote) ...
        with pytest.raises(GroupError) as err:
            await app.shop.groups.quote(CHAT, BOB, "LIM", 1, "en")
        assert (err.value.code, err.value.params) == ("rule_refused", {"rule": "per_day", "limit": 2, "left": 0})
        # ... and in his private chat: the same person, the same quota
        bob = Buyer("telegram", BOB)
        pid = (await app.shop.product_by_sku("LIM")).id
        chat_err = await refusal(app.shop.reserve(bob, pid, 1, "en"))
        assert chat_err.code is ErrorCode.RULE_REFUSED and chat_err.params["rule"] == "per_day"
        # the owner is another member with a quota of their own; the next day Bob's is back
        assert (await group_order(app, "LIM", 2, user=OWNER)).created
        clock.advance(days=1)
        assert (await group_order(app, "LIM", 1)).created
        assert await stock_of(app, "LIM") == (5, 0, 5)


async def test_given_per_buyer_limits_then_the_reseller_exemption_setting_decides_per_channel(
        db_url: str, tmp_path: Path) -> None:
    """Without the setting, the API's reseller (one buyer: api:<id>) and a group member stop at per_buyer; with
    `per_buyer` in resellers.api_exempt wholesale over the API goes through, while group members keep theirs."""
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("ONE", per_buyer=1)], clock) as (app, api, _):
        assert (await api_order(api, clock, "ONE", 1, "w-1"))[0] == 201
        status, body = await api_order(api, clock, "ONE", 3, "w-2")
        assert (status, body["error"]["details"]) == (403, {"rule": "per_buyer", "limit": 1, "left": 0})
        assert (await group_order(app, "ONE", 1)).created
        with pytest.raises(GroupError, match="rule_refused"):
            await group_order(app, "ONE", 1)
        # the merchant exempts API orders from per_buyer (the store started again with this config)
        configure(app, {"api_exempt": ["per_buyer", "risk"]})
        status, body = await api_order(api, clock, "ONE", 3, "w-2")
        assert status == 201 and len(body["order"]["codes"]) == 3
        with pytest.raises(GroupError, match="rule_refused"):
            await group_order(app, "ONE", 1)
        assert await stock_of(app, "ONE") == (5, 0, 5)


async def test_given_a_member_exempt_from_per_day_by_setting_then_group_orders_pass_but_chat_orders_do_not(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("LIM", per_day=1)], clock,
                         resellers={"group_exempt": ["per_day"]}) as (app, _, _):
        assert (await group_order(app, "LIM", 3)).created
        assert (await group_order(app, "LIM", 1)).created
        pid = (await app.shop.product_by_sku("LIM")).id
        err = await refusal(app.shop.reserve(Buyer("telegram", BOB), pid, 1, "en"))
        assert err.params["rule"] == "per_day"  # the exemption is the group's, never the member's own chat


def test_exemption_settings_name_what_cannot_be_exempted(tmp_path: Path) -> None:
    s = parse_settings({}, tmp_path, env={})
    assert (s.resellers.api_exempt, s.resellers.group_exempt) == (["risk"], [])
    with pytest.raises(ConfigError) as err:
        parse_settings({"resellers": {"api_exempt": ["per_day", "sale_start"]}}, tmp_path, env={})
    [(where, says)] = err.value.errors
    assert where == "resellers.api_exempt[1]" and "'sale_start' cannot be exempted" in says


# -- risk and bans ------------------------------------------------------------------------------------------------

async def test_given_api_orders_scored_by_setting_when_risk_would_challenge_then_refused_as_an_api_cannot_answer(
        db_url: str, tmp_path: Path) -> None:
    """By default the reseller's API orders skip the risk score (a system places many orders a minute); with
    api_exempt: [] they are scored like anyone's, and a score that would challenge a chat buyer refuses them."""
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("A")], clock, risk={"buyer_orders": 2}) as (app, api, _):
        for i in range(2):
            assert (await api_order(api, clock, "A", 1, f"d-{i}"))[0] == 201
        configure(app, {"api_exempt": []})
        # a third order in ten minutes: +30 for velocity, +10 for an account never seen in a chat = challenge
        status, body = await api_order(api, clock, "A", 1, "s-1")
        assert (status, body["error"]["code"]) == (403, "risk_refused") and "details" not in body["error"]
        assert await stock_of(app, "A") == (8, 0, 2) and await balance(app) == 50_000 - 2_000
        configure(app, {})  # the default again: not scored
        assert (await api_order(api, clock, "A", 1, "s-1"))[0] == 201


async def test_given_a_banned_member_or_reseller_then_their_orders_are_refused_even_when_exempt_from_the_score(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with b2b_store(db_url, tmp_path, [product("A")], clock,
                         resellers={"group_exempt": ["risk"]}) as (app, api, _):
        await app.shop.risk.ban("user", f"telegram:{BOB}", BOSS, "abuse")
        with pytest.raises(GroupError) as err:
            await group_order(app, "A", 1)
        assert err.value.code == "risk_refused"
        assert (await group_order(app, "A", 1, user=OWNER)).created
        await app.shop.risk.ban("user", "api:1", BOSS)
        status, body = await api_order(api, clock, "A", 1, "banned")
        assert (status, body["error"]["code"]) == (403, "risk_refused")
        assert await stock_of(app, "A") == (9, 0, 1)


# -- goods that start later ---------------------------------------------------------------------------------------

async def test_given_deliver_on_effective_when_ordered_over_the_api_then_scheduled_and_the_codes_refused_until_then(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    rules = {"effective_from": LATER.isoformat(), "deliver_on_effective": True}
    async with b2b_store(db_url, tmp_path, [product("VIP", **rules)], clock) as (app, api, _):
        status, body = await api_order(api, clock, "VIP", 2, "vip-1")
        order = body["order"]
        assert status == 201 and order["status"] == "scheduled" and order["codes"] == []
        assert order["deliver_at"] == LATER.isoformat() and order["amount"] == 2_000
        assert await balance(app) == 48_000 and await stock_of(app, "VIP") == (8, 0, 2)  # paid, codes set aside
        # reading it (by id, or by Idempotency-Key) is refused until the date, in the API's error shape
        date = LATER.strftime("%Y-%m-%d %H:%M UTC")
        for path in (f"/api/v1/orders/{order['id']}", "/api/v1/orders?idempotency_key=vip-1"):
            status, body = await api_get(api, clock, path)
            assert (status, body["error"]["code"], body["error"]["details"]) == (409, "not_yet_due", {"date": date})
        # a repeated POST answers as the first did, still without codes
        assert await api_order(api, clock, "VIP", 2, "vip-1") == (200, {"order": order})
        clock.advance(days=30)
        status, body = await api_get(api, clock, f"/api/v1/orders/{order['id']}")
        assert status == 200 and body["order"]["status"] == "delivered" and len(body["order"]["codes"]) == 2
        assert "deliver_at" not in body["order"]


async def test_given_deliver_on_effective_when_a_member_orders_in_the_group_then_the_codes_come_on_that_date(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    rules = {"effective_from": LATER.isoformat(), "deliver_on_effective": True}
    async with b2b_store(db_url, tmp_path, [product("VIP", **rules)], clock) as (app, _, sent):
        flow = GroupFlow(app.shop.groups, TR)
        q = await app.shop.groups.quote(CHAT, BOB, "VIP", 1, "en")
        tap = await flow.on_button(GroupCtx(CHAT, BOB, None, "en", False), f"gc:{q.group_order.id}")
        date = LATER.strftime("%Y-%m-%d %H:%M UTC")
        assert tap.alert is not None and date in tap.alert
        await settle(app)
        assert sent.deliveries == []
        [told] = sent.notices_to(BOB, "rules.scheduled")
        assert told.params["date"] == date
        # "show codes again" in the member's private chat is refused until then, too
        async with app.db.uow() as uow:
            order_id = (await uow.groups.order(q.group_order.id)).order_id
        early = await refusal(app.shop.reveal(order_id, Buyer("telegram", BOB)))
        assert early.code is ErrorCode.NOT_YET_DUE
        clock.advance(days=30, minutes=1)
        await settle(app)
        [delivery] = sent.delivered_to(BOB)
        assert len(delivery.codes) == 1 and delivery.order.id == order_id
