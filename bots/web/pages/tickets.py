"""After-sales tickets: the open ones, oldest first (core/aftersales ProblemDesk.open_tickets), each answered by
reissue or reject with an answer (owners and staff) or refund (owners) — the chat's /reissue, /reject and /refund
(core/admin.py AdminService, with the merchant). A refusal (closed, unknown ticket, ...) is shown in the chat's
words above the list."""
from __future__ import annotations

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import Shown, refused, when
from core.admin import AdminCode, AdminError
from core.aftersales import ticket_id_of

pages = Pages()
PER_PAGE = 20


async def _list(req: Req, *, refusal: Shown | None = None, done: tuple[str, str] | None = None,
                status: int = 200) -> web.StreamResponse:
    desk = req.web.shop.problems
    if desk is None:
        shown = await refused(req, AdminError(AdminCode.NO_AFTERSALES), "tickets")
        return req.render("tickets.html", status=shown.status, refusal=shown, done=None, tickets=[], page=0,
                          more=False, when=lambda at: when(req, at))
    raw = req.request.query.get("page", "1")
    page = int(raw) - 1 if raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**6 else 0
    tickets = await desk.open_tickets(PER_PAGE + 1, page * PER_PAGE)
    if refusal is None and done is None:  # a view is recorded as /tickets records it; an action records itself
        await req.web.admin.record(req.merchant, "tickets", page=page + 1, shown=min(len(tickets), PER_PAGE),
                                   via="console")
    return req.render("tickets.html", status=refusal.status if refusal else status, refusal=refusal, done=done,
                      tickets=tickets[:PER_PAGE], page=page, more=len(tickets) > PER_PAGE,
                      when=lambda at: when(req, at))


@pages.get("/tickets")
async def tickets(req: Req) -> web.StreamResponse:
    """The open tickets with their answers."""
    return await _list(req)


def _ref(req: Req) -> str:
    ref = req.request.match_info["ref"].strip().upper()
    if ticket_id_of(ref) is None:
        raise AdminError(AdminCode.TICKET_NOT_FOUND, ticket=ref[:20])
    return ref


@pages.post("/tickets/{ref}/reissue")
async def reissue(req: Req) -> web.StreamResponse:
    """New codes for the ticket's order from the pool (the old ones burned); the ticket is closed as reissued."""
    try:
        order, n = await req.web.admin.reissue(req.merchant, ref := _ref(req))
    except AdminError as exc:
        return await _list(req, refusal=await refused(req, exc, "reissue"))
    return await _list(req, done=(ref, req.t("aftersales.admin.reissued", order=order.id, n=n,
                                             buyer=order.buyer.key)))


@pages.post("/tickets/{ref}/reject")
async def reject(req: Req) -> web.StreamResponse:
    """Turn the ticket down: the buyer gets the merchant's answer in the chat."""
    answer = str((await req.request.post()).get("answer", ""))[:1000]
    try:
        order = await req.web.admin.reject(req.merchant, ref := _ref(req), answer)
    except AdminError as exc:
        return await _list(req, refusal=await refused(req, exc, "reject"))
    return await _list(req, done=(ref, req.t("aftersales.admin.rejected", order=order.id, buyer=order.buyer.key)))


@pages.post("/tickets/{ref}/refund", owner=True)
async def refund(req: Req) -> web.StreamResponse:
    """Refund the ticket's order while the ticket is open (AdminService.refund_ticket: the chat's /refund, which
    closes the order's open tickets as refunded)."""
    try:
        r = await req.web.admin.refund_ticket(req.merchant, ref := _ref(req))
    except AdminError as exc:
        return await _list(req, refusal=await refused(req, exc, "refund"))
    return await _list(req, done=(ref, req.t(
        "admin.refund.queued", order=r.order.id, amount=req.money(r.payment.amount, r.payment.currency),
        buyer=r.order.buyer.key, provider=r.payment.provider, codes=r.codes_burned)))
