"""What the console's page modules share (bots/web/pages/): the request as a page sees it (`Req`), the routes a
page group declares (`Pages`), the menu, the cookie names and `see_other`. bots/web/app.py builds the application
from them; a page module imports only this (no cycle through the app)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.admin import Merchant
from core.console import ConsoleDesk, Session

if TYPE_CHECKING:
    from bots.web.app import ConsoleWeb

COOKIE = "console_session"
LANG_COOKIE = "console_lang"
PREFIX = "/console"
PUBLIC = ("/login", "/static/")  # paths under PREFIX that need no session

# The menu: (path, message key, owners only). A page group adds its pages under its path (bots/web/pages/).
NAV = [("/", "console.nav.dashboard", False), ("/products", "console.nav.products", False),
       ("/codes", "console.nav.codes", False), ("/orders", "console.nav.orders", False),
       ("/tickets", "console.nav.tickets", False), ("/reviews", "console.nav.reviews", False),
       ("/resellers", "console.nav.resellers", True), ("/reports", "console.nav.reports", True),
       ("/jobs", "console.nav.jobs", False), ("/audit", "console.nav.audit", True),
       ("/sessions", "console.nav.sessions", True)]

Handler = Callable[["Req"], Awaitable[web.StreamResponse]]
WEB_KEY = web.AppKey("console", object)
LANG = web.RequestKey("console_lang", str)


@dataclass(slots=True)
class Req:
    """One console request as a page sees it: the aiohttp request, the session, the language."""

    request: web.Request
    web: ConsoleWeb
    session: Session
    token: str  # the session's cookie token (the CSRF token is derived from it)
    lang: str

    @property
    def merchant(self) -> Merchant:
        return self.session.merchant

    @property
    def owner(self) -> bool:
        return self.session.owner

    def t(self, key: str, /, **params: object) -> str:
        return self.web.i18n.t(self.lang, key, **params)

    def money(self, amount: int, currency: str) -> str:
        return self.web.i18n.money(amount, currency, self.lang)

    @property
    def csrf(self) -> str:
        return ConsoleDesk.csrf_token(self.token)

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        return self.web.render(self.request, template, status=status, req=self, **context)

    def url(self, path: str) -> str:
        return PREFIX + path


REQ = web.RequestKey("console_req", Req)


@dataclass(slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    owner: bool  # owners only (staff: 403)


@dataclass(slots=True)
class Pages:
    """A page group's routes (bots/web/pages/<group>.py declares `pages = Pages()` and decorates its handlers)."""

    routes: list[Route] = field(default_factory=list)

    def get(self, path: str, *, owner: bool = False) -> Callable[[Handler], Handler]:
        return self._add("GET", path, owner)

    def post(self, path: str, *, owner: bool = False) -> Callable[[Handler], Handler]:
        return self._add("POST", path, owner)

    def _add(self, method: str, path: str, owner: bool) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append(Route(method, path, fn, owner))
            return fn
        return deco


class Glance:
    """Figures shared by every merchant for `seconds` (the dashboard, a report's figures), by key: one computation
    of a key at a time, the others wait for it, so 50 merchants opening the same page at once read the database
    once. 0: always fresh."""

    def __init__(self, seconds: float, keep: int = 64) -> None:
        self.seconds = seconds
        self.keep = keep
        self._values: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, asyncio.Lock] = {}

    async def get(self, compute: Callable[[], Awaitable[Any]], key: Any = None) -> Any:
        if self.seconds <= 0:
            return await compute()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._values.get(key)
            if hit is None or time.monotonic() - hit[0] > self.seconds:
                hit = self._values[key] = (time.monotonic(), await compute())
                while len(self._values) > self.keep:
                    old = next(iter(self._values))
                    self._values.pop(old)
                    self._locks.pop(old, None)
            return hit[1]

    def forget(self) -> None:
        self._values.clear()


def see_other(location: str) -> web.Response:
    """A 303 to another console page (returned, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})
