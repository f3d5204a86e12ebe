"""The web console for tests: a whole store (tests/helpers.py `open_shop`'s parts) with the console mounted on a
real HttpServer (port 0), an owner (telegram 111) and a staff member (telegram 222), and signed-in HTTP clients.

    async with open_console(db_url, tmp_path) as kit:
        async with kit.client(OWNER) as http:          # signed in through a real one-time link
            page = await kit.get(http, "/orders")       # (status, html)
            await kit.post(http, "/orders/X/refund", {...})   # the page's CSRF token added

Browser tests use `kit.link(OWNER)` (a fresh login URL) with the `page` fixture of tests/browser.py.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from app import App
from bots.http import HttpServer
from bots.web import ConsoleWeb, mount_console
from config.settings import parse_settings
from core.clock import Clock
from core.models import Buyer
from tests.dbtemplate import from_template
from tests.helpers import CHANNEL, DEFAULT_CATALOG, PROVIDER, RecordingGateway, RecordingNotifier

OWNER = Buyer("telegram", "111")
STAFF = Buyer("telegram", "222")
STRANGER = Buyer("telegram", "333")
CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class ConsoleKit:
    app: App
    web: ConsoleWeb
    server: HttpServer
    notifier: RecordingNotifier
    gateway: RecordingGateway
    base: str
    csrf: dict[int, str] = field(default_factory=dict)  # id(client session) -> its CSRF token

    async def link(self, who: Buyer = OWNER) -> str:
        """A fresh one-time login URL for `who` (as `/console` in the chat would send)."""
        return self.web.login_link(await self.web.desk.issue_link(who))

    @asynccontextmanager
    async def client(self, who: Buyer = OWNER) -> AsyncIterator[aiohttp.ClientSession]:
        """An HTTP client signed in as `who` through a real link (cookie jar that takes 127.0.0.1's cookies)."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            url = await self.link(who)
            token = url.split("t=", 1)[1]
            async with http.post(self.base + "/console/login", data={"t": token}, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            status, html = await self.get(http, "/")
            assert status == 200, html
            yield http

    async def get(self, http: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, str]:
        async with http.get(self.base + "/console" + path, allow_redirects=kw.pop("allow_redirects", True),
                            **kw) as r:
            text = await r.text()
        found = CSRF_RE.search(text)
        if found:
            self.csrf[id(http)] = found.group(1)
        return r.status, text

    async def post(self, http: aiohttp.ClientSession, path: str, data: dict[str, Any] | None = None, *,
                   csrf: bool = True, **kw: Any) -> tuple[int, str]:
        """A form POST carrying the CSRF token of the last page this client loaded (csrf=False: without it)."""
        form = dict(data or {})
        if csrf:
            if id(http) not in self.csrf:
                await self.get(http, "/")
            form["csrf"] = self.csrf[id(http)]
        async with http.post(self.base + "/console" + path, data=form,
                             allow_redirects=kw.pop("allow_redirects", True), **kw) as r:
            return r.status, await r.text()


@asynccontextmanager
async def open_console(url: str, tmp_path: Path, *, catalog: list[dict[str, Any]] | None = None,
                       clock: Clock | None = None, extra: dict[str, Any] | None = None) -> AsyncIterator[ConsoleKit]:
    """A store on `url` with the console on a real HTTP server; buyers use channel "test" (tests/helpers.py)."""
    data: dict[str, Any] = {
        "store": {"demo": True},
        "database": {"url": from_template(url)},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": list(DEFAULT_CATALOG if catalog is None else catalog),
        "telegram": {"admins": [int(OWNER.external_id)]},
        "console": {"enabled": True, "staff": [f"telegram:{STAFF.external_id}"]},
        **(extra or {}),
    }
    settings = parse_settings(data, tmp_path, env={})
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, clock=clock, notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway})
    server = HttpServer("127.0.0.1", 0)
    try:
        web = mount_console(server, app)
        await server.start()
        web.desk.base_url = f"http://127.0.0.1:{server.port}"
        yield ConsoleKit(app, web, server, notifier, gateway, web.desk.base_url)
    finally:
        await server.stop()
        await app.close()
