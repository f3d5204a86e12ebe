"""Sale rules per product: each rule refuses in the buyer's language, naming the rule, and holds nothing;
limits follow the person across accounts sharing a bound phone. Real SQLite and PostgreSQL, FakeClock."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import ConfigError, parse_settings
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.models import Buyer
from core.risk import RulesError, parse_rules, rules_of
from handlers import errors
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.helpers import buyer, import_n, pay, stock_of
from tests.risk_helpers import START, open_guarded, product, refusal

ALICE, BOB = buyer("alice"), buyer("bob")
TR = Translator(("en", "zh_CN"))


async def _pid(app, sku: str) -> int:  # noqa: ANN001
    p = await app.shop.product_by_sku(sku)
    assert p is not None
    return p.id


def _texts(err: StoreError) -> tuple[str, str]:
    """What the buyer reads, in English and in Chinese (as the chat renders a refusal: handlers/errors.py)."""
    return errors.text(TR, "en", err), errors.text(TR, "zh_CN", err)


# -- configuration -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rules", "where", "says"), [
    ({"per_dya": 1}, "catalog[0].rules.per_dya", "unknown rule"),
    ({"per_day": 0}, "catalog[0].rules.per_day", "at least 1"),
    ({"per_day": "two"}, "catalog[0].rules.per_day", "whole number"),
    ({"per_day": 5, "per_buyer": 2}, "catalog[0].rules.per_day", "per_buyer"),
    ({"sale_start": "soon"}, "catalog[0].rules.sale_start", "ISO 8601"),
    ({"sale_start": "2026-02-01", "sale_end": "2026-01-01"}, "catalog[0].rules.sale_end", "after sale_start"),
    ({"regions": {"allow": ["CN"]}}, "catalog[0].rules.regions.allow", "calling code"),
    ({"regions": {"deny": [86]}}, "catalog[0].rules.regions.deny", "unknown key"),
    ({"regions": {"allow": [86], "block": [1]}}, "catalog[0].rules.regions", "not both"),
    ({"phone_required": "yes"}, "catalog[0].rules.phone_required", "true or false"),
    ({"min_level": -1}, "catalog[0].rules.min_level", "at least 0"),
])
def test_given_a_wrong_rule_in_the_config_then_the_start_stops_naming_the_key(tmp_path: Path, rules, where, says):
    with pytest.raises(ConfigError) as err:
        parse_settings({"catalog": [product("A", **rules)]}, tmp_path, env={})
    assert (where, ) == tuple(p for p, _ in err.value.errors)
    assert says in err.value.errors[0][1]


def test_given_rules_in_the_config_then_they_are_stored_normalized_and_read_back(tmp_path: Path):
    s = parse_settings({"catalog": [product("A", per_day=2, sale_start="2026-03-01T08:00:00+08:00",
                                            effective_from="2026-04-01", regions={"allow": ["+86", 852]},
                                            coupon_stacking=False)]}, tmp_path, env={})
    stored = s.catalog[0].rules
    assert stored == {"per_day": 2, "sale_start": "2026-03-01T00:00:00+00:00",
                      "effective_from": "2026-04-01T00:00:00+00:00", "regions": {"allow": ["86", "852"]},
                      "coupon_stacking": False}
    r = rules_of(stored)
    assert r.per_day == 2 and r.regions_allow == ("86", "852") and not r.coupon_stacking
    assert r.effective_from is not None and r.effective_from.isoformat() == "2026-04-01T00:00:00+00:00"
    with pytest.raises(RulesError) as err:
        parse_rules({"open_holds": 0})
    assert err.value.key == "open_holds"


# -- each rule ----------------------------------------------------------------------------------------------

async def test_given_a_per_day_limit_when_a_buyer_buys_past_it_then_refused_until_the_next_day(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_guarded(db_url, tmp_path, [product("A", per_day=3)], clock=clock) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app, "A")
        first = await app.shop.reserve(ALICE, pid, 2, "en")
        await pay(app, first)
        err = await refusal(app.shop.reserve(ALICE, pid, 2, "en"))
        assert err.code is ErrorCode.RULE_REFUSED and err.params == {"rule": "per_day", "limit": 3, "left": 1}
        en, zh = _texts(err)
        assert "at most 3 per person a day" in en and "1 left" in en
        assert "限购" in zh and "3" in zh
        assert await stock_of(app, "A") == (8, 0, 2)  # nothing more held
        await app.shop.reserve(ALICE, pid, 1, "en")  # what is left today
        assert (await refusal(app.shop.reserve(ALICE, pid, 1, "en"))).params["rule"] == "per_day"
        await app.shop.reserve(BOB, pid, 3, "en")  # another buyer has his own quota
        clock.advance(days=1)
        await app.shop.reserve(ALICE, pid, 2, "en")


async def test_given_a_lifetime_limit_then_cancelled_orders_give_their_quantity_back(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_guarded(db_url, tmp_path, [product("A", per_buyer=3)], clock=clock) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app, "A")
        order = await app.shop.reserve(ALICE, pid, 2, "en")
        err = await refusal(app.shop.reserve(ALICE, pid, 2, "en"))
        assert err.params == {"rule": "per_buyer", "limit": 3, "left": 1}
        assert "at most 3 per person" in _texts(err)[0]
        await app.shop.cancel(order.id, ALICE)
        await pay(app, await app.shop.reserve(ALICE, pid, 3, "en"))
        clock.advance(days=400)
        assert (await refusal(app.shop.reserve(ALICE, pid, 1, "en"))).params["rule"] == "per_buyer"


async def test_given_an_open_holds_limit_then_a_second_unpaid_order_of_the_product_is_refused(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A", open_holds=1), product("B")]) as (app, _, _):
        await import_n(app, 5, "A")
        await import_n(app, 5, "B", prefix="B")
        a, b = await _pid(app, "A"), await _pid(app, "B")
        held = await app.shop.reserve(ALICE, a, 1, "en")
        err = await refusal(app.shop.reserve(ALICE, a, 1, "en"))
        assert err.params == {"rule": "open_holds", "limit": 1} and "unpaid" in _texts(err)[0]
        await app.shop.reserve(ALICE, b, 1, "en")  # another product is not limited
        await pay(app, held)
        await app.shop.reserve(ALICE, a, 1, "en")  # paid: the slot is free again


async def test_given_a_sale_window_then_orders_before_and_after_it_are_refused(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    rules = {"sale_start": (START + timedelta(hours=1)).isoformat(),
             "sale_end": (START + timedelta(hours=2)).isoformat()}
    async with open_guarded(db_url, tmp_path, [product("A", **rules)], clock=clock) as (app, _, _):
        await import_n(app, 5, "A")
        pid = await _pid(app, "A")
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert err.params == {"rule": "sale_not_started", "start": "2026-03-02 10:00 UTC"}
        assert "goes on sale at 2026-03-02 10:00 UTC" in _texts(err)[0] and "开售" in _texts(err)[1]
        clock.advance(minutes=61)
        await app.shop.reserve(ALICE, pid, 1, "en")
        clock.advance(minutes=60)
        err = await refusal(app.shop.reserve(BOB, pid, 1, "en"))
        assert err.params["rule"] == "sale_ended" and "停止销售" in _texts(err)[1]
        assert await stock_of(app, "A") == (4, 1, 0)


async def test_given_phone_binding_required_then_a_buyer_without_a_phone_is_refused_until_bound(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A", phone_required=True)]) as (app, _, _):
        await import_n(app, 5, "A")
        pid = await _pid(app, "A")
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "zh_CN"))
        assert err.params == {"rule": "phone_required"} and "绑定手机号" in _texts(err)[1]
        assert await app.shop.risk.bind_phone(ALICE, "not a phone") is None
        assert await app.shop.risk.bind_phone(ALICE, "+86 138 0013 8000") == "8613800138000"
        await app.shop.reserve(ALICE, pid, 1, "zh_CN")
        assert (await app.shop.customer(ALICE, fresh=True)).phone == "8613800138000"


async def test_given_region_rules_then_the_bound_phones_calling_code_decides(db_url: str, tmp_path: Path) -> None:
    catalog = [product("CN", regions={"allow": [86, 852]}), product("NOUS", regions={"block": ["+1"]})]
    async with open_guarded(db_url, tmp_path, catalog) as (app, _, _):
        await import_n(app, 5, "CN")
        await import_n(app, 5, "NOUS", prefix="N")
        cn, nous = await _pid(app, "CN"), await _pid(app, "NOUS")
        us, hk = Buyer("test", "us"), Buyer("test", "hk")
        await app.shop.risk.bind_phone(us, "+1 415 555 0100")
        await app.shop.risk.bind_phone(hk, "+852 9123 4567")
        assert (await refusal(app.shop.reserve(ALICE, cn, 1, "en"))).params["rule"] == "phone_required"
        err = await refusal(app.shop.reserve(us, cn, 1, "en"))
        assert err.params == {"rule": "region", "prefix": "+1"} and "from +1" in _texts(err)[0]
        assert "地区限制" in _texts(err)[1]
        await app.shop.reserve(hk, cn, 1, "en")
        assert (await refusal(app.shop.reserve(us, nous, 1, "en"))).params["rule"] == "region"
        await app.shop.reserve(hk, nous, 1, "en")


async def test_given_member_and_reseller_products_then_only_those_buyers_may_buy(db_url: str, tmp_path: Path) -> None:
    catalog = [product("GOLD", min_level=2), product("B2B", resellers_only=True)]
    async with open_guarded(db_url, tmp_path, catalog) as (app, _, _):
        await import_n(app, 5, "GOLD")
        await import_n(app, 5, "B2B", prefix="R")
        gold, b2b = await _pid(app, "GOLD"), await _pid(app, "B2B")
        err = await refusal(app.shop.reserve(ALICE, gold, 1, "en"))
        assert err.params == {"rule": "member_level", "level": 2} and "level 2" in _texts(err)[0]
        assert "会员等级" in _texts(err)[1]
        err = await refusal(app.shop.reserve(ALICE, b2b, 1, "en"))
        assert err.params == {"rule": "resellers_only"} and "代理" in _texts(err)[1]
        await app.shop.risk.set_level(ALICE, 2)
        await app.shop.reserve(ALICE, gold, 1, "en")
        assert (await refusal(app.shop.reserve(ALICE, b2b, 1, "en"))).params["rule"] == "resellers_only"
        await app.shop.risk.set_level(BOB, 0, reseller=True)
        await app.shop.reserve(BOB, b2b, 1, "en")


async def test_given_an_effective_date_and_no_coupon_stacking_then_the_product_carries_them(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("VIP", effective_from="2026-04-01",
                                                       coupon_stacking=False)]) as (app, _, _):
        p = await app.shop.product_by_sku("VIP")
        assert p is not None
        r = rules_of(p.rules)
        assert r.effective_from is not None and r.effective_from.date().isoformat() == "2026-04-01"
        assert r.coupon_stacking is False


async def test_given_two_accounts_sharing_a_phone_then_they_share_one_daily_quota(db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A", per_day=2)]) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app, "A")
        tg, wx = Buyer("test", "tg-1"), Buyer("wechat", "openid-1")
        for b in (tg, wx):
            await app.shop.risk.bind_phone(b, "+8613800138000")
        await app.shop.reserve(tg, pid, 2, "en")
        err = await refusal(app.shop.reserve(wx, pid, 1, "en"))
        assert err.params == {"rule": "per_day", "limit": 2, "left": 0}


async def test_given_a_refusal_when_shown_through_the_customer_flow_then_it_names_the_rule(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A", phone_required=True)]) as (app, _, _):
        await import_n(app, 5, "A")
        pid = await _pid(app, "A")
        flow = CustomerFlow(app.shop, TR, shop_name="Test Shop")
        ctx = Ctx(ALICE, ALICE.external_id, "zh-hans")
        await flow.on_action(ctx, "lang:zh_CN")
        screens = await flow.on_action(ctx, f"buy:{pid}:1")
        assert screens[0].error == "rule_refused"
        assert "购买该商品需要绑定手机号" in screens[0].title + screens[0].body
        assert await stock_of(app, "A") == (5, 0, 0)


async def test_given_a_per_day_limit_when_one_buyer_races_on_two_store_processes_then_it_is_never_overrun(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    catalog = [product("A", per_day=2)]
    risk = {"buyer_orders": 100}  # this test is about the quota, not velocity
    async with open_guarded(db_url, tmp_path, catalog, clock=clock, risk=risk, store={"max_open_holds": 10}) as (
            app, _, _), open_guarded(db_url, tmp_path, catalog, clock=clock, risk=risk,
                                     store={"max_open_holds": 10}) as (app2, _, _):
        await import_n(app, 20, "A")
        pid = await _pid(app, "A")
        results = await asyncio.gather(*[(app if i % 2 else app2).shop.reserve(ALICE, pid, 1, "en")
                                         for i in range(12)], return_exceptions=True)
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(results) - len(refused) == 2
        assert {e.params["rule"] for e in refused} == {"per_day"}
        assert await stock_of(app, "A") == (18, 2, 0)


async def test_given_buyers_racing_for_limited_and_unlimited_products_on_two_processes_then_every_quota_holds(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    catalog = [product("A", per_day=1), product("B")]
    risk = {"buyer_orders": 100}
    async with open_guarded(db_url, tmp_path, catalog, clock=clock, risk=risk, store={"max_open_holds": 10}) as (
            app, _, _), open_guarded(db_url, tmp_path, catalog, clock=clock, risk=risk,
                                     store={"max_open_holds": 10}) as (app2, _, _):
        await import_n(app, 100, "A")
        await import_n(app, 100, "B", prefix="B")
        a, b = await _pid(app, "A"), await _pid(app, "B")
        people = [buyer(f"p{i}") for i in range(12)]
        calls = [(app if (i + j) % 2 else app2).shop.reserve(p, a if (i + j) % 3 else b, 1, "en")
                 for j in range(4) for i, p in enumerate(people)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, StoreError) and r.params.get("rule") == "per_day" or not isinstance(r, Exception)
                   for r in results), [r for r in results if isinstance(r, Exception)]
        held_a = [r for r in results if not isinstance(r, Exception) and r.product_id == a]
        assert sorted(o.buyer.external_id for o in held_a) == sorted({p.external_id for p in people})


async def test_given_a_merchant_changing_a_products_rules_then_the_next_order_follows_them(
        db_url: str, tmp_path: Path) -> None:
    merchant = Buyer("test", "merchant")
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 5, "A")
        pid = await _pid(app, "A")
        await app.shop.reserve(ALICE, pid, 1, "en")
        with pytest.raises(RulesError) as err:
            await app.shop.risk.set_rules("A", {"per_day": "lots"}, merchant)
        assert err.value.key == "per_day"
        assert await app.shop.risk.set_rules("A", {"per_day": 1, "coupon_stacking": False}, merchant) == {
            "per_day": 1, "coupon_stacking": False}
        assert (await refusal(app.shop.reserve(ALICE, pid, 1, "en"))).params["rule"] == "per_day"
        async with app.db.uow() as uow:
            [entry] = await uow.audit.latest("admin", merchant.key)
        assert entry.detail["command"] == "rules" and entry.detail["rules"]["per_day"] == 1
        with pytest.raises(StoreError):
            await app.shop.risk.set_rules("NOPE", {}, merchant)
