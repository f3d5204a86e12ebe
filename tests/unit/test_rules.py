"""Product rules (core/risk/rules.py): who may buy a product, how much and when. `check` is the pure decision; the
limits that count past orders are decided by `Guard.screen` (core/risk/), the one function every order passes,
here on the fake unit of work. Each refusal names the rule (the buyer reads `rules.refused.<rule>`)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ErrorCode, StoreError
from core.models import Buyer, OrderStatus, Product
from core.risk import (
    NO_RULES,
    Assessment,
    BuyerFacts,
    Counts,
    Guard,
    Intent,
    RiskPolicy,
    RulesError,
    calling_code,
    check,
    exemptions,
    normalize_phone,
    normalize_rules,
    parse_rules,
)
from handlers import errors
from tests.unit.conftest import START
from tests.unit.fakes import FakeUnitOfWorkFactory

ALICE, BOB = Buyer("telegram", "alice"), Buyer("wechat", "bob")
FACTS = BuyerFacts(created_at=START - timedelta(days=365))


async def screen(fake: FakeUnitOfWorkFactory, product: Product, *intents: Intent,
                 zone: str = "UTC") -> list[StoreError | Assessment]:
    """The decision on each order, as a reserve batch or a wallet batch asks it (in one write transaction)."""
    guard = Guard(fake.clock, RiskPolicy(), zone)
    async with fake(write=True) as uow:
        out = await guard.screen(uow, intents, {product.id: product}, fake.clock.now())
        await uow.commit()
    return out


def rule_of(verdict: StoreError | Assessment) -> str | None:
    """The rule that refused the order (None: it may go on)."""
    if isinstance(verdict, Assessment):
        return None
    assert verdict.code is ErrorCode.RULE_REFUSED, verdict
    assert errors.message_of(verdict).key == f"rules.refused.{verdict.params['rule']}"  # what the buyer reads names it
    return verdict.params["rule"]


# -- the rules as the merchant writes them ------------------------------------------------------------------

@pytest.mark.parametrize(("rules", "key"), [
    ({"per_dya": 1}, "per_dya"), ({"per_day": 0}, "per_day"), ({"per_day": True}, "per_day"),
    ({"per_day": 5, "per_buyer": 2}, "per_day"), ({"sale_start": "soon"}, "sale_start"),
    ({"sale_start": "2026-02-01", "sale_end": "2026-01-01"}, "sale_end"),
    ({"regions": {"allow": ["CN"]}}, "regions.allow"), ({"regions": {"allow": [86], "block": [1]}}, "regions"),
    ({"deliver_on_effective": True}, "deliver_on_effective"), ({"partial": "maybe"}, "partial"),
])
def test_a_wrong_rule_is_refused_naming_its_key(rules: dict, key: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(rules)
    assert err.value.key == key


def test_rules_are_stored_in_one_form_whatever_way_the_merchant_wrote_them() -> None:
    assert normalize_rules({"sale_start": "2026-03-01T08:00:00+08:00", "regions": {"allow": ["+86", "00852", 86]},
                            "per_day": 2, "coupon_stacking": True}) == {
        "per_day": 2, "sale_start": "2026-03-01T00:00:00+00:00", "regions": {"allow": ["86", "852"]}}
    assert normalize_rules({}) == {} and parse_rules(None) is NO_RULES


def test_phone_numbers_are_normalized_with_their_country_code() -> None:
    # moved from tests/test_rules.py: a pure function, no store needed
    assert normalize_phone("+86 138-0013-8000") == normalize_phone("008613800138000") == "8613800138000"
    assert normalize_phone("12") is None and normalize_phone("+0123456789") is None
    assert calling_code("8613800138000") == "86" and calling_code("85291234567") == "852"
    assert calling_code("14155550100") == "1" and calling_code("79161234567") == "7"


# -- each rule, as `check` decides it -----------------------------------------------------------------------

def test_a_sale_window_refuses_orders_before_it_opens_and_from_the_moment_it_closes() -> None:
    rules = parse_rules({"sale_start": "2026-03-02T10:00:00Z", "sale_end": "2026-03-03T10:00:00Z"})
    before = check(rules, 1, START, FACTS, None)
    assert before is not None and before.params == {"rule": "sale_not_started", "start": "2026-03-02 10:00 UTC"}
    assert check(rules, 1, START + timedelta(hours=1), FACTS, None) is None
    closed = check(rules, 1, START + timedelta(hours=25), FACTS, None)
    assert closed is not None and closed.params == {"rule": "sale_ended", "end": "2026-03-03 10:00 UTC"}


def test_a_phone_only_product_asks_for_a_bound_phone_and_a_region_rule_reads_its_calling_code() -> None:
    assert rule_of(check(parse_rules({"phone_required": True}), 1, START, FACTS, None)) == "phone_required"
    china = BuyerFacts(phone="8613800138000", created_at=FACTS.created_at)
    hong_kong = BuyerFacts(phone="85291234567", created_at=FACTS.created_at)
    allow = parse_rules({"regions": {"allow": [86]}})
    assert check(allow, 1, START, china, None) is None
    refused = check(allow, 1, START, hong_kong, None)
    assert refused is not None and refused.params == {"rule": "region", "prefix": "+852"}
    assert rule_of(check(allow, 1, START, FACTS, None)) == "phone_required"  # a region needs a phone to tell
    block = parse_rules({"regions": {"block": ["+852"]}})
    assert check(block, 1, START, china, None) is None and rule_of(check(block, 1, START, hong_kong, None)) == "region"


def test_member_and_reseller_products_are_for_those_buyers_only() -> None:
    gold = parse_rules({"min_level": 2})
    assert rule_of(check(gold, 1, START, BuyerFacts(level=1), None)) == "member_level"
    assert check(gold, 1, START, BuyerFacts(level=2), None) is None
    trade = parse_rules({"resellers_only": True})
    assert rule_of(check(trade, 1, START, FACTS, None)) == "resellers_only"
    assert check(trade, 1, START, BuyerFacts(reseller=True), None) is None


def test_a_limit_says_how_many_are_left() -> None:
    rules = parse_rules({"per_day": 3, "per_buyer": 5})
    assert check(rules, 1, START, FACTS, Counts(day_qty=2, total_qty=2)) is None
    today = check(rules, 2, START, FACTS, Counts(day_qty=2, total_qty=2))
    assert today is not None and today.params == {"rule": "per_day", "limit": 3, "left": 1}
    ever = check(rules, 1, START, FACTS, Counts(day_qty=0, total_qty=5))
    assert ever is not None and ever.params == {"rule": "per_buyer", "limit": 5, "left": 0}


def test_what_a_reseller_is_exempt_from_is_skipped_but_a_sale_window_holds_for_everyone() -> None:
    rules = parse_rules({"per_day": 1, "phone_required": True})
    skip = exemptions(["per_day", "phone_required"])
    assert check(rules, 5, START, FACTS, Counts(day_qty=1, total_qty=1), skip) is None
    with pytest.raises(ValueError, match="sale_start"):
        exemptions(["sale_start"])


def test_codes_of_a_product_that_starts_later_are_due_on_its_effective_date() -> None:
    rules = parse_rules({"effective_from": "2026-04-01", "deliver_on_effective": True})
    assert rules.delivery_due(START) == datetime(2026, 4, 1, tzinfo=UTC)
    assert rules.delivery_due(datetime(2026, 4, 2, tzinfo=UTC)) is None  # paid after: at once


# -- limits that count past orders, through Guard.screen on the fake unit of work ------------------------------

async def test_a_daily_limit_counts_todays_orders_and_frees_up_the_next_day(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD", rules={"per_day": 3})
    fake.add_codes(card, 10)
    fake.add_customer(ALICE)
    fake.add_order(ALICE, card, 2)
    fake.add_order(ALICE, card, 5, status=OrderStatus.CANCELLED)  # given back: does not count
    two, one = Intent(ALICE, card.id, 2, 2000), Intent(ALICE, card.id, 1, 1000)
    [refused] = await screen(fake, card, two)
    assert refused.params == {"rule": "per_day", "limit": 3, "left": 1}  # type: ignore[union-attr]
    assert [rule_of(v) for v in await screen(fake, card, one)] == [None]
    assert [rule_of(v) for v in await screen(fake, card, Intent(BOB, card.id, 3, 3000))] == [None]  # his own
    fake.clock.advance(days=1)
    assert [rule_of(v) for v in await screen(fake, card, two)] == [None]


async def test_the_day_of_a_daily_limit_is_the_shops_day(fake: FakeUnitOfWorkFactory) -> None:
    """A shop in Shanghai: its day starts at 16:00 UTC, so an order of 15:00 UTC was yesterday's."""
    card = fake.add_product("CARD", rules={"per_day": 1})
    fake.add_codes(card, 5)
    fake.add_customer(ALICE)
    fake.clock.advance(hours=6)  # 15:00 UTC, 23:00 in Shanghai
    fake.add_order(ALICE, card, 1)
    fake.clock.advance(hours=2)  # 01:00 the next day in Shanghai, the same day in UTC
    intent = Intent(ALICE, card.id, 1, 1000)
    assert [rule_of(v) for v in await screen(fake, card, intent, zone="Asia/Shanghai")] == [None]
    assert [rule_of(v) for v in await screen(fake, card, intent, zone="UTC")] == ["per_day"]


async def test_orders_in_one_batch_count_for_the_next_order_of_the_same_person(fake: FakeUnitOfWorkFactory) -> None:
    """A burst from one scalper lands in one batch: the second order is refused though nothing was stored yet."""
    card = fake.add_product("CARD", rules={"per_buyer": 3})
    fake.add_customer(ALICE)
    verdicts = await screen(fake, card, Intent(ALICE, card.id, 2, 2000), Intent(ALICE, card.id, 2, 2000),
                            Intent(ALICE, card.id, 1, 1000))
    assert [rule_of(v) for v in verdicts] == [None, "per_buyer", None]


async def test_accounts_sharing_a_bound_phone_share_one_quota(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD", rules={"per_day": 2})
    fake.add_codes(card, 5)
    fake.add_customer(ALICE, phone="8613800138000")
    fake.add_customer(BOB, phone="8613800138000")  # the same person on WeChat
    fake.add_order(ALICE, card, 2)
    [refused] = await screen(fake, card, Intent(BOB, card.id, 1, 1000))
    assert refused.params == {"rule": "per_day", "limit": 2, "left": 0}  # type: ignore[union-attr]


async def test_an_unpaid_order_blocks_a_second_one_of_the_product_but_not_a_wallet_order(
        fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD", rules={"open_holds": 1})
    fake.add_codes(card, 5)
    fake.add_customer(ALICE)
    fake.add_order(ALICE, card, 1, status=OrderStatus.HELD)
    [refused] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert refused.params == {"rule": "open_holds", "limit": 1}  # type: ignore[union-attr]
    paid_at_once = Intent(ALICE, card.id, 1, 1000, holds=False, reseller=True)  # a reseller's wallet order
    assert [rule_of(v) for v in await screen(fake, card, paid_at_once)] == [None]
    fake.clock.advance(minutes=16)  # the hold lapsed
    assert [rule_of(v) for v in await screen(fake, card, Intent(ALICE, card.id, 1, 1000))] == [None]


async def test_a_resellers_order_exempt_from_the_daily_limit_passes_it(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD", rules={"per_day": 1})
    fake.add_codes(card, 5)
    reseller = Buyer("api", "7")
    fake.add_order(reseller, card, 1)
    exempt = Intent(reseller, card.id, 3, 3000, holds=False, reseller=True, exempt=exemptions(["per_day", "risk"]))
    assert [rule_of(v) for v in await screen(fake, card, exempt)] == [None]
    plain = Intent(reseller, card.id, 1, 1000, holds=False, reseller=True, exempt=exemptions(["risk"]))
    assert [rule_of(v) for v in await screen(fake, card, plain)] == ["per_day"]
