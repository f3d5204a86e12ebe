"""`run.py jobs`: every job's schedule, last run and result, next run, and who holds the scheduler lease.
`run.py jobs run NAME`: runs one job now in this process (its alerts go to the log, printed here)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, cast

from app import App
from app.bootstrap import job_intervals
from cli.common import when
from core.settings import Settings
from jobs.scheduler import add_channel_jobs


def add_parser(sub: Any) -> None:
    jb = sub.add_parser("jobs", help="the scheduled jobs: last run, result, next run")
    jb_sub = jb.add_subparsers(dest="jobs_command")
    jr = jb_sub.add_parser("run", help="run one job now")
    jr.add_argument("name")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    run = args.name if args.jobs_command == "run" else None
    async with await App.open(settings) as app:
        runner = app.job_runner(owner="cli")
        add_channel_jobs(runner, app.shop, object() if settings.wechat.pay.mch_id else None,
                         job_intervals(settings), cast(Any, object()) if settings.telegram.enabled else None)
        if run is not None:
            spec = runner.jobs.get(run)
            if spec is None:
                print(f"error: no job {run!r}; jobs: {', '.join(runner.jobs)}", file=sys.stderr)
                return 2
            if not spec.manual:
                print(f"error: {run} runs only inside the running store (it needs the chat channels)",
                      file=sys.stderr)
                return 2
            record = await runner.run_now(run, runner="cli")
            print(f"{run}: {'ok' if record['ok'] else 'FAILED'} in {record['seconds']:.2f}s: {record['result']}")
            return 0 if record["ok"] else 1
        rows = await runner.status()
        lease = await runner.store.lease()
    now = app.clock.now()
    if lease is not None and lease.until > now:
        print(f"scheduler: running in {lease.owner} (lease until {when(lease.until)})")
    else:
        print("scheduler: not running (no live lease)" + (f"; last holder {lease.owner}" if lease else ""))
    headers = ("job", "schedule", "last run", "next run", "last result")
    table = [(r["name"], r["schedule"], when(r["last_run"]), when(r["next_run"]),
              "-" if r["result"] is None else ("" if r["ok"] else "FAILED ") + str(r["result"])) for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[-1])
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0
