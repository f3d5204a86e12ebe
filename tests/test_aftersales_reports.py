"""The buyer's "report a problem" from My orders, through the channel-neutral customer flow on a real SQLite store:
an automatic reissue within the product's policy (once per order, within the window, for a clean history), a
ticket to the merchants outside it, and never someone else's order."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app import App
from config.settings import parse_settings
from core.clock import FakeClock
from core.models import Buyer
from core.supply import import_codes
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.helpers import RecordingNotifier, settle

CATALOG = [
    {"sku": "GAME", "title": "Game card", "price": 1000, "max_qty": 3,
     "aftersales": {"reissues_per_order": 1, "window_hours": 24, "max_reports": 2}},
    {"sku": "VIP", "title": "VIP month", "price": 1500, "aftersales": {"auto": False}},
]
ANN = Ctx(Buyer("console", "ann"), "chat-ann", "en")


@pytest.fixture
async def store(tmp_path: Path):
    settings = parse_settings({"store": {"demo": True, "name": "Test Shop"},
                               "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 's.db'}"},
                               "vault": {"key_file": str(tmp_path / "k")}, "catalog": CATALOG}, tmp_path)
    rec, clock = RecordingNotifier(), FakeClock()
    app = await App.open(settings, notifiers={"console": rec}, clock=clock)
    for sku in ("GAME", "VIP"):
        await import_codes(app.db.uow, app.vault, app.clock, sku, [f"{sku}-{i:02d}\n".encode() for i in range(8)])
    flow = CustomerFlow(app.shop, Translator(), shop_name="Test Shop", demo_payments=True)
    yield app, flow, rec, clock
    await app.close()


async def bought(app, flow, rec, ctx: Ctx = ANN, sku: str = "GAME") -> tuple[str, list[str]]:  # noqa: ANN001
    """Buy one through the flow and get it delivered: (order id, its codes)."""
    pid = (await app.shop.product_by_sku(sku)).id
    [invoice] = await flow.on_action(ctx, f"buy:{pid}:1")
    order_id = invoice.invoice["order_id"]
    await flow.on_action(ctx, f"pay:{order_id}")
    await settle(app)
    return order_id, [c for d in rec.delivered_to(ctx.chat_id) if d.order.id == order_id for c in d.codes]


async def report(flow, order_id: str, problem: str, ctx: Ctx = ANN) -> str:  # noqa: ANN001
    [detail] = await flow.on_action(ctx, f"order:{order_id}")
    assert f"report:{order_id}" in [a.id for a in detail.flat_actions()]
    [ask] = await flow.on_action(ctx, f"report:{order_id}")
    assert [a.id for a in ask.flat_actions()][:4] == [f"report:{order_id}:{p}" for p in
                                                       ("not_working", "used", "wrong_product", "other")]
    [answer] = await flow.on_action(ctx, f"report:{order_id}:{problem}")
    return answer.body


async def outcomes(app, order_id: str) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(e.detail["outcome"], e.detail.get("why", "")) for e in await app.shop.audit_for(order_id)
            if e.action == "report"]


async def test_a_code_that_does_not_work_is_replaced_at_once_and_only_once(store, caplog) -> None:
    app, flow, rec, _ = store
    order_id, [old] = await bought(app, flow, rec)
    caplog.set_level(logging.WARNING, logger="core.alerts")

    answer = await report(flow, order_id, "not_working")
    assert "was replaced" in answer
    await settle(app)
    replaced = [d for d in rec.delivered_to("chat-ann") if d.order.id == order_id]
    assert len(replaced) == 2 and replaced[1].codes != [old] and len(replaced[1].codes) == 1
    assert [n.key for n in rec.notices_to("chat-ann")] == ["aftersales.replaced"]
    # My orders shows the new code; the old one is burned, never sold again.
    [shown] = await flow.on_action(ANN, f"reveal:{order_id}")
    assert shown.secrets == replaced[1].codes
    assert await outcomes(app, order_id) == [("reissued", "")]
    assert "aftersales.alert.reissued" in caplog.text and order_id in caplog.text and old not in caplog.text

    # A second report on the same order is past the policy's one reissue: a ticket for the merchants.
    answer = await report(flow, order_id, "used")
    assert "went to the shop" in answer
    await settle(app)
    assert len([d for d in rec.delivered_to("chat-ann") if d.order.id == order_id]) == 2
    assert await outcomes(app, order_id) == [("reissued", ""), ("ticket", "limit")]
    assert "aftersales.alert.ticket" in caplog.text


async def test_outside_the_window_or_for_another_problem_or_a_product_without_auto_reissue_a_ticket(store) -> None:
    app, flow, rec, clock = store
    late, _ = await bought(app, flow, rec)
    wrong, _ = await bought(app, flow, rec)
    vip, _ = await bought(app, flow, rec, sku="VIP")
    clock.advance(hours=25)
    assert "went to the shop" in await report(flow, late, "not_working")
    assert "went to the shop" in await report(flow, wrong, "wrong_product")
    assert "went to the shop" in await report(flow, vip, "not_working")
    await settle(app)
    assert await outcomes(app, late) == [("ticket", "window")]
    assert await outcomes(app, wrong) == [("ticket", "reason")]
    assert await outcomes(app, vip) == [("ticket", "off")]
    assert rec.notices_to("chat-ann", "aftersales.replaced") == []


async def test_a_buyer_who_reports_every_order_is_stopped_by_the_clean_history_rule(store) -> None:
    app, flow, rec, _ = store
    orders = [(await bought(app, flow, rec))[0] for _ in range(3)]
    answers = [await report(flow, o, "not_working") for o in orders]
    assert ["replaced" in a for a in answers] == [True, True, False]
    assert await outcomes(app, orders[2]) == [("ticket", "history")]


async def test_someone_else_cannot_report_or_even_open_the_report_for_an_order(store) -> None:
    app, flow, rec, _ = store
    order_id, _ = await bought(app, flow, rec)
    eve = Ctx(Buyer("console", "eve"), "chat-eve", "en")
    [refused, _menu] = await flow.on_action(eve, f"report:{order_id}")
    assert refused.error == "not_your_order"
    [refused, _menu] = await flow.on_action(eve, f"report:{order_id}:not_working")
    assert refused.error == "not_your_order"
    assert await outcomes(app, order_id) == []


async def test_a_buyer_who_reports_every_order_is_also_stopped_by_the_risk_check_at_the_next_order(store) -> None:
    app, flow, rec, _ = store
    orders = [(await bought(app, flow, rec))[0] for _ in range(3)]
    pid = (await app.shop.product_by_sku("GAME")).id
    [held] = await flow.on_action(ANN, f"buy:{pid}:1")
    assert held.invoice is not None  # before the reports, the same buyer orders freely
    await flow.on_action(ANN, f"cancel:{held.invoice['order_id']}")
    answers = [await report(flow, o, "not_working") for o in orders]
    await settle(app)
    assert ["replaced" in a for a in answers] == [True, True, False]  # the policy stopped reissuing
    assert len(rec.notices_to("chat-ann", "aftersales.replaced")) == 2
    assert (await app.shop.risk.risk_for(ANN.buyer)).activity.refunds == 3  # reports count as refunds do
    [refused, _menu] = await flow.on_action(ANN, f"buy:{pid}:1")
    assert refused.error == "under_review"  # 3 reports x 20 points reach the review line (60)
