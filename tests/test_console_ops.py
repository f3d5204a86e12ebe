"""The console's jobs and sessions pages over HTTP, and `run.py console sessions [--all] [--revoke ID ...]` as a
real process on the same database: what each shows, revocation from either side, refusals that change nothing."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from core.console import SEEN_FOR, Session
from tests.console_kit import OWNER, STAFF, open_console
from tests.helpers import run_cli, write_config


async def test_the_jobs_page_shows_runs_failures_the_lease_and_failing_suppliers(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        async with kit.client(STAFF) as http:  # staff may see the jobs
            status, html = await kit.get(http, "/jobs")
            assert status == 200 and 'data-scheduled="no"' in html and 'data-lease="none"' in html

        runner = kit.app.job_runner()  # what the running store builds when it starts its scheduler

        async def broken() -> str:
            raise RuntimeError("the supplier's API timed out")

        runner.add("broken", broken, every=runner.jobs["expire-holds"].every)
        assert await runner.heartbeat()
        await runner.run_now("expire-holds")
        await runner.run_now("broken")
        assert kit.app.jobs is not None
        await kit.app.jobs.health.failed("upstream-x", TimeoutError("no answer in 10 s <script>"))

        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/jobs")
        assert status == 200 and 'data-scheduled="no"' not in html
        assert 'data-lease="held"' in html and runner.owner in html
        assert 'data-job="expire-holds" data-job-state="ok"' in html and "0 holds released" in html
        assert 'data-job="broken" data-job-state="failed"' in html and "the supplier&#39;s API timed out" in html
        assert 'data-job="restock" data-job-state="never"' in html
        row = re.search(r'data-job="restock".*?</tr>', html, re.S).group(0)
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row)  # its next run, though it never ran
        assert 'data-supplier="upstream-x"' in html and "&lt;script&gt;" in html and "<script>" not in html


def _open(sessions: list[Session]) -> dict[str, int]:
    return {s.merchant.key: s.id for s in sessions}


async def test_owners_list_and_revoke_sessions_and_staff_cannot(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http, kit.client(STAFF) as other:
        status, html = await kit.get(other, "/sessions")
        assert status == 403 and 'data-refusal="owner_only"' in html
        status, html = await kit.post(other, "/sessions/1/revoke")
        assert status == 403
        ids = _open(await kit.web.desk.sessions())
        assert set(ids) == {OWNER.key, STAFF.key}

        status, html = await kit.get(http, "/sessions")
        assert status == 200 and f'data-session="{ids[STAFF.key]}" data-open="yes"' in html
        assert "Python/" in html  # the browser (aiohttp's user agent)
        for bad in ("999999", "abc"):
            status, html = await kit.post(http, f"/sessions/{bad}/revoke")
            assert status == 404 and 'data-refusal="not_open"' in html
        status, html = await kit.post(http, f"/sessions/{ids[STAFF.key]}/revoke", csrf=False)
        assert status == 403 and (await kit.get(other, "/jobs"))[0] == 200  # nothing was done

        status, html = await kit.post(http, f"/sessions/{ids[STAFF.key]}/revoke")
        assert status == 200 and 'data-done="revoked"' in html
        assert (await kit.get(other, "/jobs", allow_redirects=False))[0] == 303  # signed out
        status, html = await kit.post(http, f"/sessions/{ids[STAFF.key]}/revoke")  # ended already
        assert status == 404 and 'data-refusal="not_open"' in html
        status, html = await kit.get(http, "/sessions?all=1")
        assert f'data-session="{ids[STAFF.key]}" data-open="no"' in html
        async with kit.app.shop.uow() as uow:
            [entry] = await uow.audit.latest("console_revoke", OWNER.key)
        assert entry.detail == {"sessions": [ids[STAFF.key]]}


async def test_the_cli_lists_and_revokes_sessions(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http, kit.client(STAFF) as other:
        cfg = write_config(tmp_path, url=kit.app.settings.database_url_resolved(), name="cli.yaml", extra={
            "telegram": {"admins": [int(OWNER.external_id)]},
            "console": {"staff": [f"telegram:{STAFF.external_id}"]}})
        ids = _open(await kit.web.desk.sessions())

        listed = run_cli(cfg, "console", "sessions")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert lines[0].split()[:3] == ["id", "who", "role"]
        rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
        assert rows[str(ids[STAFF.key])][1:3] == [STAFF.key, "staff"]
        assert rows[str(ids[OWNER.key])][1:3] == [OWNER.key, "owner"]

        # one id that is not open refuses the whole command: nothing is revoked
        refused = run_cli(cfg, "console", "sessions", "--revoke", str(ids[STAFF.key]), "999999")
        assert refused.returncode == 2 and "999999" in refused.stderr and refused.stdout == ""
        assert (await kit.get(other, "/jobs"))[0] == 200

        revoked = run_cli(cfg, "console", "sessions", "--revoke", str(ids[STAFF.key]))
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout.strip() == f"session {ids[STAFF.key]} ended: its browser is signed out"
        # the console's process took the session as read for at most SEEN_FOR seconds: signed out by then
        deadline = time.monotonic() + SEEN_FOR + 1
        while (await kit.get(other, "/jobs", allow_redirects=False))[0] != 303:
            assert time.monotonic() < deadline, "a session revoked elsewhere still opens pages"
            await asyncio.sleep(0.1)
        assert (await kit.get(http, "/jobs"))[0] == 200

        listed = run_cli(cfg, "console", "sessions")
        assert str(ids[STAFF.key]) not in {ln.split()[0] for ln in listed.stdout.strip().splitlines()[1:]}
        everyone = run_cli(cfg, "console", "sessions", "--all")
        row = next(ln for ln in everyone.stdout.splitlines() if ln.startswith(f"{ids[STAFF.key]} "))
        assert "ended" in row.split()
        async with kit.app.shop.uow() as uow:
            [entry] = await uow.audit.latest("console_revoke", "cli:cli")
        assert entry.detail == {"sessions": [ids[STAFF.key]]}


def test_the_cli_says_when_there_is_no_session_in_the_merchants_language(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra={"store": {"demo": True, "default_language": "zh_CN"}})
    listed = run_cli(cfg, "console", "sessions")
    assert listed.returncode == 0 and listed.stdout.strip() == "没有进行中的后台会话"
    refused = run_cli(cfg, "console", "sessions", "--revoke", "1")
    assert refused.returncode == 2 and "1" in refused.stderr and "错误" in refused.stderr
