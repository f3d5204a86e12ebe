"""Console sessions (owners only): who is signed in, with which role, since when, last seen, from which browser;
and revoking one (as `run.py console sessions --revoke ID`), audited as `console_revoke` with the merchant's
identity (core/console.py ConsoleDesk)."""
from __future__ import annotations

from aiohttp import web

from bots.web.kit import Pages, Req, see_other
from bots.web.pages.shown import Refusal, page_refusal, when

pages = Pages()
SHOWN = 200


async def _list(req: Req, *, status: int = 200, refused: Refusal | None = None) -> web.Response:
    everyone = req.request.query.get("all") == "1"
    rows = await req.web.desk.sessions(open_only=not everyone, limit=SHOWN)
    revoked = req.request.query.get("revoked", "")
    return req.render("sessions.html", status=status, rows=rows, everyone=everyone, refused=refused,
                      revoked=revoked if revoked.isdigit() else "", when=lambda at: when(req, at),
                      now=req.web.shop.clock.now(), idle=req.web.desk.idle)


@pages.get("/sessions", owner=True)
async def sessions(req: Req) -> web.StreamResponse:
    """The open sessions (`?all=1`: the recent ones, ended too), newest first."""
    return await _list(req)


@pages.post("/sessions/{id}/revoke", owner=True)
async def revoke(req: Req) -> web.StreamResponse:
    """End a session now: its cookie opens nothing any more."""
    raw = req.request.match_info["id"]
    sid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
    ended = await req.web.desk.revoke([sid], req.merchant) if sid is not None else []
    if not ended:
        return await _list(req, status=404, refused=page_refusal(req, "not_open", "console.sessions.not_open",
                                                                 session=raw[:24]))
    if sid == req.session.id:  # the merchant ended their own session: sign in again
        return see_other(req.url("/login"))
    return see_other(req.url(f"/sessions?revoked={sid}"))
