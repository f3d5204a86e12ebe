"""`run.py` serves the console when `console.enabled`, as a merchant runs it: a real store process on its HTTP
server, with the console's links issued by the store's own desk on the same database (as `/console` in the chat
would), so what `cli/run.py` wires is what is tested."""
from __future__ import annotations

from pathlib import Path

import aiohttp

from config.settings import load_settings
from core.clock import SystemClock
from core.console import ConsoleDesk
from core.models import Buyer
from storage.db import Database
from tests.helpers import free_port, start_store, stop_store, write_config

OWNER = Buyer("telegram", "111")


async def test_run_py_serves_the_console_and_signs_in_through_a_link(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path, demo=False, extra={
        "server": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
        "telegram": {"admins": [int(OWNER.external_id)]},
        "console": {"enabled": True}})
    proc = start_store(cfg, port)
    base = f"http://127.0.0.1:{port}"
    try:
        settings = load_settings(cfg)
        db = Database(settings.database_url_resolved())
        try:
            desk = ConsoleDesk(db.uow, SystemClock(), owners={OWNER}, staff=set(), base_url=base)
            link = desk.login_url(await desk.issue_link(OWNER))
        finally:
            await db.dispose()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + "/console", allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"] == "/console/"
            async with http.get(link) as r:
                assert r.status == 200 and 'name="t"' in await r.text()
            async with http.post(base + "/console/login", data={"t": link.split("t=")[1]}) as r:
                page = await r.text()
                assert r.status == 200 and 'data-figure="orders"' in page
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            async with http.get(base + "/console/static/console.css") as r:
                assert r.status == 200 and "text/css" in r.headers["Content-Type"]
    finally:
        stop_store(proc)

