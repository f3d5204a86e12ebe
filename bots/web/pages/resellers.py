"""Resellers (owners only): the accounts with their tier, wallet balance and status; one account's wallet statement,
its API keys (by key id: a secret is shown once, on the page that answers its creation, and never again) and its
tier. The use cases are the chat's and the CLI's (core/resellers/ ResellerDesk, the chat's /reseller list through
core/groups.py); each change is audited by the desk and again as an `admin` entry with the merchant's identity,
a refusal too (with its code), as the chat audits its commands."""
from __future__ import annotations

import re
import secrets
import time
from typing import Any

from aiohttp import web

from bots.web.kit import Pages, Req, see_other
from bots.web.pages.shown import Refusal, page_refusal, refusal, when, whole
from core.resellers import Reseller, ResellerCode, ResellerError

pages = Pages()
SHOW_FOR = 300.0  # seconds a new key's secret waits for its page
SHOW_ONCE: dict[str, tuple[float, int, int, tuple[str, str]]] = {}  # nonce -> (when, session, reseller, (id, secret))
STATEMENT_ROWS = 50
KEY_ID_RE = re.compile(r"^rk_[0-9a-f]{16}$")
STATUSES = ("active", "suspended")


def _id(req: Req) -> int | None:
    raw = req.request.match_info["id"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else None


async def _no_such(req: Req, raw: str) -> web.Response:
    """No such reseller: the list, with the refusal above it."""
    return req.render("resellers_list.html", status=404, rows=await req.web.app.groups.all(), form={},
                      refused=refusal(req, ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=raw[:24])))


def _number(form: Any, field: str, code: ResellerCode, param: str, most: int = 10**12) -> int | None:
    """A whole number from the form ("" is None); anything else refused with the use case's own refusal."""
    raw = str(form.get(field, ""))
    try:
        return whole(raw, most=most)
    except ValueError:
        raise ResellerError(code, **{param: raw[:12]}) from None


async def _record(req: Req, op: str, reseller: int | None, **detail: Any) -> None:
    """The merchant's part of the audit (the desk records what changed, as `merchant`)."""
    await req.web.admin.record(req.merchant, "console reseller", op=op,
                               **({"reseller": reseller} if reseller is not None else {}), **detail)


@pages.get("/resellers", owner=True)
async def accounts(req: Req) -> web.StreamResponse:
    """Every reseller account: tier, credit, wallet balance, status, who acts for it in the chat."""
    return req.render("resellers_list.html", rows=await req.web.app.groups.all(), form={}, refused=None)


@pages.post("/resellers", owner=True)
async def create(req: Req) -> web.StreamResponse:
    """A new reseller account (as `run.py reseller add NAME --discount N --credit N`)."""
    form = await req.request.post()
    name = str(form.get("name", ""))[:200]
    try:
        discount = _number(form, "discount", ResellerCode.BAD_DISCOUNT, "discount", 1000) or 0
        credit = _number(form, "credit", ResellerCode.BAD_CREDIT_LIMIT, "credit_limit") or 0
        r = await req.web.app.resellers.create(name, discount_percent=discount, credit_limit=credit)
    except ResellerError as exc:
        await _record(req, "create", None, refused=exc.code.value)
        return req.render("resellers_list.html", status=400, rows=await req.web.app.groups.all(),
                          form={k: str(v)[:64] for k, v in form.items() if k != "csrf"}, refused=refusal(req, exc))
    await _record(req, "create", r.id, name=r.name, discount=r.discount_percent, credit=r.credit_limit)
    return see_other(req.url(f"/resellers/{r.id}?done=created"))


async def _detail(req: Req, r: Reseller, *, status: int = 200, refused: Refusal | None = None,
                  secret: tuple[str, str] | None = None) -> web.Response:
    desk = req.web.app.resellers
    before = req.request.query.get("before", "")
    before_id = int(before) if before.isascii() and before.isdigit() and len(before) <= 18 else None
    entries = await desk.statement(r.id, limit=STATEMENT_ROWS + 1, before_id=before_id)
    more = len(entries) > STATEMENT_ROWS
    entries = entries[:STATEMENT_ROWS]
    done = req.request.query.get("done", "")
    return req.render("resellers_detail.html", status=status, r=r, entries=entries, keys=await desk.keys_of(r.id),
                      older=entries[-1].id if more and entries else None, refused=refused, secret=secret,
                      done=done if done in ("created", "tier", "revoked") else "",
                      prices="\n".join(f"{sku}={p}" for sku, p in sorted(r.prices.items())),
                      when=lambda at: when(req, at), statuses=STATUSES)


async def _reseller(req: Req) -> Reseller | web.Response:
    rid = _id(req)
    if rid is None:
        return await _no_such(req, req.request.match_info["id"])
    try:
        return await req.web.app.resellers.get(rid)
    except ResellerError:
        return await _no_such(req, str(rid))


@pages.get("/resellers/{id}", owner=True)
async def account(req: Req) -> web.StreamResponse:
    """One account: its tier, its wallet's statement (newest first, paged), its API keys."""
    r = await _reseller(req)
    return r if isinstance(r, web.Response) else await _detail(req, r)


def _prices(text: str) -> dict[str, int]:
    """`SKU=PRICE` lines (minor units), as `run.py reseller update --price SKU=PRICE`."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        sku, _, price = line.partition("=")
        sku = sku.strip()
        try:
            value = whole(price)
        except ValueError:
            value = None
        if not sku or value is None:
            raise ResellerError(ResellerCode.BAD_PRICE, sku=line[:64])
        out[sku] = value
    return out


@pages.post("/resellers/{id}/tier", owner=True)
async def tier(req: Req) -> web.StreamResponse:
    """Change the tier: discount, price list, credit limit, status (as `run.py reseller update`)."""
    r = await _reseller(req)
    if isinstance(r, web.Response):
        return r
    form = await req.request.post()
    try:
        discount = _number(form, "discount", ResellerCode.BAD_DISCOUNT, "discount", 1000)
        credit = _number(form, "credit", ResellerCode.BAD_CREDIT_LIMIT, "credit_limit")
        prices = _prices(str(form.get("prices", ""))[:20_000]) if "prices" in form else None
        status = str(form.get("status", "")) or None
        updated = await req.web.app.resellers.update(r.id, discount_percent=discount, prices=prices,
                                                     credit_limit=credit, status=status)
    except ResellerError as exc:
        await _record(req, "tier", r.id, refused=exc.code.value)
        return await _detail(req, r, status=400, refused=refusal(req, exc))
    await _record(req, "tier", r.id, discount=updated.discount_percent, credit=updated.credit_limit,
                  status=updated.status, prices=len(updated.prices))
    return see_other(req.url(f"/resellers/{r.id}?done=tier"))


@pages.post("/resellers/{id}/keys", owner=True)
async def new_key(req: Req) -> web.StreamResponse:
    """A new API key: its secret is on this answer only (the page is not cached; the secret is stored encrypted
    and never shown again)."""
    r = await _reseller(req)
    if isinstance(r, web.Response):
        return r
    form = await req.request.post()
    rate = req.web.settings.server.api_rate_per_second
    try:
        given = _number(form, "rate", ResellerCode.BAD_RATE, "rate")
        rate = rate if given is None else given
        key_id, secret = await req.web.app.resellers.create_api_key(r.id, rate_per_second=rate)
    except ResellerError as exc:
        await _record(req, "api_key", r.id, refused=exc.code.value)
        return await _detail(req, r, status=400, refused=refusal(req, exc))
    await _record(req, "api_key", r.id, key_id=key_id, rate=rate)
    # Post/redirect/get: the secret waits (in this process's memory, a few minutes at most) for the one page that
    # shows it; reloading that page shows it no more and makes no second key.
    nonce = secrets.token_urlsafe(16)
    SHOW_ONCE[nonce] = (time.monotonic(), req.session.id, r.id, (key_id, secret))
    for stale in [n for n, v in SHOW_ONCE.items() if time.monotonic() - v[0] > SHOW_FOR]:
        SHOW_ONCE.pop(stale, None)
    return see_other(req.url(f"/resellers/{r.id}/keys/new/{nonce}"))


@pages.get("/resellers/{id}/keys/new/{nonce}", owner=True)
async def shown_key(req: Req) -> web.StreamResponse:
    """The page that shows a new key's secret: once, to the session that made it."""
    r = await _reseller(req)
    if isinstance(r, web.Response):
        return r
    held = SHOW_ONCE.pop(req.request.match_info["nonce"], None)
    if held is None or held[1] != req.session.id or held[2] != r.id or time.monotonic() - held[0] > SHOW_FOR:
        return await _detail(req, r, status=410, refused=page_refusal(req, "shown", "console.resellers.shown"))
    return await _detail(req, r, secret=held[3])


@pages.post("/resellers/{id}/keys/{key_id}/revoke", owner=True)
async def revoke_key(req: Req) -> web.StreamResponse:
    """Revoke one of this reseller's API keys (as `run.py reseller revoke KEY_ID`)."""
    r = await _reseller(req)
    if isinstance(r, web.Response):
        return r
    key_id = req.request.match_info["key_id"]
    done = bool(KEY_ID_RE.match(key_id)) and await req.web.app.resellers.revoke_api_key(key_id, reseller_id=r.id)
    if not done:
        await _record(req, "revoke_key", r.id, refused="no_key", key_id=key_id[:24])
        return await _detail(req, r, status=404, refused=page_refusal(req, "no_key", "console.resellers.no_key",
                                                                    key_id=key_id[:24]))
    await _record(req, "revoke_key", r.id, key_id=key_id)
    return see_other(req.url(f"/resellers/{r.id}?done=revoked"))
