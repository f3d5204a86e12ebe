"""The B2B HTTP API on the store's aiohttp server, under /api/v1: resellers' systems buy codes here.

Every request except `GET /api/v1/openapi.json` is signed with the reseller's API key:

    X-Api-Key: <key id>     X-Timestamp: <Unix seconds>     X-Nonce: <8-64 of A-Z a-z 0-9 _ ->
    X-Signature: hex(HMAC-SHA256(secret, METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))
                                         \\n IDEMPOTENCY-KEY))

The Idempotency-Key header is signed too (the last line; empty when the request has none), so nobody between the
reseller and the store can change or strip it to make a second order of a signed body. There is no compatibility
mode for clients that sign the five lines without it: every request of such a client is `bad_signature`, at once
and for every endpoint, rather than orders quietly losing their protection.

A timestamp more than 5 minutes from the store's clock, a nonce this key used before (recorded in the database, so
every store process refuses it), a wrong signature or an unknown key are refused (401) before anything else
happens; each key has its own rate limit (429). Errors are JSON `{"error": {"code", "message"}}` with stable codes
(ERRORS below). Codes are returned only here, only to the reseller whose order it is.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from core.coordination import LocalShared, Shared
from core.errors import StoreError
from core.resellers import MAX_QTY, B2BOrder, Reseller, ResellerDesk, ResellerError, WalletEntry
from core.signing import PREFIX, sign
from handlers import errors
from locales import Translator

log = logging.getLogger(__name__)

MAX_SKEW = 300  # seconds between the caller's timestamp and the store's clock
MAX_BODY = 64 * 1024
# Every pattern is used with fullmatch: `$` would also match before a trailing newline. Numbers are ASCII digits
# only: str.isdigit() is true for '²' (which int() refuses) and int() reads '１０', ' 10' and '1_0'.
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
IDEMPOTENCY_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what create_api_key makes (rk_ + hex)
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
SIGNATURE_RE = re.compile(r"[0-9A-Fa-f]{64}")
NUMBER_RE = re.compile(r"[0-9]{1,19}")
MAX_ID = 2**63 - 1  # the largest id the database holds (64-bit): a larger one overflows in the driver

# error code -> HTTP status. Stable: callers branch on the code (the message is for people).
ERRORS: dict[str, int] = {
    "missing_auth": 401, "bad_timestamp": 401, "stale_timestamp": 401, "unknown_key": 401, "bad_signature": 401,
    "replayed_nonce": 401, "rate_limited": 429, "body_too_large": 413, "bad_request": 400,
    "idempotency_key_required": 400, "idempotency_key_reused": 409, "unknown_sku": 404, "not_found": 404,
    "bad_quantity": 400, "kind_not_supported": 400, "product_unavailable": 409, "sold_out": 409,
    "insufficient_funds": 402, "account_suspended": 403, "internal": 500, "bad_account": 400,
    # the rules-and-risk check every order passes; codes of goods that start later (deliver_on_effective)
    "rule_refused": 403, "risk_refused": 403, "not_yet_due": 409,
}


class ApiError(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(code)


Handler = Callable[[web.Request, Reseller, bytes], Awaitable[web.Response]]


class B2BApi:
    """The /api/v1 routes over a ResellerDesk. `i18n` (locales.Translator) words the error messages."""

    def __init__(self, desk: ResellerDesk, i18n: Any, *, max_skew: int = MAX_SKEW,
                 now: Callable[[], float] | None = None, shared: Shared | None = None) -> None:
        self.desk = desk
        self.i18n = i18n
        self.max_skew = max_skew
        self._now = now or (lambda: desk.clock.now().timestamp())
        self.shared: Shared = shared if shared is not None else LocalShared()

    def mount(self, app: web.Application, prefix: str = PREFIX) -> None:
        app.router.add_get(f"{prefix}/openapi.json", self.openapi)
        app.router.add_get(f"{prefix}/products", self._signed(self.products))
        app.router.add_get(f"{prefix}/balance", self._signed(self.balance))
        app.router.add_get(f"{prefix}/statement", self._signed(self.statement))
        app.router.add_post(f"{prefix}/orders", self._signed(self.create_order))
        app.router.add_get(f"{prefix}/orders", self._signed(self.order_by_key))
        app.router.add_get(f"{prefix}/orders/{{order_id}}", self._signed(self.get_order))

    # -- authentication ---------------------------------------------------------------------------------------
    def _signed(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            try:
                reseller, body = await self._authenticate(request)
                return await handler(request, reseller, body)
            except ApiError as exc:
                return self._error(request, exc.code, exc.params)
            except (ResellerError, StoreError) as exc:  # a refusal: its API code (handlers/errors.py API_CODES)
                return self._error(request, errors.api_code(exc), exc.params)
            except Exception as exc:  # noqa: BLE001 - never a traceback (or a code) to the caller
                log.error("B2B API %s %s failed: %s", request.method, request.path, type(exc).__name__)
                return self._error(request, "internal", {})

        return route

    async def _authenticate(self, request: web.Request) -> tuple[Reseller, bytes]:
        h = request.headers
        key_id, ts, nonce, signature = (h.get("X-Api-Key"), h.get("X-Timestamp"), h.get("X-Nonce"),
                                        h.get("X-Signature"))
        idempotency_key = h.get("Idempotency-Key", "")
        if not (key_id and ts and nonce and signature):
            raise ApiError("missing_auth")
        # Header values arrive as whatever bytes were sent (non-UTF-8 ones as surrogates): each is checked
        # against its exact format before it is compared, converted, signed or looked up.
        if not TIMESTAMP_RE.fullmatch(ts):
            raise ApiError("bad_timestamp")
        if not NONCE_RE.fullmatch(nonce):
            raise ApiError("bad_request", field="X-Nonce")
        if not request.raw_path.isascii():  # the path is signed as sent: sent right, it is percent-encoded
            raise ApiError("bad_request", field="path")
        if idempotency_key and not IDEMPOTENCY_RE.fullmatch(idempotency_key):  # signed: it must be ASCII
            raise ApiError("idempotency_key_required")
        if abs(self._now() - int(ts)) > self.max_skew:
            raise ApiError("stale_timestamp", max_skew=self.max_skew)
        found = await self.desk.api_key(key_id) if KEY_ID_RE.fullmatch(key_id) else None
        if found is None:
            raise ApiError("unknown_key")
        key, reseller = found
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError("body_too_large", limit=MAX_BODY)
        body = bytearray()
        try:
            async for chunk in request.content.iter_chunked(16384):
                body += chunk
                if len(body) > MAX_BODY:
                    raise ApiError("body_too_large", limit=MAX_BODY)
        except (RequestPayloadError, ConnectionError):  # broken framing or gzip; the client went away mid-body
            raise ApiError("bad_request", field="body") from None
        expected = sign(key.secret, request.method, request.raw_path, ts, nonce, bytes(body), idempotency_key)
        if not SIGNATURE_RE.fullmatch(signature) or not hmac.compare_digest(expected, signature.lower()):
            raise ApiError("bad_signature")
        # the key's rate (a second's worth at once), counted by every store process together with Redis
        rate = key.rate_per_second
        if await self.shared.reserve(f"api:{key.key_id}:{rate}", rate, max(1, int(rate)), 0.0) is None:
            raise ApiError("rate_limited", rate=rate)
        # Recorded only for requests that are signed right: a forger cannot use up someone's nonces.
        if await self.desk.replayed(key.key_id, nonce, self.max_skew):
            raise ApiError("replayed_nonce")
        return reseller, bytes(body)

    def _error(self, request: web.Request, code: str, params: dict[str, Any]) -> web.Response:
        lang = "zh_CN" if request.headers.get("Accept-Language", "").lower().startswith("zh") else "en"
        safe = {k: v for k, v in params.items() if isinstance(v, (int, str))}
        body: dict[str, Any] = {"code": code, "message": self.i18n.t(lang, f"api.error.{code}", **safe)}
        if safe:
            body["details"] = safe
        headers = {"Retry-After": "1"} if code == "rate_limited" else None
        return web.json_response({"error": body}, status=ERRORS[code], headers=headers)

    # -- endpoints --------------------------------------------------------------------------------------------
    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def products(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        items = [{"sku": p.sku, "title": p.title.get("en") or p.title.get("*") or next(iter(p.title.values()), ""),
                  "kind": p.kind.value, "price": price, "list_price": p.price, "currency": p.currency,
                  "available": available, "max_qty": MAX_QTY if p.kind.value in ("code", "supplier") else 1}
                 for p, price, available in await self.desk.catalog(reseller)]
        return web.json_response({"products": items})

    async def balance(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        r = await self.desk.get(reseller.id)
        return web.json_response({"balance": r.balance, "credit_limit": r.credit_limit, "available": r.spendable,
                                  "currency": r.currency})

    async def statement(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        given = _number(request, "limit")
        limit = 50 if given is None else given
        before = _number(request, "before")
        if not 1 <= limit <= 500:
            raise ApiError("bad_request", field="limit")
        rows = await self.desk.statement(reseller.id, limit=limit, before_id=before)
        return web.json_response({"entries": [_entry(e) for e in rows],
                                  "next_before": rows[-1].id if len(rows) == limit else None})

    async def create_order(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if not IDEMPOTENCY_RE.fullmatch(key):
            raise ApiError("idempotency_key_required")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            raise ApiError("bad_request", field="body") from None
        if not isinstance(data, dict) or set(data) - {"sku", "qty", "account"}:
            raise ApiError("bad_request", field="body")
        sku, qty, account = data.get("sku"), data.get("qty", 1), data.get("account", "")
        # isprintable(): no control, format (bidi, zero-width), surrogate or unassigned characters; a lone
        # surrogate (JSON "\ud800") cannot even be written to the database.
        if not isinstance(account, str) or len(account) > 64 or not account.isprintable():
            raise ApiError("bad_request", field="account")
        if not isinstance(sku, str) or not 1 <= len(sku) <= 64 or not sku.isprintable():
            raise ApiError("bad_request", field="sku")
        if not isinstance(qty, int) or isinstance(qty, bool):
            raise ApiError("bad_request", field="qty")
        out = await self.desk.order(reseller, sku, qty, key, account)
        return web.json_response({"order": _order(out)}, status=201 if out.created else 200,
                                 headers={"Idempotent-Replayed": "false" if out.created else "true"})

    async def order_by_key(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        key = request.query.get("idempotency_key", "")
        if not IDEMPOTENCY_RE.fullmatch(key):
            raise ApiError("bad_request", field="idempotency_key")
        return web.json_response({"order": _order(await self.desk.order_by_key(reseller, key))})

    async def get_order(self, request: web.Request, reseller: Reseller, body: bytes) -> web.Response:
        oid = request.match_info["order_id"]
        if not re.fullmatch(r"[0-9A-Za-z]{1,24}", oid):
            raise ApiError("not_found", order_id=oid[:24])
        return web.json_response({"order": _order(await self.desk.get_order(reseller, oid.upper()))})


def _number(request: web.Request, name: str) -> int | None:
    """A query parameter that must be a non-negative integer the database can hold (ASCII digits only)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not NUMBER_RE.fullmatch(raw) or int(raw) > MAX_ID:
        raise ApiError("bad_request", field=name)
    return int(raw)


def _order(o: B2BOrder) -> dict[str, Any]:
    out = {"id": o.order.id, "sku": o.product.sku, "qty": o.order.qty, "unit_price": o.order.unit_price,
           "amount": o.order.amount, "currency": o.order.currency, "status": o.order.status.value,
           "created_at": o.order.created_at.isoformat(), "codes": list(o.codes),
           "account": o.order.account or None}
    if o.due is not None:  # paid; the codes are readable from then (GET before it: 409 not_yet_due)
        out.update(status="scheduled", deliver_at=o.due.isoformat())
    return out


def _entry(e: WalletEntry) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
            "order_id": e.order_id, "created_at": e.created_at.isoformat()}


# -- the OpenAPI document -----------------------------------------------------------------------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    statuses: dict[int, list[str]] = {}
    for c in ("missing_auth", "bad_timestamp", "stale_timestamp", "unknown_key", "bad_signature", "replayed_nonce",
              "bad_request", "rate_limited", "body_too_large", "internal", *codes):  # bad_request: a malformed nonce
        statuses.setdefault(ERRORS[c], []).append(c)
    return {str(s): _json(_ref("Error"), "error codes: " + ", ".join(cs)) for s, cs in sorted(statuses.items())}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 of what the handlers above do (tests/test_b2b_api.py checks every response against it)."""
    auth = [{"ApiKey": [], "Timestamp": [], "Nonce": [], "Signature": []}]
    str_int = {"type": "integer"}
    schemas = {
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
            "error": {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                      "properties": {"code": {"type": "string", "enum": sorted(ERRORS)},
                                     "message": {"type": "string"},
                                     "details": {"type": "object"}}}}},
        "Product": {"type": "object", "additionalProperties": False,
                    "required": ["sku", "title", "kind", "price", "list_price", "currency", "available", "max_qty"],
                    "properties": {"sku": {"type": "string"}, "title": {"type": "string"},
                                   "kind": {"type": "string", "enum": ["code", "reusable", "supplier", "topup"],
                                            "description": "supplier: bought upstream when ordered; topup: "
                                                           "recharges the order's account, no codes"},
                                   "price": {**str_int, "description": "your price, minor units"},
                                   "list_price": str_int, "currency": {"type": "string"},
                                   "available": {"type": ["integer", "null"],
                                                 "description": f"in stock (counted up to {MAX_QTY}); null: unlimited"},
                                   "max_qty": str_int}},
        "Order": {"type": "object", "additionalProperties": False,
                  "required": ["id", "sku", "qty", "unit_price", "amount", "currency", "status", "created_at",
                               "codes", "account"],
                  "properties": {"id": {"type": "string"}, "sku": {"type": "string"}, "qty": str_int,
                                 "unit_price": str_int, "amount": str_int, "currency": {"type": "string"},
                                 "status": {"type": "string",
                                            "enum": ["pending", "scheduled", "delivered", "refunding", "refunded"],
                                            "description": "pending: a supplier or top-up product the store is "
                                                           "still buying (GET the order again); scheduled: paid, "
                                                           "the codes are delivered at deliver_at (GET before then "
                                                           "is 409 not_yet_due); refunding/refunded: "
                                                           "it failed and the wallet is credited back"},
                                 "deliver_at": {"type": "string", "format": "date-time",
                                                "description": "scheduled orders: when the codes can be read"},
                                 "created_at": {"type": "string", "format": "date-time"},
                                 "codes": {"type": "array", "items": {"type": "string"},
                                           "description": "empty while pending, once refunded, and for top-ups"},
                                 "account": {"type": ["string", "null"],
                                             "description": "topup: the account recharged"}}},
        "OrderEnvelope": {"type": "object", "required": ["order"], "additionalProperties": False,
                          "properties": {"order": _ref("Order")}},
        "Balance": {"type": "object", "additionalProperties": False,
                    "required": ["balance", "credit_limit", "available", "currency"],
                    "properties": {"balance": str_int, "credit_limit": str_int, "available": str_int,
                                   "currency": {"type": "string"}}},
        "Entry": {"type": "object", "additionalProperties": False,
                  "required": ["id", "kind", "amount", "balance_after", "order_id", "created_at"],
                  "properties": {"id": str_int, "kind": {"type": "string", "enum": ["topup", "debit", "refund"]},
                                 "amount": str_int, "balance_after": str_int,
                                 "order_id": {"type": ["string", "null"]},
                                 "created_at": {"type": "string", "format": "date-time"}}},
        "NewOrder": {"type": "object", "required": ["sku"], "additionalProperties": False,
                     "properties": {"sku": {"type": "string", "minLength": 1, "maxLength": 64},
                                    "qty": {"type": "integer", "minimum": 1, "maximum": MAX_QTY, "default": 1},
                                    "account": {"type": "string", "maxLength": 64,
                                                "description": "topup products only: the phone number / game "
                                                               "UID to recharge, checked against the product's "
                                                               "pattern"}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Card Store B2B API", "version": "1.0.0", "description": (
            "Signed requests: X-Signature = hex(HMAC-SHA256(secret, METHOD + '\\n' + PATH?QUERY + '\\n' + "
            "X-Timestamp + '\\n' + X-Nonce + '\\n' + hex(SHA-256(body)) + '\\n' + Idempotency-Key)). The "
            "Idempotency-Key header is part of what is signed (the empty string when the request has none), so it "
            "cannot be changed or stripped on the way; a client signing without it gets bad_signature on every "
            "request (no compatibility mode). Timestamps within 5 minutes; each nonce once per key. Amounts are "
            "integers in minor units of `currency`.")},
        "servers": [{"url": "/"}],
        "components": {"schemas": schemas, "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            "Timestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp",
                          "description": "Unix seconds"},
            "Nonce": {"type": "apiKey", "in": "header", "name": "X-Nonce",
                      "description": "8-64 characters of A-Z a-z 0-9 _ -, never reused by the key"},
            "Signature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                          "description": "lower-case hex HMAC-SHA256 of METHOD, PATH?QUERY, X-Timestamp, X-Nonce, "
                                         "hex(SHA-256(body)) and Idempotency-Key (empty when none), joined by "
                                         "'\\n'; see info.description"}}},
        "security": auth,
        "paths": {
            f"{PREFIX}/openapi.json": {"get": {"operationId": "openapi", "security": [],
                                               "summary": "this document (unsigned)",
                                               "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
            f"{PREFIX}/products": {"get": {
                "operationId": "listProducts", "summary": "products on sale at your tier's prices",
                "responses": {"200": _json({"type": "object", "required": ["products"], "additionalProperties": False,
                                            "properties": {"products": {"type": "array", "items": _ref("Product")}}},
                                           "the catalogue"), **_errors()}}},
            f"{PREFIX}/balance": {"get": {
                "operationId": "getBalance", "summary": "your wallet",
                "responses": {"200": _json(_ref("Balance"), "balance, credit limit, spendable"), **_errors()}}},
            f"{PREFIX}/statement": {"get": {
                "operationId": "getStatement", "summary": "wallet movements, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                "default": 50}},
                    {"name": "before", "in": "query", "schema": {"type": "integer"},
                     "description": "next page: next_before of the previous page"}],
                "responses": {"200": _json({"type": "object", "required": ["entries", "next_before"],
                                            "additionalProperties": False,
                                            "properties": {"entries": {"type": "array", "items": _ref("Entry")},
                                                           "next_before": {"type": ["integer", "null"]}}},
                                           "a page of the ledger"), **_errors()}}},
            f"{PREFIX}/orders": {"post": {
                "operationId": "createOrder",
                "summary": "buy codes, paid from the wallet; the codes are in the answer (supplier and topup "
                           "products answer pending: GET the order until delivered or refunded)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": True,
                                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"},
                                "description": "the same key returns the same order (200), never a second one; "
                                               "signed: the last line of the string to sign"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewOrder")}}},
                "responses": {"201": _json(_ref("OrderEnvelope"), "made and paid"),
                              "200": _json(_ref("OrderEnvelope"), "made before with this Idempotency-Key"),
                              **_errors("idempotency_key_required", "idempotency_key_reused",
                                        "unknown_sku", "bad_quantity", "kind_not_supported", "product_unavailable",
                                        "sold_out", "insufficient_funds", "account_suspended", "bad_account",
                                        "rule_refused", "risk_refused")}},
                "get": {
                    "operationId": "getOrderByKey",
                    "summary": "the order an Idempotency-Key made (poll a pending order without its id)",
                    "parameters": [{"name": "idempotency_key", "in": "query", "required": True,
                                    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"}}],
                    "responses": {"200": _json(_ref("OrderEnvelope"), "the order"),
                                  **_errors("not_found", "not_yet_due")}}},
            f"{PREFIX}/orders/{{order_id}}": {"get": {
                "operationId": "getOrder", "summary": "one of your orders, with its codes",
                "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("OrderEnvelope"), "the order"),
                              **_errors("not_found", "not_yet_due")}}},
        },
    }
    return doc


def mount_api(server: Any, desk: ResellerDesk, settings: Any, shared: Shared | None = None) -> B2BApi:
    """The B2B API on the store's HTTP server (`run.py` with `server.api: true`); rate limits on `shared`."""
    api = B2BApi(desk, Translator(settings.store.languages, settings.store.default_language),
                 max_skew=settings.server.api_max_skew_seconds, shared=shared)
    server.add_b2b_api(api)
    return api
