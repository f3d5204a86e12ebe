"""`run.py jobs` and `run.py jobs run NAME` as real processes."""
from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import SKU, run_cli, write_config

JOBS = {"expire-holds", "restock", "stock-alerts", "expire-codes", "poll-topups", "b2b-waiting", "daily-summary",
        "dispatch-outbox", "group-buy-expiry"}


def table(stdout: str) -> dict[str, list[str]]:
    """job name -> the rest of its line, split on runs of two or more spaces."""
    lines = stdout.strip().splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("job "))
    return {cols[0]: cols[1:] for cols in (re.split(r"\s{2,}", ln.strip()) for ln in lines[head + 1:])}


def test_jobs_lists_every_job_and_runs_one_now(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra={"jobs": {"stock_alerts_seconds": 120, "daily_summary_at": "08:30"}})

    listed = run_cli(cfg, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("scheduler: not running (no live lease)")
    jobs = table(listed.stdout)
    assert set(jobs) == JOBS
    schedule, last, nxt, result = jobs["stock-alerts"]
    assert (schedule, last, result) == ("every 120s", "-", "-")
    assert nxt.endswith("Z") and nxt[-3:-1] == "00"  # ticks fall on whole multiples of the interval
    assert jobs["daily-summary"][0] == "daily 08:30"

    # No codes at all: out of stock. The alert goes to the log (the CLI does not talk to the chat platforms).
    ran = run_cli(cfg, "jobs", "run", "stock-alerts")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("stock-alerts: ok in ") and f"alerts: {SKU}:out" in ran.stdout
    assert f"alert alert.out_of_stock n=0 sku={SKU}" in ran.stderr
    again = run_cli(cfg, "jobs", "run", "stock-alerts")  # once per crossing, also across processes
    assert "no new alerts" in again.stdout and "alert.out_of_stock" not in again.stderr

    listed = run_cli(cfg, "jobs")
    schedule, last, nxt, result = table(listed.stdout)["stock-alerts"]
    assert last.endswith("Z") and result == "no new alerts"

    assert run_cli(cfg, "jobs", "run", "expire-holds").stdout.startswith("expire-holds: ok in ")
    listed = run_cli(cfg, "jobs")
    assert table(listed.stdout)["expire-holds"][-1] == "0 holds released"


def test_jobs_run_refuses_unknown_jobs_and_those_that_need_the_running_store(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    unknown = run_cli(cfg, "jobs", "run", "nope")
    assert unknown.returncode == 2 and "no job 'nope'" in unknown.stderr and "restock" in unknown.stderr
    channel = run_cli(cfg, "jobs", "run", "dispatch-outbox")
    assert channel.returncode == 2 and "only inside the running store" in channel.stderr


def test_a_bad_jobs_setting_names_the_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra={"jobs": {"timezone": "Mars/Olympus", "daily_summary_at": "9am"}})
    done = run_cli(cfg, "jobs")
    assert done.returncode == 2
    assert "jobs.timezone: must be an IANA time zone" in done.stderr
    assert "jobs.daily_summary_at: must be a time of day" in done.stderr
