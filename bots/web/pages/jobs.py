"""The scheduled jobs (owners and staff): each job's schedule, last run, whether it went well and what it said, when
it is next due; which process holds the scheduler lease; and the suppliers failing now (with their backoff).

What `run.py jobs` shows, read from the same place: the schedule of this process's runner (app/bootstrap.py
`App.runner`, built when the store starts its scheduler), the jobs' records and the lease in `meta`
(storage/jobs.py), the suppliers' health (core/supply/health.py)."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import when
from storage.jobs import SqlJobStore

pages = Pages()


@pages.get("/jobs")
async def jobs(req: Req) -> web.StreamResponse:
    """Every job with its last run and next run, the lease holder, the failing suppliers."""
    app = req.web.app
    runner = app.runner
    store = runner.store if runner is not None else SqlJobStore(app.db)
    if runner is not None:
        rows: list[dict[str, Any]] = await runner.status()
    else:  # no scheduler in this process: what the records say, without a schedule
        rows = [{"name": name, "schedule": "", "next_run": None, **record}
                for name, record in sorted((await store.records()).items())]
    lease = await store.lease()
    now = req.web.shop.clock.now()
    troubles = await req.web.health.troubles()
    return req.render("jobs.html", rows=rows, lease=lease, held=lease is not None and lease.until > now,
                      here=runner is not None and lease is not None and lease.owner == runner.owner,
                      scheduled=runner is not None, troubles=troubles, when=lambda at: when(req, at),
                      zone=req.web.settings.jobs.timezone)
