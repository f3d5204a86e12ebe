"""Bulk orders larger than the stock: the merchant's policy per product (`rules.partial`): refuse (the
default), partial (deliver what there is, credit the rest back with a ledger row) or wait (the order stays pending
and is completed first come first served when stock arrives, or refunded after the wait). Racing orders never get
a code twice and wallets always equal their ledgers. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import Resellers
from core.admin import AdminService
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.models import Buyer
from core.resellers import ResellerDesk
from tests.helpers import SKU, RecordingNotifier, import_n, open_shop, settle, stock_of, unique_codes

BOSS = Buyer("test", "boss")


def catalog(partial: str | None) -> list[dict]:
    rules = {"partial": partial} if partial else {}
    return [{"sku": SKU, "title": "Game card 10", "price": 1000, "kind": "code", "max_qty": 5, "rules": rules}]


async def two_resellers(desk: ResellerDesk) -> tuple[int, int]:
    ids = []
    for name in ("Alpha", "Beta"):
        r = await desk.create(name)
        await desk.top_up(r.id, 100_000, actor="merchant")
        ids.append(r.id)
    return ids[0], ids[1]


async def consistent(desk: ResellerDesk, rid: int) -> int:
    r = await desk.get(rid)
    assert await desk.ledger_sum(rid) == r.balance
    return r.balance


async def race(desk: ResellerDesk, orders: list[tuple[int, int, str]]) -> list:
    async def one(rid: int, qty: int, key: str):  # noqa: ANN202
        try:
            return await desk.order(await desk.get(rid), SKU, qty, key)
        except StoreError as exc:
            return exc
    return await asyncio.gather(*[one(*o) for o in orders])


async def test_refuse_by_default_one_of_two_racing_orders_gets_the_stock_the_other_nothing(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=catalog(None)) as (app, _, _):
        desk = app.shop.resellers
        a, b = await two_resellers(desk)
        await import_n(app, 5)
        got = await race(desk, [(a, 4, "a1"), (b, 4, "b1")])
        made = [g for g in got if not isinstance(g, StoreError)]
        refused = [g for g in got if isinstance(g, StoreError)]
        assert len(made) == 1 and len(made[0].codes) == 4
        assert len(refused) == 1 and refused[0].code is ErrorCode.SOLD_OUT and refused[0].params["available"] == 1
        assert sorted([await consistent(desk, a), await consistent(desk, b)]) == [96_000, 100_000]
        assert await stock_of(app) == (1, 0, 4)


async def test_partial_delivers_what_there_is_and_credits_the_rest_back_with_a_ledger_row(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=catalog("partial")) as (app, _, _):
        desk = app.shop.resellers
        a, b = await two_resellers(desk)
        await import_n(app, 5)
        first, second = await race(desk, [(a, 4, "a1"), (b, 4, "b1")])
        # both got codes, never the same one, and together exactly the 5 there were
        assert sorted([len(first.codes), len(second.codes)]) == [1, 4]
        assert not set(first.codes) & set(second.codes) and len(first.codes + second.codes) == 5
        short = first if len(first.codes) == 1 else second
        assert (short.order.qty, short.order.amount, short.order.status.value) == (1, 1000, "delivered")
        rid = int(short.order.buyer.external_id)
        rows = [(e.kind, e.amount) for e in await desk.statement(rid)]
        assert rows[:2] == [("refund", 3000), ("debit", -4000)]  # 4 charged, the 3 missing credited back
        assert await consistent(desk, rid) == 99_000
        assert await consistent(desk, a if rid == b else b) == 96_000
        assert await stock_of(app) == (0, 0, 5)
        # with nothing left, a partial order is refused and debits nothing
        with pytest.raises(StoreError) as none_left:
            await desk.order(await desk.get(a), SKU, 2, "a2")
        assert none_left.value.code is ErrorCode.SOLD_OUT
        # the API's idempotent retry returns the partial order as it was
        again = await desk.order(await desk.get(rid), SKU, 4, "a1" if rid == a else "b1")
        assert not again.created and again.codes == short.codes


async def test_wait_keeps_orders_pending_and_a_restock_completes_them_first_come_first_served(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=catalog("wait")) as (app, _, _):
        desk = app.shop.resellers
        a, b = await two_resellers(desk)
        await import_n(app, 3)
        # given 3 codes, Alpha asks for 4 (waits) and then Beta for 2: Beta queues behind Alpha
        first = await desk.order(await desk.get(a), SKU, 4, "a1")
        second = await desk.order(await desk.get(b), SKU, 2, "b1")
        assert (first.order.status.value, first.codes) == ("pending", [])
        assert (second.order.status.value, second.codes) == ("pending", [])
        assert await consistent(desk, a) == 96_000 and await consistent(desk, b) == 98_000  # paid, waiting
        assert await stock_of(app) == (3, 0, 0)
        # a retry of the waiting order is the same order, not a second debit
        retry = await desk.order(await desk.get(a), SKU, 4, "a1")
        assert not retry.created and retry.order.id == first.order.id and await consistent(desk, a) == 96_000
        # when the merchant imports 3 more codes, both waiting orders are completed, oldest first
        report = await AdminService(app.shop).import_file(BOSS, SKU, "codes.txt",
                                                          "\n".join(unique_codes(3, "NEW")).encode())
        assert report.imported == 3
        done_a = await desk.get_order(await desk.get(a), first.order.id)
        done_b = await desk.get_order(await desk.get(b), second.order.id)
        assert done_a.order.status.value == done_b.order.status.value == "delivered"
        assert len(done_a.codes) == 4 and len(done_b.codes) == 2 and not set(done_a.codes) & set(done_b.codes)
        assert await stock_of(app) == (0, 0, 6)
        assert await consistent(desk, a) == 96_000 and await consistent(desk, b) == 98_000


async def test_wait_racing_orders_are_served_in_arrival_order_and_never_share_a_code(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=catalog("wait")) as (app, _, _):
        desk = app.shop.resellers
        a, b = await two_resellers(desk)
        got = await race(desk, [(a, 3, f"a{i}") for i in range(4)] + [(b, 2, f"b{i}") for i in range(4)])
        assert all(g.order.status.value == "pending" for g in got)  # no stock at all: 8 orders, 20 codes wanted
        async with app.shop.uow() as uow:
            queue = [(w.order_id, w.qty) for w in await uow.resellers.waiting(None)]
        assert sorted(oid for oid, _ in queue) == sorted(g.order.id for g in got)
        # when 11 codes arrive (the job runs), the queue is served from its head until one does not fit
        await import_n(app, 11, prefix="R1")
        served, refunded = await desk.fill_waiting()
        left, expect = 11, 0
        for _, qty in queue:
            if qty > left:
                break
            left, expect = left - qty, expect + 1
        assert (served, refunded) == (expect, 0)
        by_id = {g.order.id: g for g in got}
        codes: list[str] = []
        for i, (oid, qty) in enumerate(queue):
            o = await desk.get_order(await desk.get(int(by_id[oid].order.buyer.external_id)), oid)
            assert o.order.status.value == ("delivered" if i < expect else "pending")
            assert len(o.codes) == (qty if i < expect else 0)
            codes += o.codes
        assert len(codes) == len(set(codes)) == 11 - left
        assert await stock_of(app) == (left, 0, 11 - left)
        # a later order does not overtake the head of the queue, even if it would fit
        late = await desk.order(await desk.get(b), SKU, 1, "late") if left >= 1 else None
        if late is not None:
            assert late.order.status.value == "pending"


async def test_a_waiting_order_is_refunded_to_the_wallet_after_the_wait(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, catalog=catalog("wait"), clock=clock) as (app, _, _):
        desk = app.shop.resellers
        desk.configure(Resellers(wait_hours=2))
        a, _ = await two_resellers(desk)
        waiting = await desk.order(await desk.get(a), SKU, 3, "a1")
        assert await consistent(desk, a) == 97_000
        clock.advance(minutes=119)
        assert await desk.fill_waiting() == (0, 0)  # not yet
        clock.advance(minutes=2)
        assert await desk.fill_waiting() == (0, 1)
        o = await desk.get_order(await desk.get(a), waiting.order.id)
        assert o.order.status.value == "refunded" and o.codes == []
        assert await consistent(desk, a) == 100_000
        assert [(e.kind, e.amount) for e in await desk.statement(a)][:2] == [("refund", 3000), ("debit", -3000)]
        # stock arriving later goes to nobody's refunded order
        await import_n(app, 3)
        assert await desk.fill_waiting() == (0, 0)
        assert await stock_of(app) == (3, 0, 0)


async def test_a_group_order_that_found_too_little_stock_waits_and_its_codes_reach_the_member(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=catalog("wait")) as (app, _, _):
        sent = RecordingNotifier()
        app.shop.add_notifier("telegram_group", sent)
        groups, desk = app.shop.groups, app.shop.resellers
        r = await groups.add_reseller("300", actor="telegram:1")
        await desk.top_up(r.id, 10_000, actor="telegram:1")
        await groups.link("-1001", r.id, actor="telegram:1")
        await groups.seen("-1001", "301", "Bob")
        await groups.allow("-1001", "300", "@bob", True)
        await import_n(app, 3)
        # given Bob's quote for 3 while there are 3, an API order takes 2 before he confirms
        q = await groups.quote("-1001", "301", SKU, 3, "en")
        other = await desk.create("Other")
        await desk.top_up(other.id, 10_000, actor="merchant")
        assert len((await desk.order(await desk.get(other.id), SKU, 2, "o1")).codes) == 2
        # when he confirms, the order is paid and waits (policy wait): nothing is sent yet
        done = await groups.confirm(q.group_order.id, "-1001", "301")
        assert done.order.status.value == "pending"
        await settle(app)
        assert sent.deliveries == []
        # then the restock completes it and the codes go to Bob through the outbox, once
        await import_n(app, 5, prefix="NEW")
        assert await desk.fill_waiting() == (1, 0)
        await settle(app)
        assert [who for who, _ in sent.deliveries] == ["301"] and len(sent.codes()) == 3
        assert await desk.fill_waiting() == (0, 0)
        await settle(app)
        assert len(sent.deliveries) == 1
        assert await consistent(desk, r.id) == 10_000 - 3000
