"""Which process runs the scheduled jobs, and at which tick: the scheduler lease.

Every process on the database runs the same APScheduler jobs (jobs/scheduler.py), but a job only does its work
in the process that holds the scheduler lease (a `meta` row with an owner and an expiry, JobStore.claim), and
only once per tick: the tick ("slot": the scheduled time, interval jobs aligned to fixed instants so every
process fires at the same moments) is written to the job's record in the same transaction that renews the
lease. A holder that dies stops renewing; its lease expires after `jobs.lease_seconds` and the next process
whose tick comes takes it over. Each run's result goes to the job's record (`run.py jobs` shows them).

No framework here: storage/jobs.py implements JobStore with this module's Lease, and APScheduler stays in
jobs/scheduler.py. What the jobs do is core's (jobs/store.py lists them).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import socket
import time as _time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from core.clock import Clock

log = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # interval ticks are EPOCH + k * interval, in every process
LEASE_KEY = "scheduler.lease"
JOB_PREFIX = "job."


@dataclass(frozen=True, slots=True)
class Lease:
    """Who runs the jobs, until when (the `meta` row `scheduler.lease`, as JSON)."""

    owner: str
    until: datetime

    def dump(self) -> str:
        return json.dumps({"owner": self.owner, "until": self.until.isoformat()})

    @classmethod
    def parse(cls, raw: str | None) -> Lease | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(str(data["owner"]), datetime.fromisoformat(data["until"]))


class JobStore(Protocol):
    """The lease and the jobs' records (storage/jobs.py)."""

    async def claim(self, owner: str, now: datetime, ttl: timedelta, job: str | None = None,
                    slot: str | None = None) -> bool:
        """Take or renew the lease for owner until now + ttl; False when another owner holds it. With job and
        slot: also mark the slot as the job's tick in the same transaction; False when it already ran."""
    async def release(self, owner: str, now: datetime) -> None: ...
    async def lease(self) -> Lease | None: ...
    async def record(self, job: str, values: dict[str, Any]) -> None: ...
    async def records(self) -> dict[str, dict[str, Any]]: ...


@dataclass(slots=True)
class JobSpec:
    """One scheduled job: what it runs and when."""

    name: str
    fn: Callable[[], Awaitable[str]]
    every: timedelta | None = None  # an interval job, ticking at EPOCH + k * every
    daily_at: time | None = None  # or a daily job at this local time (JobRunner.zone)
    manual: bool = True  # may `run.py jobs run NAME` run it (jobs that need the chat channels may not)
    timeout: float | None = None

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every.total_seconds():g}s"
        assert self.daily_at is not None
        return f"daily {self.daily_at:%H:%M}"


def default_owner() -> str:
    """This process, as the lease names it: host, pid and a random tag (a pid can come back after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobRunner:
    """Runs the store's jobs under the scheduler lease and keeps each job's record."""

    def __init__(self, store: JobStore, clock: Clock, *, owner: str | None = None,
                 lease: timedelta = timedelta(seconds=60), zone: str = "UTC") -> None:
        self.store = store
        self.clock = clock
        self.owner = owner or default_owner()
        self.lease = lease
        self.zone = ZoneInfo(zone)
        self.jobs: dict[str, JobSpec] = {}

    def add(self, name: str, fn: Callable[[], Awaitable[str]], *, every: timedelta | None = None,
            daily_at: time | None = None, manual: bool = True, timeout: float | None = None) -> JobSpec:
        assert (every is None) != (daily_at is None), "a job is either an interval or a daily job"
        spec = JobSpec(name, fn, every, daily_at, manual, timeout)
        self.jobs[name] = spec
        return spec

    # -- when ------------------------------------------------------------------------------------
    def slot_start(self, spec: JobSpec, now: datetime) -> datetime:
        """The scheduled time of the tick that now belongs to."""
        if spec.every is not None:
            k = math.floor((now - EPOCH) / spec.every + 1e-9)
            return EPOCH + spec.every * k
        assert spec.daily_at is not None
        local = now.astimezone(self.zone)
        today = datetime.combine(local.date(), spec.daily_at, tzinfo=self.zone)
        return (today if local >= today else today - timedelta(days=1)).astimezone(UTC)

    def next_run(self, spec: JobSpec, now: datetime) -> datetime:
        if spec.every is not None:
            return self.slot_start(spec, now) + spec.every
        start = self.slot_start(spec, now).astimezone(self.zone)
        nxt = datetime.combine(start.date() + timedelta(days=1), spec.daily_at or time(), tzinfo=self.zone)
        return nxt.astimezone(UTC)

    # -- running ---------------------------------------------------------------------------------
    async def heartbeat(self) -> bool:
        """Take or renew the lease; True while this process is the runner."""
        try:
            return await self.store.claim(self.owner, self.clock.now(), self.lease)
        except Exception as exc:  # noqa: BLE001 - the database is away: the lease simply runs out
            log.warning("scheduler lease not renewed: %s", type(exc).__name__)
            return False

    async def release(self) -> None:
        """A clean stop: the lease ends now, so another process takes over at its next tick."""
        try:
            await self.store.release(self.owner, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - it simply expires
            log.warning("scheduler lease not released: %s", type(exc).__name__)

    async def tick(self, name: str) -> bool:
        """A scheduled run: only in the lease holder, once per tick. True if it ran here."""
        spec = self.jobs[name]
        now = self.clock.now()
        slot = self.slot_start(spec, now).isoformat()
        try:
            if not await self.store.claim(self.owner, now, self.lease, name, slot):
                return False
        except Exception as exc:  # noqa: BLE001 - the database is away: the next tick tries again
            log.warning("job %s: lease not taken: %s", name, type(exc).__name__)
            return False
        await self._run(spec, self.owner)
        return True

    async def run_now(self, name: str, runner: str = "manual") -> dict[str, Any]:
        """Run one job now, outside the schedule (`run.py jobs run NAME`); returns its record."""
        spec = self.jobs[name]
        return await self._run(spec, runner)

    async def _run(self, spec: JobSpec, runner: str) -> dict[str, Any]:
        started = self.clock.now()
        t0 = _time.perf_counter()
        try:
            timeout = spec.timeout if spec.timeout is not None else self.lease.total_seconds()
            async with asyncio.timeout(timeout):
                result, ok = str(await spec.fn()), True
        except Exception as exc:  # noqa: BLE001 - recorded; the next tick runs again
            log.exception("job %s failed", spec.name)
            result, ok = f"error: {type(exc).__name__}: {exc}"[:300], False
        record = {"last_run": started.isoformat(), "seconds": round(_time.perf_counter() - t0, 3),
                  "result": result[:300], "ok": ok, "runner": runner}
        try:
            await self.store.record(spec.name, record)
        except Exception as exc:  # noqa: BLE001
            log.warning("job %s: result not recorded: %s", spec.name, type(exc).__name__)
        return record

    async def status(self) -> list[dict[str, Any]]:
        """Each job with its schedule, last run and result, and next run (`run.py jobs`)."""
        now = self.clock.now()
        records = await self.store.records()
        out = []
        for name, spec in self.jobs.items():
            rec = records.get(name, {})
            out.append({"name": name, "schedule": spec.describe(), "last_run": rec.get("last_run"),
                        "result": rec.get("result"), "ok": rec.get("ok"), "runner": rec.get("runner"),
                        "next_run": self.next_run(spec, now).isoformat()})
        return out
