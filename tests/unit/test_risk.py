"""Risk scoring (core/risk/): every order is scored as it is reserved; points add up per signal and the total
decides: allow, challenge (a sum to answer in the chat), review (held for a merchant) or refuse. Most buyers are
never bothered. `Guard.screen` / `Guard.reserve_batch` on the fake unit of work, with the default `risk:` policy
(challenge at 30, review at 60, refuse at 90)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, Order, OrderStatus, Product
from core.orders import OrderBook, OrderPolicy, ReserveRequest
from core.risk import ALLOW, CHALLENGE, REFUSE, REVIEW, Assessment, Guard, Intent, RiskDesk, RiskPolicy, exemptions
from tests.unit.fakes import FakeUnitOfWorkFactory

ALICE, SCALPER = Buyer("telegram", "alice"), Buyer("telegram", "scalper")
POLICY = RiskPolicy()


async def screen(fake: FakeUnitOfWorkFactory, product: Product, *intents: Intent,
                 policy: RiskPolicy = POLICY) -> list[StoreError | Assessment]:
    guard = Guard(fake.clock, policy)
    async with fake(write=True) as uow:
        out = await guard.screen(uow, intents, {product.id: product}, fake.clock.now())
        await uow.commit()
    return out


def signals(verdict: StoreError | Assessment) -> dict[str, int]:
    assert isinstance(verdict, Assessment), verdict
    return {r.signal: r.points for r in verdict.reasons}


def test_the_total_score_decides_at_the_policys_thresholds() -> None:
    assert [POLICY.decision(s) for s in (0, 29, 30, 59, 60, 89, 90, 500)] == [
        ALLOW, ALLOW, CHALLENGE, CHALLENGE, REVIEW, REVIEW, REFUSE, REFUSE]


@pytest.mark.parametrize(("amount", "points"), [(1_000, 0), (50_000, 0), (50_001, 10), (100_001, 20),
                                                (300_001, 40), (10_000_000, 40)])
def test_a_larger_order_adds_points_by_step(amount: int, points: int) -> None:
    assert POLICY.value_points(amount) == points


async def test_a_known_buyers_ordinary_order_passes_untouched(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_customer(ALICE)
    [verdict] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert isinstance(verdict, Assessment) and (verdict.score, verdict.decision, verdict.reasons) == (0, ALLOW, [])


async def test_a_new_account_is_noted_but_not_stopped(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_customer(ALICE, created_at=fake.clock.now() - timedelta(minutes=5))
    [verdict] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert signals(verdict) == {"new_account": 10} and verdict.decision == ALLOW  # type: ignore[union-attr]


async def test_a_large_order_from_a_new_account_is_challenged_and_a_right_answer_lets_it_through(
        fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("GIFT", price=400_000)
    big = Intent(ALICE, card.id, 1, 400_000)  # never seen before: new account (10) + value (40)
    [challenge] = await screen(fake, card, big)
    assert isinstance(challenge, StoreError) and challenge.code is ErrorCode.CHALLENGE_REQUIRED
    a, b = (int(x) for x in challenge.params["question"].split(" + "))
    assert str(a + b) in challenge.params["options"] and len(challenge.params["options"]) == 4
    desk = RiskDesk(fake, fake.clock, Guard(fake.clock, POLICY), hold_minutes=lambda _: 15)
    assert not await desk.pass_challenge(SCALPER, challenge.params["token"], str(a + b))  # only its buyer
    assert await desk.pass_challenge(ALICE, challenge.params["token"], str(a + b))
    [passed] = await screen(fake, card, big)
    assert signals(passed)["challenge_passed"] == 0 and passed.decision == ALLOW  # type: ignore[union-attr]
    fake.clock.advance(minutes=POLICY.pass_minutes + 1)  # the pass lasts an hour
    [again] = await screen(fake, card, big)
    assert isinstance(again, StoreError) and again.code is ErrorCode.CHALLENGE_REQUIRED


async def test_a_wrong_answer_uses_the_challenge_up(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("GIFT", price=400_000)
    [challenge] = await screen(fake, card, Intent(ALICE, card.id, 1, 400_000))
    assert isinstance(challenge, StoreError)
    desk = RiskDesk(fake, fake.clock, Guard(fake.clock, POLICY), hold_minutes=lambda _: 15)
    right = fake.state.challenges[challenge.params["token"]].challenge.answer
    assert not await desk.pass_challenge(ALICE, challenge.params["token"], str(int(right) + 1))
    assert not await desk.pass_challenge(ALICE, challenge.params["token"], right)  # used


async def test_a_burst_of_orders_is_challenged_from_the_sixth_in_ten_minutes(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_codes(card, 20)
    fake.add_customer(ALICE)
    for _ in range(4):
        fake.add_order(ALICE, card, created_at=fake.clock.now() - timedelta(minutes=3))
    verdicts = await screen(fake, card, Intent(ALICE, card.id, 1, 1000), Intent(ALICE, card.id, 1, 1000))
    assert isinstance(verdicts[0], Assessment) and verdicts[0].decision == ALLOW  # the fifth: free
    assert isinstance(verdicts[1], StoreError) and verdicts[1].code is ErrorCode.CHALLENGE_REQUIRED
    fake.clock.advance(minutes=10)  # the window moved on
    [later] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert isinstance(later, Assessment) and later.decision == ALLOW


async def test_a_scalper_in_a_batch_of_ordinary_buyers_is_stopped_and_nobody_else_is_bothered(
        fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    buyers = [Buyer("telegram", f"b{i}") for i in range(20)]
    for b in [*buyers, SCALPER]:
        fake.add_customer(b)
    intents = [Intent(b, card.id, 1, 1000) for b in buyers] + [Intent(SCALPER, card.id, 1, 1000)] * 10
    verdicts = await screen(fake, card, *intents)
    assert all(isinstance(v, Assessment) and v.score == 0 for v in verdicts[:20])
    mine = verdicts[20:]
    assert all(isinstance(v, Assessment) for v in mine[:5])
    assert all(isinstance(v, StoreError) and v.code is ErrorCode.CHALLENGE_REQUIRED for v in mine[5:])


async def test_refunds_and_problem_reports_make_the_next_order_suspect(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_customer(ALICE)
    fake.add_order(ALICE, card, status=OrderStatus.REFUNDED, created_at=fake.clock.now() - timedelta(days=30))
    [one] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert signals(one) == {"refunds": 20} and one.decision == ALLOW  # type: ignore[union-attr]
    fake.add_order(ALICE, card, status=OrderStatus.REFUNDED,
                   created_at=fake.clock.now() - timedelta(days=200))  # past history_days: forgotten
    fake.state.audit.append(AuditEntry("report", ALICE.key, ALICE.channel, fake.clock.now() - timedelta(days=1),
                                       "O-other", detail={"problem": "not_working"}))  # a problem reported
    [two] = await screen(fake, card, Intent(ALICE, card.id, 1, 1000))
    assert isinstance(two, StoreError) and two.code is ErrorCode.CHALLENGE_REQUIRED  # 2 x 20 points


async def test_many_orders_from_one_group_chat_slow_the_chat_down(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_codes(card, 40)
    members = [Buyer("telegram", f"m{i}") for i in range(31)]
    for m in members:
        fake.add_customer(m)
    for m in members[:30]:
        fake.add_order(m, card, chat_id="-100group", created_at=fake.clock.now() - timedelta(minutes=2))
    [verdict] = await screen(fake, card, Intent(members[30], card.id, 1, 1000, group="-100group"))
    assert signals(verdict) == {"velocity_chat": 10}
    [private] = await screen(fake, card, Intent(members[30], card.id, 1, 1000))
    assert signals(private) == {}


async def test_a_ban_refuses_every_account_of_the_person_even_one_exempt_from_the_score(
        fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    wechat = Buyer("wechat", "o-alice")
    fake.add_customer(ALICE, phone="8613800138000")
    fake.add_customer(wechat, phone="8613800138000")
    fake.ban("user", ALICE.key)
    for intent in (Intent(ALICE, card.id, 1, 1000), Intent(wechat, card.id, 1, 1000),
                   Intent(wechat, card.id, 1, 1000, holds=False, reseller=True, exempt=exemptions(["risk"]))):
        [verdict] = await screen(fake, card, intent)
        assert isinstance(verdict, StoreError) and verdict.code is ErrorCode.RISK_REFUSED
        assert verdict.params == {}  # the reasons are for merchants, not for the buyer


async def test_a_wallet_order_that_would_be_challenged_is_refused_nobody_could_answer(
        fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("GIFT", price=400_000)
    [verdict] = await screen(fake, card, Intent(ALICE, card.id, 1, 400_000, holds=False, reseller=True))
    assert isinstance(verdict, StoreError) and verdict.code is ErrorCode.RISK_REFUSED


async def test_with_risk_off_only_the_products_own_rules_decide(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("GIFT", price=400_000)
    fake.ban("user", ALICE.key)
    [verdict] = await screen(fake, card, Intent(ALICE, card.id, 1, 400_000), policy=RiskPolicy(enabled=False))
    assert isinstance(verdict, Assessment) and verdict.decision == ALLOW


async def test_a_review_keeps_the_order_held_longer_until_a_merchant_decides(fake: FakeUnitOfWorkFactory) -> None:
    """Through the chat order's reserve batch: the scored order is made, held for review_hold_minutes, and the
    buyer is told it is under review (nothing to pay yet)."""
    card = fake.add_product("GIFT", price=400_000)
    fake.add_codes(card, 1)
    fake.add_customer(ALICE, created_at=fake.clock.now() - timedelta(minutes=1))  # new: 10
    fake.add_order(ALICE, card, status=OrderStatus.REFUNDED,
                   created_at=fake.clock.now() - timedelta(days=3))  # a refund: 20 (value: 40) = 70
    guard = Guard(fake.clock, POLICY)
    book = OrderBook(fake.clock, OrderPolicy(hold_minutes=15, max_open_holds=3))
    async with fake(write=True) as uow:
        [result] = await guard.reserve_batch(uow, [ReserveRequest(ALICE, card.id, 1, "en")], book.reserve_batch)
        await uow.commit()
    assert isinstance(result, StoreError) and result.code is ErrorCode.UNDER_REVIEW
    order: Order = fake.orders[result.params["order_id"]]
    assert order.status is OrderStatus.HELD
    assert order.expires_at == fake.clock.now() + timedelta(minutes=POLICY.review_hold_minutes)
    risk = fake.state.order_risk[order.id]
    assert (risk.decision, risk.score, risk.review) == (REVIEW, 70, "pending")
