"""The real scheduler (APScheduler through jobs/scheduler.py) in two store processes' worth of Apps on one
PostgreSQL database: every job runs once per tick, in the lease holder only, and when the holder dies the
other takes over once the lease has run out."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import JobsConfig, store_jobs
from jobs.lease import JobRunner
from jobs.scheduler import build_scheduler
from storage.jobs import SqlJobStore
from tests.helpers import open_shop

EVERY = 0.5
LEASE = 1.5
JOBS = ["expire-holds", "restock", "stock-alerts", "expire-codes", "poll-topups", "b2b-waiting", "dispatch-outbox",
        "group-buy-expiry"]


class QuietAlerts:
    async def alert(self, key: str, params: dict[str, Any]) -> None:
        pass


def scheduled(app: Any, owner: str, runs: list[tuple[str, str, str]]) -> tuple[Any, JobRunner]:
    store = SqlJobStore(app.db)
    runner = JobRunner(store, app.clock, owner=owner, lease=timedelta(seconds=LEASE))
    store_jobs(app.shop, store, QuietAlerts(), JobsConfig()).register(
        runner, dict.fromkeys(JOBS, EVERY), None)
    scheduler = build_scheduler(app.shop, runner=runner, every={"dispatch-outbox": EVERY})
    for spec in runner.jobs.values():  # record every run: (job, tick, process)
        def wrap(fn: Any, name: str = spec.name) -> Any:
            async def run() -> str:
                tick = runner.slot_start(runner.jobs[name], app.clock.now()).isoformat()
                runs.append((name, tick, owner))
                return await fn()
            return run
        spec.fn = wrap(spec.fn)
    return scheduler, runner


async def until(done: Callable[[], bool], timeout: float) -> None:
    """Wait on the real clock until `done()` (the scheduler's real ticks), failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_processes_on_postgres_run_each_job_once_per_tick_and_a_dead_holder_is_replaced(
        db_url: str, tmp_path: Path) -> None:
    runs: list[tuple[str, str, str]] = []
    async with open_shop(db_url, tmp_path) as (a, _, _), open_shop(db_url, tmp_path) as (b, _, _):
        sa, ra = scheduled(a, "A", runs)
        sb, rb = scheduled(b, "B", runs)
        assert set(ra.jobs) == set(JOBS) and sa.get_job("scheduler-lease") is not None
        sa.start()
        sb.start()
        try:
            # Every job ticks at least 4 times (~3 s at 0.5 s; longer on a loaded machine, never a fixed sleep).
            await until(lambda: all(sum(1 for j, _, _ in runs if j == job) >= 4 for job in JOBS), 20)
            lease = await ra.store.lease()
            assert lease is not None
            holder = lease.owner
            before = len(runs)
            # The holder dies: its scheduler stops, its lease is not released.
            (sa if holder == "A" else sb).shutdown(wait=False)
            survivor = "B" if holder == "A" else "A"
            # The lease lapses (LEASE s) and the survivor takes every job over.
            await until(lambda: all(any(j == job and o == survivor for j, _, o in runs[before:]) for job in JOBS),
                        LEASE + 20)
        finally:
            for s in (sa, sb):
                if s.running:
                    s.shutdown(wait=False)
        await asyncio.sleep(0.2)  # runs in flight finish

    other = "B" if holder == "A" else "A"
    # Once per tick: no (job, tick) pair ran twice, in either process.
    dupes = [k for k, n in Counter((job, tick) for job, tick, _ in runs).items() if n > 1]
    assert dupes == []
    first, then = runs[:before], runs[before:]
    assert {o for _, _, o in first} == {holder}
    assert {o for _, _, o in then} <= {holder, other} and then[-1][2] == other
    assert [o for _, _, o in then].count(holder) <= len(JOBS)  # at most what was in flight when it died
    for job in JOBS:
        mine = sorted(tick for j, tick, o in first if j == job)
        assert len(mine) >= 4, (job, mine)  # every tick at 0.5 s until each job had 4
        assert any(j == job and o == other for j, _, o in then), job  # the survivor took every job over


def test_the_daily_summary_is_a_cron_job_in_the_store_time_zone(tmp_path: Path) -> None:
    runner = JobRunner(None, None, owner="x", zone="Asia/Shanghai")  # type: ignore[arg-type]

    async def nothing() -> str:
        return ""

    runner.add("daily-summary", nothing, daily_at=time(9, 0))
    job = build_scheduler(None, runner=runner).get_job("daily-summary")  # type: ignore[arg-type]
    assert job is not None and job.args == ("daily-summary",)
    assert str(job.trigger) == "cron[hour='9', minute='0']" and str(job.trigger.timezone) == "Asia/Shanghai"
