"""The console's aiohttp sub-application: sessions, CSRF, roles, language, security headers, templates.

Every path under `/console/` but the login pages and the static files needs an open session (else: the login page,
which says to send `/console` to the bot). Every POST needs the session's CSRF token (form field `csrf`, header
`X-CSRF-Token`, or `?csrf=` for streamed uploads), else 403 and nothing is done. Pages marked `owner=True` (finances,
exports, keys, the audit log, sessions) answer staff with 403, audited as `admin_denied`.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bots.web.kit import COOKIE, LANG, LANG_COOKIE, NAV, PREFIX, PUBLIC, REQ, WEB_KEY, Glance, Req, Route
from bots.web.pages import ALL, add_public
from core.admin import AdminService
from core.alerts import LogAlerts
from core.console import ConsoleDesk
from core.reports import Figures, Period
from core.supply import SupplierHealth
from locales import Translator

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
DASHBOARD_SECONDS = 3.0
REPORT_SECONDS = 30.0
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class ConsoleWeb:
    """The console's services and its aiohttp sub-application."""

    def __init__(self, app: Any, i18n: Translator | None = None) -> None:
        """`app`: the store's app.bootstrap.App (the composition root builds the console; nothing here imports it)."""
        settings = app.settings
        self.app = app
        self.settings = settings
        self.shop = app.shop
        self.i18n = i18n or Translator(settings.store.languages, settings.store.default_language)
        c = settings.console
        if app.shop.console is None:
            raise ValueError("the console is off (console.enabled: false)")
        self.desk = app.shop.console
        self.admin = AdminService(app.shop)
        self.glance = Glance(DASHBOARD_SECONDS)  # the dashboard's figures, a few seconds old at most
        self.report_figures = Glance(REPORT_SECONDS)  # a period's figures, by period
        # The suppliers' health as the jobs keep it (read only here: the scheduler's process writes it)
        self.health = app.jobs.health if app.jobs is not None else SupplierHealth(app.shop.uow, app.clock,
                                                                                  LogAlerts())
        self.secure = self.desk.base_url.startswith("https://")
        self.max_upload = c.max_upload_mb * 1024 * 1024
        self.sub = web.Application(middlewares=[self._headers, self._gate])
        self.sub[WEB_KEY] = self
        self._env = aiohttp_jinja2.setup(self.sub, loader=jinja2.FileSystemLoader(HERE / "templates"),
                                         autoescape=True, undefined=jinja2.StrictUndefined,
                                         auto_reload=False)  # templates are read once: no stat per page
        for name in self._env.list_templates(extensions=["html"]):
            self._env.get_template(name)  # compiled now: the first merchants after a start do not wait on it
        versions = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:10] for f in (HERE / "static").iterdir()}
        self._env.globals.update(prefix=PREFIX, languages=self.i18n.languages, nav=NAV,
                                 static=lambda name: f"{PREFIX}/static/{name}?v={versions.get(name, '')}")
        self.sub.router.add_static("/static/", HERE / "static")
        self._routes: dict[tuple[str, str], Route] = {}
        add_public(self.sub)
        for pages in ALL:
            for route in pages.routes:
                self._add(route)

    async def figures(self, period: Period) -> Figures:
        """A period's figures (core/reports/), shared by the merchants looking at the same period for
        REPORT_SECONDS: a report of a big month costs seconds of the database's time, once, not once a merchant."""
        result: Figures = await self.report_figures.get(lambda: self.shop.reports.figures(period),
                                                        (period.start, period.end))
        return result

    def login_link(self, token: str) -> str:
        return self.desk.login_url(token)

    def _add(self, route: Route) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            req = request[REQ]
            if route.owner and not req.owner:
                await self.admin.record_denied(req.merchant.channel, req.merchant.external_id,
                                               f"console {route.path}")
                return req.render("refused.html", status=403, reason="owner_only")
            return await route.handler(req)

        self._routes[(route.method, route.path)] = route
        self.sub.router.add_route(route.method, route.path, handle)

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        lang = context.get("lang") or request.get(LANG) or self.i18n.default
        req = context.get("req")
        context.setdefault("t", lambda key, /, **p: self.i18n.t(lang, key, **p))
        context.setdefault("money", lambda amount, cur: self.i18n.money(amount, cur, lang))
        context.setdefault("lang", lang)
        context.setdefault("csrf", req.csrf if req is not None else "")
        context.setdefault("session", req.session if req is not None else None)
        context.setdefault("path", request.path)
        context.setdefault("req", None)
        return aiohttp_jinja2.render_template(template, request, context, status=status)

    # -- middlewares ----------------------------------------------------------------------------------------
    def _language(self, request: web.Request) -> str:
        asked = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or ""
        if asked in self.i18n.languages:
            return asked
        header = request.headers.get("Accept-Language", "").lower()
        for part in header.split(","):
            code = part.split(";")[0].strip()
            if code.startswith("zh") and "zh_CN" in self.i18n.languages:
                return "zh_CN"
            if code.startswith("en") and "en" in self.i18n.languages:
                return "en"
        return self.i18n.default

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request[LANG] = self._language(request)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            self._secure(request, exc)
            raise
        self._secure(request, response)
        return response

    def _secure(self, request: web.Request, response: web.StreamResponse) -> None:
        if response.prepared:
            return
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")  # a login link's token never leaves in a Referer
        if not request.path.startswith(PREFIX + "/static/"):
            h.setdefault("Cache-Control", "no-store")
        if request.query.get("lang") in self.i18n.languages:
            response.set_cookie(LANG_COOKIE, request[LANG], path=PREFIX, max_age=365 * 86400, samesite="Strict",
                                httponly=True, secure=self.secure)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rel = request.path[len(PREFIX):] if request.path.startswith(PREFIX) else request.path
        if any(rel.startswith(p) for p in PUBLIC):
            return await handler(request)  # type: ignore[no-any-return]
        token = request.cookies.get(COOKIE, "")
        session = await self.desk.session(token)
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(PREFIX + "/login")
            return self.render(request, "refused.html", status=401, reason="no_session")
        req = Req(request, self, session, token, request[LANG])
        if request.method not in ("GET", "HEAD") and not await self._csrf_ok(request, token):
            log.warning("console: a %s to %s without a valid CSRF token (session %s)", request.method,
                        request.path, session.id)
            return req.render("refused.html", status=403, reason="csrf")
        request[REQ] = req
        if request.method in ("GET", "HEAD"):
            return await handler(request)  # type: ignore[no-any-return]
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.glance.forget()  # a merchant's change shows on the next dashboard and report
            self.report_figures.forget()

    async def _csrf_ok(self, request: web.Request, token: str) -> bool:
        given = request.headers.get("X-CSRF-Token") or request.query.get("csrf")
        if not given and request.content_type == "application/x-www-form-urlencoded":
            given = str((await request.post()).get("csrf", ""))
        return ConsoleDesk.csrf_ok(token, given)

    def set_session_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="Strict", secure=self.secure,
                            max_age=self.desk.session_ttl.total_seconds())


def mount_console(server: Any, app: Any, i18n: Translator | None = None) -> ConsoleWeb:
    """The console on `server` (bots/http.py HttpServer) under /console/."""
    console = ConsoleWeb(app, i18n)

    async def bare(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(PREFIX + "/")

    server.app.router.add_get(PREFIX, bare)
    server.app.add_subapp(PREFIX, console.sub)
    return console
