"""Orders: search (id, buyer, status, days in the store's zone; newest first, a page at a time), an order's detail
with its payments, its codes as row ids and states (never their text) and its audit trail; refund (owners, with a
confirm: the chat's /refund) and reveal (owners and staff: the codes on the POST's answer only, audited as a reveal
by the merchant, limited like a buyer's). Every use case is core/admin.py AdminService's, with the merchant."""
from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import refused, title, when
from core.admin import AdminError
from core.models import OrderStatus
from core.order_search import SearchError, parse_query

pages = Pages()
FIELDS = ("id", "buyer", "status", "from", "to")
PER_PAGE = 25
TRAIL_SHOWN = 30  # the newest entries of an order's trail (every view of it is one)


def _form(req: Req) -> dict[str, str]:
    q = req.request.query
    return {k: q.get(k, "").strip()[:100] for k in FIELDS}


@pages.get("/orders")
async def orders(req: Req) -> web.StreamResponse:
    """Search orders; an empty search lists the newest."""
    form = _form(req)
    ctx = {"form": form, "statuses": [s.value for s in OrderStatus], "when": lambda at: when(req, at),
           "title": lambda p: title(req, p)}
    try:
        query = parse_query(order_id=form["id"], buyer=form["buyer"], status=form["status"], first=form["from"],
                            last=form["to"], page=req.request.query.get("page", ""))
    except SearchError as exc:
        shown = await refused(req, exc, "orders")
        return req.render("orders_list.html", status=shown.status, refusal=shown, result=None, prev="", next="",
                          **ctx)
    result = await req.web.admin.search_orders(req.merchant, query, PER_PAGE)

    def page_url(page: int) -> str:
        return req.url("/orders?" + urlencode({**{k: v for k, v in form.items() if v}, "page": page + 1}))

    return req.render("orders_list.html", refusal=None, result=result,
                      prev=page_url(result.page - 1) if result.page > 0 else "",
                      next=page_url(result.page + 1) if result.more else "", **ctx)


@pages.get("/orders/{id}")
async def order(req: Req) -> web.StreamResponse:
    """One order: what was bought, by whom, paid how; its codes by row id; its audit trail; refund and reveal."""
    oid = req.request.match_info["id"]
    try:
        detail = await req.web.admin.order(req.merchant, oid)
    except AdminError as exc:
        shown = await refused(req, exc, "order")
        return req.render("orders_result.html", status=shown.status, order_id=oid[:30], refusal=shown, done=None)
    return req.render("orders_detail.html", d=detail, when=lambda at: when(req, at), product_title=title(
        req, detail.product), refundable=detail.order.status is OrderStatus.DELIVERED,
        revealable=detail.order.status is OrderStatus.DELIVERED and bool(detail.codes), trail_shown=TRAIL_SHOWN)


@pages.post("/orders/{id}/refund", owner=True)
async def refund(req: Req) -> web.StreamResponse:
    """Refund a delivered order (AdminService.refund, as /refund): the provider's refund goes out through the
    outbox, the codes are burned at once, the order's open tickets are closed as refunded."""
    oid = req.request.match_info["id"]
    try:
        r = await req.web.admin.refund(req.merchant, oid)
    except AdminError as exc:
        shown = await refused(req, exc, "refund")
        return req.render("orders_result.html", status=shown.status, order_id=oid[:30], refusal=shown, done=None)
    done = req.t("admin.refund.queued", order=r.order.id, amount=req.money(r.payment.amount, r.payment.currency),
                 buyer=r.order.buyer.key, provider=r.payment.provider, codes=r.codes_burned)
    return req.render("orders_result.html", order_id=r.order.id, refusal=None, done=("refund", done))


@pages.post("/orders/{id}/reveal")
async def reveal(req: Req) -> web.StreamResponse:
    """The order's codes, on this answer only (never on a GET page): audited as a reveal by the merchant."""
    oid = req.request.match_info["id"]
    try:
        order, codes = await req.web.admin.reveal_for_merchant(req.merchant, oid)
    except AdminError as exc:
        shown = await refused(req, exc, "reveal")
        return req.render("orders_result.html", status=shown.status, order_id=oid[:30], refusal=shown, done=None)
    return req.render("orders_reveal.html", order=order, codes=codes)
