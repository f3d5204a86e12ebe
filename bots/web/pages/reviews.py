"""The review queue: orders the risk check held for a merchant's decision, oldest first, with their score and its
reasons (core/risk/desk.py RiskDesk.review_queue); approve (a fresh hold, the buyer is told to pay) or reject (the
stock goes back, the buyer is told) — the chat's /review approve|reject, audited with the merchant's identity
(owners and staff)."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import Shown, status_of, when
from core.admin import ORDER_ID_RE
from core.errors import ErrorCode, StoreError
from handlers import errors

pages = Pages()
SHOWN = 50
MAX_NOTE = 200


async def _queue(req: Req, *, refusal: Shown | None = None, done: tuple[str, str] | None = None
                 ) -> web.StreamResponse:
    queue = await req.web.shop.risk.review_queue(SHOWN)
    products = {p.id: p for p in await req.web.shop.products(include_inactive=True)}
    return req.render("reviews.html", status=refusal.status if refusal else 200, refusal=refusal, done=done,
                      queue=queue, products=products, when=lambda at: when(req, at),
                      reasons=lambda rs: _reasons(req, rs))


def _reasons(req: Req, reasons: list[dict[str, Any]]) -> str:
    """`order value (+30), new account (+20)` in the merchant's language (as the chat's /review)."""
    return ", ".join(f"{req.t('risk.reason.' + str(r.get('signal', '')))} (+{r.get('points', 0)})"
                     for r in reasons) or "-"


@pages.get("/reviews")
async def reviews(req: Req) -> web.StreamResponse:
    """The orders waiting for a decision."""
    return await _queue(req)


@pages.post("/reviews/{id}/{verb:approve|reject}")
async def decide(req: Req) -> web.StreamResponse:
    """Approve or reject one order under review."""
    oid, verb = req.request.match_info["id"].strip().upper(), req.request.match_info["verb"]
    note = str((await req.request.post()).get("note", "")).strip()[:MAX_NOTE]
    desk = req.web.shop.risk
    try:
        if not ORDER_ID_RE.match(oid):
            raise StoreError(ErrorCode.NOT_FOUND, order_id=oid[:30])
        if verb == "approve":
            order = await desk.approve(oid, req.merchant)
        else:
            order = await desk.reject(oid, req.merchant, note)
    except StoreError as exc:
        reason = errors.text(req.web.i18n, req.lang, exc)
        await req.web.admin.record(req.merchant, "review", refused=exc.code.value, via="console", order=oid[:30],
                                   verb=verb)
        shown = Shown(exc.code.value, req.t("risk.admin.review_failed", order=oid[:30], reason=reason),
                      status_of(exc.code.value))
        return await _queue(req, refusal=shown)
    key = "risk.admin.approved" if verb == "approve" else "risk.admin.rejected"
    return await _queue(req, done=(verb, req.t(key, order=order.id, buyer=order.buyer.key)))
