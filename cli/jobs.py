"""`run.py jobs`: every job's schedule, last run and result, next run, and who holds the scheduler lease.
`run.py jobs run NAME`: runs one job now in this process (its alerts go to the log, printed here)."""
from __future__ import annotations

import argparse
from typing import Any, cast

from app import App
from app.bootstrap import job_intervals
from cli.common import Voice, cells, ljust, when
from config.settings import Settings
from jobs.scheduler import add_channel_jobs


def add_parser(sub: Any, say: Voice) -> None:
    jb = sub.add_parser("jobs", help=say.t("cli.help.jobs"))
    jb_sub = jb.add_subparsers(dest="jobs_command")
    jr = jb_sub.add_parser("run", help=say.t("cli.help.jobs.run"))
    jr.add_argument("name")


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    run = args.name if args.jobs_command == "run" else None
    async with await App.open(settings) as app:
        runner = app.job_runner(owner="cli")
        add_channel_jobs(runner, app.shop, object() if settings.wechat.pay.mch_id else None,
                         job_intervals(settings), cast(Any, object()) if settings.telegram.enabled else None)
        if run is not None:
            spec = runner.jobs.get(run)
            if spec is None:
                say.err("cli.jobs.unknown", job=repr(run), jobs=", ".join(runner.jobs))
                return 2
            if not spec.manual:
                say.err("cli.jobs.channels_only", job=run)
                return 2
            record = await runner.run_now(run, runner="cli")
            say.out("cli.jobs.ran", job=run, outcome=say.t("cli.jobs.ok" if record["ok"] else "cli.jobs.failed"),
                    seconds=f"{record['seconds']:.2f}", result=record["result"])
            return 0 if record["ok"] else 1
        rows = await runner.status()
        lease = await runner.store.lease()
    now = app.clock.now()
    if lease is not None and lease.until > now:
        say.out("cli.jobs.running", owner=lease.owner, until=when(lease.until))
    else:
        print(say.t("cli.jobs.not_running") + (say.t("cli.jobs.last_holder", owner=lease.owner) if lease else ""))
    headers = tuple(say.t(f"cli.jobs.column.{c}") for c in ("job", "schedule", "last_run", "next_run", "last_result"))
    failed = say.t("cli.jobs.failed") + " "
    table = [(r["name"], r["schedule"], when(r["last_run"]), when(r["next_run"]),
              "-" if r["result"] is None else ("" if r["ok"] else failed) + str(r["result"])) for r in rows]
    widths = [max(cells(h), *(cells(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    # the last column goes unpadded: widths has one entry fewer than a row
    print("  ".join(ljust(h, w) for h, w in zip(headers, widths, strict=False)) + "  " + headers[-1])
    for row in table:
        print("  ".join(ljust(c, w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0
