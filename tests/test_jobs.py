"""The scheduler's jobs (jobs/store.py on core/supply/, core/summary.py; the lease: jobs/lease.py) on real SQLite and
PostgreSQL, a fake clock for time, and a small in-memory supplier at the Supplier port (core.ports.Supplier; the HTTP
supplier has its own tests)."""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import JobsConfig
from app.bootstrap import store_jobs as build_store_jobs
from core.clock import FakeClock
from core.errors import SupplierError
from core.ports import SupplierProduct
from core.supply import RestockRule
from jobs.lease import JobRunner
from jobs.store import StoreJobs
from storage.jobs import SqlJobStore
from tests.helpers import SKU, buyer, import_lines, import_n, open_shop, pay, settle, stock_of

UP_SKU = "UP-CARD-10"


@dataclass
class MemorySupplier:
    """An upstream seller in memory: a balance, one product, purchases remembered by request id."""

    name: str = "up"
    money: int = 100_000
    price: int = 100
    fail: Exception | None = None  # raised by every call while set
    lose_next_answer: bool = False  # buys, then the answer is lost (a timeout)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    orders: dict[str, list[str]] = field(default_factory=dict)

    async def balance(self) -> int:
        self.calls.append(("balance",))
        if self.fail:
            raise self.fail
        return self.money

    async def products(self) -> list[SupplierProduct]:
        self.calls.append(("products",))
        return [SupplierProduct(UP_SKU, "Game card 10", self.price, None)]

    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
        self.calls.append(("buy", supplier_sku, qty, request_id))
        if self.fail:
            raise self.fail
        if request_id not in self.orders:
            if self.money < qty * self.price:
                raise SupplierError("balance too low", retryable=False, supplier=self.name)
            self.money -= qty * self.price
            self.orders[request_id] = [f"UP-{uuid.uuid4().hex[:12].upper()}" for _ in range(qty)]
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise SupplierError("read timeout", retryable=True, supplier=self.name)
        return list(self.orders[request_id])

    def buys(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "buy"]

    def bought(self) -> int:
        return sum(len(c) for c in self.orders.values())


class RecordingAlerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def alert(self, key: str, params: dict[str, Any]) -> None:
        self.sent.append((key, dict(params)))

    def keys(self) -> list[str]:
        return [k for k, _ in self.sent]


def store_jobs(app: Any, supplier: MemorySupplier | None = None, *, rules: list[RestockRule] | None = None,
               alerts: RecordingAlerts | None = None, **config: Any) -> tuple[StoreJobs, RecordingAlerts]:
    alerts = alerts or RecordingAlerts()
    jobs = build_store_jobs(app.shop, SqlJobStore(app.db), alerts, JobsConfig(rules=rules or [], **config),
                            suppliers={supplier.name: supplier} if supplier else {})
    return jobs, alerts


def rule(below: int = 3, up_to: int = 10, budget: int = 10_000, cost: int | None = 100) -> RestockRule:
    return RestockRule(SKU, below, up_to, "up", budget, UP_SKU, cost)


async def sell(app: Any, n: int) -> None:
    """n buyers take one code each."""
    for i in range(n):
        order = await app.shop.reserve(buyer(f"s{uuid.uuid4().hex[:6]}{i}"), (await app.shop.product_by_sku(SKU)).id,
                                       1, "en")
        await pay(app, order)
    await settle(app)


async def restock_state(app: Any) -> dict[str, Any]:
    async with app.db.uow() as uow:
        return json.loads(await uow.meta.get(f"restock.{SKU}") or "{}")


# -- restock -----------------------------------------------------------------------------------------------

async def test_restock_buys_up_to_the_line_and_never_over_the_daily_budget(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, _):
        await import_n(app, 1)
        up = MemorySupplier()
        jobs, alerts = store_jobs(app, up, rules=[rule(below=3, up_to=10, budget=500, cost=100)])

        # Given 1 code (below the line of 3) and a budget of 500 at 100 each, when restock runs
        result = await jobs.restock()
        # then 5 are bought (the budget), not the 9 that would fill the pool to 10
        assert [c[2] for c in up.buys()] == [5] and "bought 5" in result
        assert (await stock_of(app))[0] == 6
        assert (await restock_state(app))["spent"] == 500

        # Sold down below the line again the same day: the budget is used up, so nothing is bought; one alert.
        await sell(app, 4)
        await jobs.restock()
        await jobs.restock()
        assert len(up.buys()) == 1
        assert alerts.keys() == ["alert.restock_budget"]
        assert alerts.sent[0][1] == {"sku": SKU, "budget": 500, "spent": 500, "cost": 100}

        # The next day the budget is fresh: 5 more of the 8 wanted.
        clock.advance(days=1)
        await jobs.restock()
        assert [c[2] for c in up.buys()] == [5, 5]
        assert (await stock_of(app))[0] == 7
        assert len(up.orders) == 2 and len({r for _, _, _, r in up.buys()}) == 2  # a new request id per purchase

        # The bought codes are in the vault (never plain text at rest) and sell like any other.
        async with app.db.uow() as uow:
            rows = await uow.codes.not_under_key("no-such-key", 0, 1000)
        bought = [c for codes in up.orders.values() for c in codes]
        assert len(rows) == 11 and not any(c.encode() in r.ciphertext for r in rows for c in bought)
        await sell(app, 1)
        delivered = notifier.codes()[-1]
        assert delivered.startswith("UP-") and delivered in bought
        async with app.db.uow() as uow:
            audit = await uow.audit.latest("restock")
        assert [(a.detail["asked"], a.detail["bought"], a.actor) for a in audit] == [(5, 5, "supplier:up")] * 2
        async with app.db.uow() as uow:  # the supplier ledger has them too (what the shop spent there)
            assert await uow.supplies.spent_since("up", clock.now() - timedelta(days=2)) == 1000
            ledger = await uow.supplies.get(up.buys()[0][3])
        assert ledger is not None
        assert (ledger.status, ledger.qty, ledger.cost, ledger.order_id) == ("done", 5, 500, None)


async def test_restock_checks_the_supplier_balance_first(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        up = MemorySupplier(money=250)
        jobs, alerts = store_jobs(app, up, rules=[rule(below=3, up_to=10, cost=None)])  # cost: the listed price

        await jobs.restock()  # the balance pays for 2 of the 10 wanted
        assert [c[2] for c in up.buys()] == [2] and up.calls[:2] == [("products",), ("balance",)]
        assert (await stock_of(app))[0] == 2

        await jobs.restock()
        await jobs.restock()  # 50 left: not one code; the merchant is told once, the supplier is not asked to buy
        assert len(up.buys()) == 1
        assert alerts.keys() == ["alert.supplier_balance_low"]
        assert alerts.sent[0][1] == {"supplier": "up", "balance": 50, "sku": SKU, "cost": 100}

        up.money = 10_000  # the merchant topped up
        await jobs.restock()
        assert [c[2] for c in up.buys()] == [2, 8] and (await stock_of(app))[0] == 10
        await sell(app, 9)
        up.money = 0
        await jobs.restock()  # low again after it was fine: a new crossing, a new alert
        assert alerts.keys() == ["alert.supplier_balance_low", "alert.supplier_balance_low"]


async def test_a_failing_supplier_is_backed_off_and_alerted_once(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        up = MemorySupplier(fail=SupplierError("HTTP 500", retryable=True, supplier="up"))
        jobs, alerts = store_jobs(app, up, rules=[rule()])

        await jobs.restock()
        assert up.calls == [("balance",)]
        assert alerts.keys() == ["alert.supplier_failing"] and alerts.sent[0][1]["minutes"] == 1

        for _ in range(5):  # every minute's run within the back-off leaves the supplier alone
            clock.advance(seconds=10)
            assert "backing off" in await jobs.restock()
        assert up.calls == [("balance",)]

        clock.advance(seconds=11)  # a minute after the failure: one more try, which fails; now 2 minutes
        await jobs.restock()
        clock.advance(seconds=90)
        await jobs.restock()
        assert up.calls == [("balance",)] * 2
        assert alerts.keys() == ["alert.supplier_failing"]  # not again for the same outage

        up.fail = None
        clock.advance(seconds=31)
        assert "bought 10" in await jobs.restock()
        assert alerts.keys() == ["alert.supplier_failing", "alert.supplier_recovered"]
        async with app.db.uow() as uow:
            assert json.loads(await uow.meta.get("supplier.up") or "{}") == {"failures": 0}


async def test_a_purchase_whose_answer_was_lost_is_asked_again_with_the_same_request_id(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        up = MemorySupplier(lose_next_answer=True)
        jobs, _ = store_jobs(app, up, rules=[rule(below=3, up_to=10, budget=1000)])

        assert "will retry" in await jobs.restock()  # the supplier bought, the store never heard
        assert (await stock_of(app))[0] == 0
        pending = (await restock_state(app))["pending"]
        assert pending["qty"] == 10 and (await restock_state(app))["spent"] == 1000  # reserved before the call

        clock.advance(minutes=2)
        await jobs.restock()
        # The same request id again: the supplier hands back the same codes; nothing was bought twice.
        assert [c[3] for c in up.buys()] == [pending["request_id"]] * 2
        assert len(up.orders) == 1 and up.bought() == 10
        assert (await stock_of(app))[0] == 10
        state = await restock_state(app)
        assert state["pending"] is None and state["spent"] == 1000
        await jobs.restock()  # and nothing more to do
        assert len(up.buys()) == 2


async def test_a_refused_purchase_gives_the_budget_back(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        up = MemorySupplier()
        jobs, alerts = store_jobs(app, up, rules=[rule(below=3, up_to=10, budget=1000)])
        up.price = 10_000  # the balance check passes at the configured cost, the supplier then refuses
        up.money = 5000
        assert "refused" in await jobs.restock()
        state = await restock_state(app)
        assert state["pending"] is None and state["spent"] == 0
        assert alerts.keys() == ["alert.supplier_failing"]
        async with app.db.uow() as uow:
            ledger = await uow.supplies.get(up.buys()[0][3])
            assert ledger is not None and (ledger.status, ledger.cost) == ("failed", 0)
            assert await uow.supplies.spent_since("up", clock.now() - timedelta(days=1)) == 0


# -- alerts -------------------------------------------------------------------------------------------------

async def test_stock_alerts_come_once_per_crossing(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 7)
        jobs, alerts = store_jobs(app, low_stock=5)

        assert await jobs.stock_alerts() == "no new alerts"
        await sell(app, 3)  # 4 left: low
        await jobs.stock_alerts()
        await jobs.stock_alerts()
        assert alerts.sent == [("alert.low_stock", {"sku": SKU, "title": "Game card 10", "n": 4})]
        await sell(app, 4)  # none left
        await jobs.stock_alerts()
        await jobs.stock_alerts()
        assert alerts.keys() == ["alert.low_stock", "alert.out_of_stock"]
        await import_n(app, 2)  # back to low from out: no new crossing downwards
        await jobs.stock_alerts()
        assert alerts.keys() == ["alert.low_stock", "alert.out_of_stock"]
        await import_n(app, 10)  # restocked above the line: quiet
        await jobs.stock_alerts()
        await sell(app, 9)  # and low again: a new crossing
        await jobs.stock_alerts()
        assert alerts.keys() == ["alert.low_stock", "alert.out_of_stock", "alert.low_stock"]


# -- time: holds, code expiry, the daily summary ---------------------------------------------------------

async def test_a_lapsed_hold_is_released_and_the_buyer_is_told(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, _):
        await import_n(app, 2)
        order = await app.shop.reserve(buyer("alice"), (await app.shop.product_by_sku(SKU)).id, 2, "zh_CN")
        jobs, _ = store_jobs(app)
        clock.advance(minutes=14)
        assert await jobs.expire_holds() == "0 holds released"
        clock.advance(minutes=2)
        assert await jobs.expire_holds() == "1 holds released"
        await settle(app)
        assert await stock_of(app) == (2, 0, 0)
        [notice] = notifier.notices_to("ualice")
        assert (notice.key, notice.language, notice.params) == ("order.lapsed", "zh_CN", {"order": order.id})
        assert await jobs.expire_holds() == "0 holds released"
        await settle(app)
        assert len(notifier.notices) == 1


async def test_codes_are_withdrawn_before_they_expire_and_reported(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_lines(app, [b"code,expires_at\n", b"SOON-1,2026-03-01T10:30:00Z\n",
                                 b"SOON-2,2026-03-01T10:59:00Z\n", b"LATER-1,2026-03-01T13:00:00Z\n",
                                 b"NEVER-1,\n"])
        jobs, alerts = store_jobs(app, expiry_margin=timedelta(hours=1))

        assert await jobs.expire_codes() == f"withdrawn {SKU}:2"
        assert alerts.sent == [("alert.codes_withdrawn", {"sku": SKU, "title": "Game card 10", "n": 2,
                                                          "minutes": 60})]
        assert await stock_of(app) == (2, 0, 0)
        assert await jobs.expire_codes() == "nothing expiring"
        clock.advance(hours=2, minutes=1)  # LATER-1 is now within the hour
        assert await jobs.expire_codes() == f"withdrawn {SKU}:1"
        assert await stock_of(app) == (1, 0, 0)
        async with app.db.uow() as uow:
            assert [a.detail["codes"] for a in await uow.audit.latest("withdraw")] == [1, 2]


async def test_the_daily_summary_goes_out_at_its_time_once(db_url: str, tmp_path: Path) -> None:
    # 09:00 in Shanghai is 01:00 UTC.
    clock = FakeClock(datetime(2026, 3, 1, 0, 30, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 5)
        jobs, alerts = store_jobs(app, zone="Asia/Shanghai")
        runner = JobRunner(SqlJobStore(app.db), clock, owner="one", zone="Asia/Shanghai")
        jobs.register(runner, dict.fromkeys(["expire-holds", "restock", "stock-alerts", "expire-codes",
                                              "poll-topups"], 60.0), time(9, 0))
        spec = runner.jobs["daily-summary"]
        assert runner.next_run(spec, clock.now()) == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)

        await sell(app, 2)
        clock.advance(minutes=30)  # 09:00 Shanghai
        assert await runner.tick("daily-summary") is True
        assert await runner.tick("daily-summary") is False  # the same day's tick: not again
        [(key, params)] = alerts.sent
        assert key == "alert.daily_summary"
        assert (params["orders"], params["revenue"], params["stock"]) == (2, "20.00 CNY", f"{SKU} 3")
        assert (params["since"], params["until"]) == ("2026-02-28 09:00", "2026-03-01 09:00")
        assert runner.next_run(spec, clock.now()) == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

        clock.advance(hours=23, minutes=59)
        assert await runner.tick("daily-summary") is False and len(alerts.sent) == 1
        clock.advance(minutes=1)
        assert await runner.tick("daily-summary") is True
        assert alerts.sent[-1][1]["orders"] == 0 and len(alerts.sent) == 2
        [row] = [r for r in await runner.status() if r["name"] == "daily-summary"]
        assert row["ok"] is True and row["result"].startswith("summary sent: 0 orders")


# -- one runner ---------------------------------------------------------------------------------------------

async def test_only_the_lease_holder_runs_a_tick_and_a_dead_holders_lease_expires(
        db_url: str, tmp_path: Path) -> None:
    """Two store processes (two Apps, each with its own engine) on one database."""
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC))
    runs: list[str] = []
    async with open_shop(db_url, tmp_path, clock=clock) as (a, _, _), \
            open_shop(db_url, tmp_path, clock=clock) as (b, _, _):
        runners = []
        for app, owner in ((a, "A"), (b, "B")):
            runner = JobRunner(SqlJobStore(app.db), clock, owner=owner, lease=timedelta(seconds=60))

            async def job(owner: str = owner) -> str:
                runs.append(owner)
                return f"ran in {owner}"

            runner.add("count", job, every=timedelta(seconds=30))
            runners.append(runner)
        ra, rb = runners

        for _ in range(3):  # both fire every tick; only A (first to take the lease) works
            assert [await ra.tick("count"), await rb.tick("count")] == [True, False]
            assert await ra.tick("count") is False  # and only once per tick
            clock.advance(seconds=30)
        assert runs == ["A"] * 3

        # A dies (no more ticks, no release). B's ticks do nothing until A's lease runs out, 60 s after A's
        # last renewal (30 s ago).
        assert await rb.tick("count") is False
        clock.advance(seconds=29)
        assert await rb.tick("count") is False
        clock.advance(seconds=1)
        assert await rb.tick("count") is True
        assert runs == ["A"] * 3 + ["B"]
        lease = await rb.store.lease()
        assert lease is not None and lease.owner == "B"
        [row] = await rb.status()
        assert (row["result"], row["runner"]) == ("ran in B", "B")

        # A clean stop hands over at once.
        await rb.release()
        assert await ra.tick("count") is False  # this tick already ran (in B)
        clock.advance(seconds=30)
        assert await ra.tick("count") is True and runs[-1] == "A"


@pytest.mark.parametrize("when,expected", [
    (datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)),
    (datetime(2026, 3, 1, 10, 0, 29, 999000, tzinfo=UTC),
     datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)),
    (datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC), datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)),
])
def test_interval_ticks_are_the_same_instants_in_every_process(when: datetime, expected: datetime) -> None:
    runner = JobRunner(None, FakeClock(), owner="x")  # type: ignore[arg-type]

    async def nothing() -> str:
        return ""

    spec = runner.add("j", nothing, every=timedelta(seconds=30))
    assert runner.slot_start(spec, when) == expected
    assert runner.next_run(spec, when) == expected + timedelta(seconds=30)


async def test_two_processes_restocking_at_once_buy_once(db_url: str, tmp_path: Path) -> None:
    """`run.py jobs run restock` while the scheduler's restock runs: one plan, one purchase."""
    clock = FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    async with open_shop(db_url, tmp_path, clock=clock) as (a, _, _), \
            open_shop(db_url, tmp_path, clock=clock) as (b, _, _):
        await import_n(a, 1)

        class SlowSupplier(MemorySupplier):
            async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
                await asyncio.sleep(0.05)
                return await super().buy(supplier_sku, qty, request_id)

        up = SlowSupplier()
        ja, _ = store_jobs(a, up, rules=[rule(below=3, up_to=10)])
        jb, _ = store_jobs(b, up, rules=[rule(below=3, up_to=10)])
        await asyncio.gather(ja.restock(), jb.restock())
        assert len(up.orders) == 1 and up.bought() == 9
        assert {c[3] for c in up.buys()} == set(up.orders)  # any second call used the same request id
        assert (await stock_of(a))[0] == 10
        assert (await restock_state(a))["spent"] == 900


async def test_the_top_up_job_asks_the_supplier_desk(sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        jobs, _ = store_jobs(app)
        assert await jobs.poll_topups() == "0 top-ups finished"
