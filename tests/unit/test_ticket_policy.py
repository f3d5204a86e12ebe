"""After-sales policy (core/aftersales/problems.py ProblemDesk, ReissuePolicy): a buyer who reports a code that does not
work gets a new one at once when the product's policy allows it (automatic reissue on, within the window after
delivery, under the reissues per order, a clean history); otherwise the report goes to the merchants as a ticket
saying why. On the fake unit of work; the merchants' tickets and the chat are in tests/test_aftersales_tickets.py."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from core.aftersales import ProblemDesk, ReissuePolicy, clean_note, problems_for, ticket_id_of
from core.errors import ErrorCode, StoreError
from core.models import Buyer, CodeStatus, Kind, Order, OrderStatus, Product
from tests.unit.fakes import FakeUnitOfWorkFactory

ALICE, MALLORY = Buyer("telegram", "alice"), Buyer("telegram", "mallory")
POLICY = ReissuePolicy(auto=True, reissues_per_order=1, window_hours=24, max_reports=2)


class RecordingAlerts:
    """The merchants' alerts (core.alerts.AdminAlerts), recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def alert(self, key: str, params: dict[str, Any], commands: Any = ()) -> None:
        self.sent.append((key, params))


@pytest.fixture
def alerts() -> RecordingAlerts:
    return RecordingAlerts()


@pytest.fixture
def card(fake: FakeUnitOfWorkFactory) -> Product:
    card = fake.add_product("CARD")
    fake.add_codes(card, 5)
    return card


def problem_desk(fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts, **policies: ReissuePolicy) -> ProblemDesk:
    return ProblemDesk(fake, fake.clock, policies=policies or {"CARD": POLICY}, alerts=alerts)


def delivered(fake: FakeUnitOfWorkFactory, product: Product, *, hours_ago: float = 1, qty: int = 1) -> Order:
    return fake.add_order(ALICE, product, qty, created_at=fake.clock.now() - timedelta(hours=hours_ago))


async def test_a_code_that_does_not_work_is_replaced_at_once_within_the_policy(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts, card: Product) -> None:
    order = delivered(fake, card, qty=2)
    old = fake.codes_of(order.id)
    outcome = await problem_desk(fake, alerts).report(ALICE, order.id, "not_working")
    assert (outcome.outcome, outcome.why) == ("reissued", "")
    assert all(fake.codes[c].status is CodeStatus.BURNED for c in old)  # never sold again
    fresh = fake.codes_of(order.id, CodeStatus.SOLD)
    assert len(fresh) == 2 and not set(fresh) & set(old)
    [sent] = fake.outbox
    assert (sent.kind, sent.order_id, sent.payload["code_ids"], sent.payload["notice"]) == (
        "reissue", order.id, fresh, "aftersales.replaced")
    assert [k for k, _ in alerts.sent] == ["aftersales.alert.reissued"]  # the merchants hear of it


@pytest.mark.parametrize(("setup", "problem", "why"), [
    ("second_report", "not_working", "limit"),
    ("late", "used", "window"),
    ("reported_twice_this_month", "not_working", "history"),
    ("empty_pool", "not_working", "no_stock"),
    ("", "wrong_product", "reason"),
    ("", "other", "reason"),
])
async def test_outside_the_policy_the_report_goes_to_the_merchants_saying_why(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts, card: Product, setup: str, problem: str,
        why: str) -> None:
    desk = problem_desk(fake, alerts)
    order = delivered(fake, card, hours_ago=25 if setup == "late" else 1)
    if setup == "second_report":
        assert (await desk.report(ALICE, order.id, "not_working")).outcome == "reissued"
        alerts.sent.clear()
    if setup == "reported_twice_this_month":
        for days in (3, 20):  # two other orders reported within 30 days
            other = delivered(fake, card, hours_ago=24 * days)
            fake.clock.advance(hours=-24 * days + 1)
            await desk.report(ALICE, other.id, "other")
            fake.clock.advance(hours=24 * days - 1)
        alerts.sent.clear()
    if setup == "empty_pool":
        fake.state.codes = {i: c for i, c in fake.codes.items() if c.status is not CodeStatus.AVAILABLE}
    codes_before = {i: c.status for i, c in fake.codes.items()}
    outbox_before = len(fake.outbox)
    outcome = await desk.report(ALICE, order.id, problem, "it says already redeemed")
    assert (outcome.outcome, outcome.why) == ("ticket", why)
    assert {i: c.status for i, c in fake.codes.items()} == codes_before  # nothing burned, nothing new
    assert len(fake.outbox) == outbox_before
    assert [p["why"] for _, p in alerts.sent] == [why]  # one alert, with the reason
    [entry] = [e for e in fake.audit if e.order_id == order.id and e.detail.get("outcome") == "ticket"]
    assert entry.detail["note"] == "it says already redeemed"


async def test_a_product_whose_policy_is_off_always_goes_to_the_merchants(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts) -> None:
    gift = fake.add_product("GIFT")
    fake.add_codes(gift, 2)
    order = delivered(fake, gift)
    desk = problem_desk(fake, alerts, GIFT=ReissuePolicy(auto=False))
    assert (await desk.report(ALICE, order.id, "not_working")).why == "off"


async def test_a_product_without_a_policy_of_its_own_follows_the_default_one_reissue_a_day(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts) -> None:
    other = fake.add_product("OTHER")
    fake.add_codes(other, 3)
    desk = ProblemDesk(fake, fake.clock, alerts=alerts)  # the default ReissuePolicy
    order = delivered(fake, other)
    assert (await desk.report(ALICE, order.id, "not_working")).outcome == "reissued"
    assert (await desk.report(ALICE, order.id, "not_working")).why == "limit"


async def test_two_reports_at_once_cannot_both_be_reissued(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts, card: Product) -> None:
    order = delivered(fake, card)
    desk = problem_desk(fake, alerts)
    outcomes = await asyncio.gather(*(desk.report(ALICE, order.id, "not_working") for _ in range(3)))
    assert sorted(o.outcome for o in outcomes) == ["reissued", "ticket", "ticket"]
    assert len(fake.codes_of(order.id, CodeStatus.SOLD)) == 1


async def test_only_the_buyer_of_a_delivered_order_may_report_it_and_only_problems_its_product_can_have(
        fake: FakeUnitOfWorkFactory, alerts: RecordingAlerts, card: Product) -> None:
    desk = problem_desk(fake, alerts)
    order = delivered(fake, card)
    with pytest.raises(StoreError) as err:
        await desk.report(MALLORY, order.id, "not_working")
    assert err.value.code is ErrorCode.NOT_YOUR_ORDER
    with pytest.raises(StoreError) as err:
        await desk.report(ALICE, order.id, "topup_missing")  # a code, not a top-up
    assert err.value.code is ErrorCode.NOT_FOUND
    unpaid = fake.add_order(ALICE, card, status=OrderStatus.HELD)
    with pytest.raises(StoreError) as err:
        await desk.report(ALICE, unpaid.id, "not_working")
    assert err.value.code is ErrorCode.ORDER_NOT_PAYABLE
    assert fake.outbox == [] and alerts.sent == []


def test_a_top_up_can_only_be_reported_missing_or_other() -> None:
    assert problems_for(Kind.TOPUP) == ("topup_missing", "other")
    assert "topup_missing" not in problems_for(Kind.CODE) and "not_working" in problems_for(Kind.CODE)


def test_a_ticket_is_named_t_and_its_number_and_an_order_id_is_not_a_ticket() -> None:
    assert ticket_id_of("T12") == 12 and ticket_id_of(" t7 ") == 7
    assert ticket_id_of("2611250ABCDEFGH") is None and ticket_id_of("T") is None and ticket_id_of("T1234567890") is None


def test_the_buyers_own_words_are_kept_as_plain_text_without_control_characters_and_at_most_500_long() -> None:
    assert clean_note("  broken\x00 code\x1b[31m  ") == "broken code[31m"
    assert len(clean_note("x" * 2000)) == 500
    assert clean_note("line one\nline two") == "line one\nline two"
