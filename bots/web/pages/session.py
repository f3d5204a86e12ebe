"""Login by a one-time link, logout. `GET /login?t=TOKEN` shows a "Sign in" form (a link preview fetching the URL
spends nothing); its POST redeems the token (core/console.py) and sets the session cookie."""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aiohttp import web

from bots.web.kit import COOKIE, PREFIX, WEB_KEY, Pages, Req, see_other
from core.console import ConsoleError

if TYPE_CHECKING:
    from bots.web.app import ConsoleWeb

pages = Pages()


def _web(request: web.Request) -> ConsoleWeb:
    return cast("ConsoleWeb", request.app[WEB_KEY])


async def login_form(request: web.Request) -> web.StreamResponse:
    console = _web(request)
    token = request.query.get("t", "")
    return console.render(request, "login.html", token=token[:128], reason="")


async def login(request: web.Request) -> web.StreamResponse:
    console = _web(request)
    form = await request.post()
    token = str(form.get("t", ""))
    try:
        session_token, _ = await console.desk.redeem(token, request.headers.get("User-Agent", ""))
    except ConsoleError as exc:
        return console.render(request, "login.html", status=403, token="", reason=exc.code.value)
    response = see_other(PREFIX + "/")
    console.set_session_cookie(response, session_token)
    return response


@pages.post("/logout")
async def logout(req: Req) -> web.StreamResponse:
    await req.web.desk.logout(req.session)
    response = see_other(PREFIX + "/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


def add_public(sub: web.Application) -> None:
    """The login pages: no session needed (bots/web/app.py PUBLIC)."""
    sub.router.add_get("/login", login_form)
    sub.router.add_post("/login", login)
