"""`/app/api/`: the in-app storefront's JSON API (docs/storefront.md): who is asking, the catalogue, search, one
product, and buying: an order held by the one core pipeline (`Shop.reserve`: rules, risk, holds), paid the host's
way (Telegram: a Stars invoice link; bots/miniapp/hosts.py), looked at, its codes revealed (audited), cancelled.

Answers are JSON with `Cache-Control: no-store`. Errors are `{"error": {"code": <stable code>, "message": <the
buyer's language>, ...}}` with the HTTP status of STATUS; a refused credential adds `"reason"` (core/webapp_auth.py
InitDataRefusal: missing, bad_hash, expired, ...) and has no message (whose language?). Texts are in the buyer's
language: their stored choice (the chat's /language), else the app's (Telegram's `user.language_code`), else the
store's default. Prices are in the host's currency (Telegram: Stars); a product the host cannot sell (no Stars
price) is shown with `price: null`, `buyable: false` and refused at checkout. The page never sends a price: an order
request is exactly `{"product_id", "qty"}` (+ `"challenge"` answering a risk challenge, + `"account"` for a top-up
product: the account the supplier recharges); anything else is 400 and nothing is held.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web

from bots.miniapp.hosts import Identity, TelegramHost, TelegramIdentity, Unauthorized, Visitor
from bots.miniapp.images import mount_images
from bots.miniapp.page import mount_page
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.flash_sales import FlashSale, open_sales, stars_of
from core.images import image_url
from core.logcontext import log_context
from core.models import Kind, Order, OrderStatus, Product, localized
from core.shop import ProductView, Shop, category_key
from handlers import errors
from locales import Translator

log = logging.getLogger(__name__)

PREFIX = "/app/api"
MAX_QUERY = 100  # characters of a search
MAX_BODY = 2048  # bytes of an order request (a few small fields)
MAX_QTY = 1_000_000  # beyond any product's max_qty: a bigger number is a malformed request, not a quantity
MAX_ANSWER = 16  # characters of a challenge's answer or ...
MAX_TOKEN = 128  # ... token
ORDER_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
MAX_ACCOUNT = 128  # characters of a top-up's account as typed (the product's pattern decides what fits)
ORDER_FIELDS = frozenset({"product_id", "qty", "challenge", "account", "coupon"})
MAX_COUPON = 64  # characters of a coupon code as typed (core/coupons.py decides what it is worth)
# A top-up pattern of digits only (`^1[3-9]\d{9}$`): the page asks for a number pad (inputmode "tel")
DIGIT_PATTERN = re.compile(r"(?:\\d|\[[0-9-]+\]|\{\d+(?:,\d*)?\}|[0-9^$()|?+*])+")
STRINGS_PREFIX = "webapp."  # the catalogue keys `GET /app/api/me` hands the page (locales/*/webapp.po)
REVEAL_CHAT = "miniapp"  # the reveal's audit entry says it was the Mini App: detail.chat = "miniapp:<chat id>"

# The HTTP status of each error code the API answers (refusals of the core keep their own code).
STATUS = {
    "unauthorized": 401, "bad_request": 400, "not_found": 404, "method_not_allowed": 405, "internal": 500,
    "pay_unavailable": 502, "challenge_failed": 403, "unavailable": 503,
    ErrorCode.SOLD_OUT: 409, ErrorCode.NOT_FOUND: 404, ErrorCode.PRODUCT_UNAVAILABLE: 409,
    ErrorCode.KIND_NOT_SUPPORTED: 422, ErrorCode.BAD_QUANTITY: 422, ErrorCode.HOLD_LIMIT: 429,
    ErrorCode.ORDER_NOT_PAYABLE: 409, ErrorCode.PROVIDER_DISABLED: 409, ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNKNOWN_SKU: 404, ErrorCode.BAD_ACCOUNT: 422, ErrorCode.RULE_REFUSED: 422,
    ErrorCode.RISK_REFUSED: 403, ErrorCode.CHALLENGE_REQUIRED: 403, ErrorCode.UNDER_REVIEW: 403,
    ErrorCode.NOT_YET_DUE: 409, ErrorCode.COUPON_UNKNOWN: 422, ErrorCode.COUPON_EXPIRED: 422,
    ErrorCode.COUPON_NOT_STARTED: 422, ErrorCode.COUPON_EXHAUSTED: 409, ErrorCode.COUPON_PER_BUYER: 422,
    ErrorCode.COUPON_SCOPE: 422, ErrorCode.COUPON_MIN_SPEND: 422, ErrorCode.COUPON_NO_STACKING: 422,
}
VISITOR_KEY = web.RequestKey("miniapp_visitor", Visitor)
HOST_KEY = web.RequestKey("miniapp_host", Identity)
LANG_KEY = web.RequestKey("miniapp_language", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(code: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, **extra}}, status=STATUS.get(code, 400),
                             headers={"Cache-Control": "no-store"})


class BadRequest(Exception):
    """A malformed order request: 400 and nothing held. `field` names what was wrong."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class MiniAppApi:
    """The routes over the store's Shop, for the hosts given (bots/miniapp/hosts.py): a request is answered for
    the host whose Authorization scheme it carries. Buying needs a host that can pay (`Host.pay`); an identity
    alone (no Telegram bot running) answers the orders routes with 503."""

    def __init__(self, shop: Shop, clock: Clock, hosts: Sequence[Identity], i18n: Translator,
                 shop_name: str = "") -> None:
        self.shop = shop
        self.clock = clock
        self.i18n = i18n
        self.shop_name = shop_name
        self.hosts = {h.scheme: h for h in hosts}
        self.sub = web.Application(middlewares=[self._gate])
        self.sub.router.add_get("/me", self.me)
        self.sub.router.add_get("/catalog", self.catalog)
        self.sub.router.add_get("/search", self.search)
        self.sub.router.add_get("/products/{product_id}", self.product)
        self.sub.router.add_post("/orders", self.place)
        self.sub.router.add_get("/orders/{order_id}", self.order)
        self.sub.router.add_post("/orders/{order_id}/pay", self.pay_again)
        self.sub.router.add_post("/orders/{order_id}/reveal", self.reveal)
        self.sub.router.add_post("/orders/{order_id}/cancel", self.cancel)

    # -- the gate: the host's credentials first, then the route ---------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, data = request.headers.get("Authorization", "").partition(" ")
        host = self.hosts.get(scheme.lower())
        try:
            if host is None:
                raise Unauthorized("missing")
            visitor = host.identify(data)
        except Unauthorized as refused:
            return error("unauthorized", reason=refused.reason)
        request[HOST_KEY] = host
        request[VISITOR_KEY] = visitor
        channel = visitor.buyer.channel  # telegram (the Mini App) or wechat (the H5 shop)
        self.shop.metrics.count("updates", channel=channel, via="app_api")
        try:
            with log_context(channel=channel, order_id=None):
                response = await handler(request)
        except web.HTTPNotFound:
            return error("not_found")
        except web.HTTPMethodNotAllowed:
            return error("method_not_allowed")
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - never a traceback to the page
            log.error("Mini App %s %s failed: %s", request.method, request.path, type(exc).__name__)
            return error("internal")
        response.headers["Cache-Control"] = "no-store"  # per buyer (language), behind Authorization
        return response

    async def language(self, request: web.Request) -> str:
        """The buyer's language: their stored choice (the chat's /language), else the app's."""
        lang = request.get(LANG_KEY)
        if lang is None:  # remembered by the shop: no database round trip on every request (Shop.language)
            visitor = request[VISITOR_KEY]
            lang = request[LANG_KEY] = await self.shop.language(visitor.buyer, visitor.language_hint)
        return lang

    def refused(self, exc: StoreError, lang: str, **extra: Any) -> web.Response:
        """A refusal of the core in the words the chat shows (handlers/errors.py), with its stable code."""
        code = exc.code
        if code is ErrorCode.NOT_YOUR_ORDER:  # another buyer's order is not there, as far as this one knows
            code = ErrorCode.NOT_FOUND
            exc = StoreError(ErrorCode.NOT_FOUND)
        body: dict[str, Any] = {"code": code.value, "message": errors.text(self.i18n, lang, exc), **extra}
        if code is ErrorCode.RULE_REFUSED and exc.params.get("rule"):
            body["rule"] = exc.params["rule"]
        return web.json_response({"error": body}, status=STATUS.get(code, 400))

    # -- who is asking ---------------------------------------------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        """`GET /app/api/me`: what the page needs to draw itself: the host, the buyer's language and the texts."""
        host = request[HOST_KEY]
        lang = await self.language(request)
        keys = [k for k in self.i18n.catalogs.get(self.i18n.default, {}) if k.startswith(STRINGS_PREFIX)]
        return web.json_response({"host": host.name, "language": lang, "currency": host.currency,
                                  "shop": self.shop_name, "strings": {k: self.i18n.t(lang, k) for k in keys}})

    # -- the catalogue ---------------------------------------------------------------------------------------------
    async def catalog(self, request: web.Request) -> web.Response:
        """`GET /app/api/catalog[?category=<key>]`: the categories and the products on sale (of one category)."""
        lang = await self.language(request)
        category = request.query.get("category") or None
        cats = [{"key": key, "name": localized(p.category, lang, self.shop.default_language) or key}
                for key, p in await self.shop.categories()]
        if category is not None and category not in {c["key"] for c in cats}:
            return error("not_found", field="category")
        views = await self.shop.product_views(await self.shop.products(category))
        return web.json_response({"language": lang, "categories": cats,
                                  "products": await self._products(request[HOST_KEY], views, lang)})

    async def search(self, request: web.Request) -> web.Response:
        """`GET /app/api/search?q=<words>`: products on sale matching every word (any language)."""
        q = request.query.get("q", "").strip()
        if not q or len(q) > MAX_QUERY:
            return error("bad_request", field="q", max_length=MAX_QUERY)
        lang = await self.language(request)
        views = await self.shop.product_views(await self.shop.search(q))
        return web.json_response({"language": lang, "query": q,
                                  "products": await self._products(request[HOST_KEY], views, lang)})

    async def product(self, request: web.Request) -> web.Response:
        """`GET /app/api/products/<id>`: one product on sale, with its description."""
        raw = request.match_info["product_id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            return error("not_found")
        try:
            view = await self.shop.product_view(int(raw))
        except StoreError:  # unknown or off sale
            return error("not_found")
        lang = await self.language(request)
        [product] = await self._products(request[HOST_KEY], [view], lang, full=True)
        return web.json_response({"language": lang, "product": product})

    def _money(self, amount: int | None, currency: str, lang: str) -> dict[str, Any] | None:
        if amount is None:
            return None
        return {"amount": amount, "currency": currency, "text": self.i18n.money(amount, currency, lang)}

    async def _products(self, host: Identity, views: Sequence[ProductView], lang: str, *, full: bool = False
                        ) -> list[dict[str, Any]]:
        """Products as the page shows them, each with its flash sale (live or next) if it has one."""
        sales = await open_sales(self.shop.uow, [v.product.id for v in views], self.clock.now()) if views else {}
        return [self._product(host, v, lang, full=full, sale=sales.get(v.product.id)) for v in views]

    def _flash(self, host: Identity, p: Product, sale: FlashSale, lang: str) -> dict[str, Any]:
        """A flash sale as the page shows it: the price in this host's currency, units left, the window (the page
        counts down to the start, or to the end). The server decides the price of an order again."""
        price = stars_of(sale, p) if host.currency == "XTR" else sale.price
        state = sale.state(self.clock.now())
        return {"state": "sold_out" if state == "live" and not sale.left else state, "left": sale.left,
                "units": sale.units, "per_buyer": sale.per_buyer, "price": self._money(price, host.currency, lang),
                "starts_at": sale.starts_at.isoformat(), "ends_at": sale.closes_at.isoformat()}

    def _product(self, host: Identity, v: ProductView, lang: str, *, full: bool = False,
                 sale: FlashSale | None = None) -> dict[str, Any]:
        p: Product = v.product
        fallback = self.shop.default_language
        price = host.unit_price(p)
        one = p.kind is Kind.TOPUP  # a top-up is one recharge an order
        out: dict[str, Any] = {
            "id": p.id, "sku": p.sku, "title": localized(p.title, lang, fallback),
            "category": category_key(p), "stars": p.stars, "min_qty": 1 if one else p.min_qty,
            "max_qty": 1 if one else p.max_qty,
            "available": v.available, "in_stock": v.available is None or v.available > 0, "low": v.low,
            "price": self._money(price, host.currency, lang), "buyable": price is not None,
            "image": image_url(p.image), "account": self._account(p, lang),
        }
        if full:
            out["description"] = localized(p.description, lang, fallback)
        if sale is not None and price is not None:
            out["flash"] = flash = self._flash(host, p, sale, lang)
            if flash["state"] == "live":  # the price an order gets now (up to the buyer's own limit)
                out["list_price"], out["price"] = out["price"], flash["price"]
        return out

    def _account(self, p: Product, lang: str) -> dict[str, Any] | None:
        """What the page asks for a top-up product (null for other kinds): the chat's prompt as the hint, the
        product's pattern for the page's own early check (the server decides anyway), the keyboard to show."""
        if p.kind is not Kind.TOPUP:
            return None
        offer = self.shop.supply.offer_for(p)
        pattern = offer.account_pattern if offer is not None else ""
        return {"required": True, "hint": self.i18n.t(lang, "topup.ask.body"), "pattern": pattern or None,
                "inputmode": "tel" if pattern and DIGIT_PATTERN.fullmatch(pattern) else "text",
                "max_length": MAX_ACCOUNT}

    # -- orders ----------------------------------------------------------------------------------------------------
    def _order(self, host: Identity, order: Order, product: Product | None, lang: str) -> dict[str, Any]:
        title = localized(product.title, lang, self.shop.default_language) if product is not None else ""
        amount = order.price_in(host.currency)
        return {"id": order.id, "status": order.status.value, "product_id": order.product_id, "title": title,
                "qty": order.qty, "account": order.account or None,
                "discount": self._money(order.discount, order.currency, lang) if order.discount else None,
                "amount": self._money(amount, host.currency, lang) or self._money(order.amount, order.currency,
                                                                                   lang),
                "expires_at": order.expires_at.isoformat()}

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        """The order request: at most MAX_BODY bytes of JSON, exactly the fields ORDER_FIELDS allows."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadRequest("body")
        raw = b""
        while len(raw) <= MAX_BODY:
            chunk = await request.content.read(MAX_BODY + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest("body")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body") from None
        if not isinstance(body, dict):
            raise BadRequest("body")
        extra = sorted(set(body) - ORDER_FIELDS)
        if extra:
            raise BadRequest(extra[0])
        for name in ("product_id", "qty"):
            value = body.get(name)
            if type(value) is not int or not 0 <= value <= (MAX_QTY if name == "qty" else 2 ** 62):
                raise BadRequest(name)
        if "challenge" in body:
            ch = body["challenge"]
            if (not isinstance(ch, dict) or set(ch) != {"token", "answer"} or not isinstance(ch["token"], str)
                    or not isinstance(ch["answer"], str) or not 0 < len(ch["token"]) <= MAX_TOKEN
                    or not 0 < len(ch["answer"]) <= MAX_ANSWER):
                raise BadRequest("challenge")
        if "account" in body and (not isinstance(body["account"], str) or len(body["account"]) > MAX_ACCOUNT):
            raise BadRequest("account")
        if "coupon" in body and (not isinstance(body["coupon"], str) or len(body["coupon"]) > MAX_COUPON):
            raise BadRequest("coupon")
        return body

    async def place(self, request: web.Request) -> web.Response:
        """`POST /app/api/orders` `{"product_id", "qty"[, "challenge": {"token", "answer"}][, "account"]
        [, "coupon"]}`: the order held by Shop.reserve and how to pay it: `201 {"order", "pay"}`; a refusal holds
        nothing. A top-up product takes its account (one unit: one recharge), which Shop.reserve checks (422
        bad_account); an account for any other kind is a malformed request (400). A coupon code (core/coupons.py)
        prices the order in the reserve; a bad one is refused in words (`coupon_*`), nothing held."""
        host = request[HOST_KEY]
        visitor = request[VISITOR_KEY]
        lang = await self.language(request)
        try:
            body = await self._body(request)
        except BadRequest as bad:
            return error("bad_request", field=bad.field, message=self.i18n.t(lang, "miniapp.error.bad_request"))
        pay_with: Callable[..., Awaitable[dict[str, Any]]] | None = getattr(host, "pay", None)
        if pay_with is None:  # a host that can only identify (no bot to issue invoices)
            return error("unavailable", message=self.i18n.t(lang, "miniapp.error.pay_unavailable"))
        pid, qty = body["product_id"], body["qty"]
        product = await self.shop.product(pid)
        if product is None or not product.active:
            return self.refused(StoreError(ErrorCode.NOT_FOUND, product_id=pid), lang)
        if host.unit_price(product) is None:  # e.g. no Stars price: nothing is held for what cannot be paid here
            return self.refused(StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=product.sku), lang)
        topup = product.kind is Kind.TOPUP
        if "account" in body and not topup:
            return error("bad_request", field="account", message=self.i18n.t(lang, "miniapp.error.no_account"))
        if topup and qty != 1:  # one recharge an order, as in the chat and the B2B API
            return self.refused(StoreError(ErrorCode.BAD_QUANTITY, min=1, max=1), lang)
        challenge = body.get("challenge")
        if challenge is not None and not await self.shop.pass_challenge(visitor.buyer, challenge["token"],
                                                                         challenge["answer"]):
            return error("challenge_failed", message=self.i18n.t(lang, "risk.challenge.failed"))
        try:
            coupon = body.get("coupon", "").strip()
            order = await self.shop.reserve(visitor.buyer, pid, qty, lang, chat_id=visitor.chat_id,
                                            account=body.get("account", ""),
                                            promo={"coupon": coupon} if coupon else None)
        except StoreError as exc:
            if exc.code is ErrorCode.CHALLENGE_REQUIRED:
                p = exc.params
                return self.refused(exc, lang, challenge={
                    "token": str(p.get("token", "")), "question": str(p.get("question", "")),
                    "options": [str(o) for o in p.get("options", [])], "minutes": p.get("minutes")})
            return self.refused(exc, lang)
        try:
            pay = await pay_with(order, product, visitor, request.remote or "")
        except Exception as exc:  # noqa: BLE001 - the platform refused or is unreachable: let the hold go
            log.warning("Mini App order %s: payment could not be started (%s); its hold is released", order.id,
                        type(exc).__name__)
            await self.shop.cancel(order.id, visitor.buyer)
            return error("pay_unavailable", message=self.i18n.t(lang, "miniapp.error.pay_unavailable"))
        return web.json_response({"order": self._order(host, order, product, lang), "pay": pay}, status=201)

    @staticmethod
    def _order_id(request: web.Request) -> str:
        """The order id of the path; a malformed one is an unknown order (NOT_FOUND)."""
        raw = request.match_info["order_id"]
        if not ORDER_ID.fullmatch(raw):
            raise StoreError(ErrorCode.NOT_FOUND)
        return raw

    async def order(self, request: web.Request) -> web.Response:
        """`GET /app/api/orders/<id>`: one of the buyer's own orders (404 for anyone else's)."""
        lang = await self.language(request)
        try:
            order, product = await self.shop.order_for(self._order_id(request), request[VISITOR_KEY].buyer)
        except StoreError as exc:
            return self.refused(exc, lang)
        return web.json_response({"order": self._order(request[HOST_KEY], order, product, lang)})

    async def pay_again(self, request: web.Request) -> web.Response:
        """`POST /app/api/orders/<id>/pay`: how to pay the buyer's own held order again (the page was closed
        before paying, or a merchant approved an order held for review): `{"order", "pay"}`; 409 when not held."""
        host = request[HOST_KEY]
        visitor = request[VISITOR_KEY]
        lang = await self.language(request)
        pay_with: Callable[..., Awaitable[dict[str, Any]]] | None = getattr(host, "pay", None)
        if pay_with is None:
            return error("unavailable", message=self.i18n.t(lang, "miniapp.error.pay_unavailable"))
        try:
            order, product = await self.shop.order_for(self._order_id(request), visitor.buyer)
        except StoreError as exc:
            return self.refused(exc, lang)
        if order.status is not OrderStatus.HELD or order.expires_at <= self.clock.now():
            return self.refused(StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value), lang)
        try:
            pay = await pay_with(order, product, visitor, request.remote or "")
        except Exception as exc:  # noqa: BLE001 - the platform refused or is unreachable; the hold stays
            log.warning("Mini App order %s: payment could not be started (%s)", order.id, type(exc).__name__)
            return error("pay_unavailable", message=self.i18n.t(lang, "miniapp.error.pay_retry"))
        return web.json_response({"order": self._order(host, order, product, lang), "pay": pay})

    async def reveal(self, request: web.Request) -> web.Response:
        """`POST /app/api/orders/<id>/reveal`: a delivered order's codes, after this request's fresh credentials;
        audited as a reveal (detail.chat "miniapp:<chat id>") and limited like the chat's (Shop.reveal)."""
        lang = await self.language(request)
        visitor = request[VISITOR_KEY]
        try:
            order, product, codes = await self.shop.reveal(self._order_id(request), visitor.buyer,
                                                           chat=f"{REVEAL_CHAT}:{visitor.chat_id}")
        except StoreError as exc:
            return self.refused(exc, lang)
        return web.json_response({"order": self._order(request[HOST_KEY], order, product, lang), "codes": codes})

    async def cancel(self, request: web.Request) -> web.Response:
        """`POST /app/api/orders/<id>/cancel`: the buyer's held order cancelled, its stock released at once."""
        lang = await self.language(request)
        try:
            order = await self.shop.cancel(self._order_id(request), request[VISITOR_KEY].buyer)
        except StoreError as exc:
            return self.refused(exc, lang)
        return web.json_response({"order": self._order(request[HOST_KEY], order,
                                                       await self.shop.product(order.product_id), lang)})


def mount_miniapp(server: Any, app: Any, telegram: Any = None, *, hosts: Sequence[Identity] = ()) -> MiniAppApi:
    """The in-app storefront's API on `server` (bots/http.py HttpServer) under /app/api/. `telegram`: the running
    Telegram runtime (app.add_telegram()), whose bot issues the invoice links; without it the page can browse
    but not buy. `hosts`: more hosts (the WeChat H5 shop's, bots/wechat/h5.py mount_h5); Telegram's is there
    when Telegram and its Mini App are on."""
    mount_images(server, app)  # /app/img/: public pictures (bots/miniapp/images.py)
    settings = app.settings
    tg = settings.telegram
    i18n = Translator(settings.store.languages, settings.store.default_language)
    token, max_age = tg.token.get_secret_value(), timedelta(seconds=tg.webapp.max_age_seconds)
    host: Identity | None
    if telegram is not None:
        host = TelegramHost(token, app.clock, max_age, telegram.frontend.port, i18n, settings.store.default_language)
    else:
        host = TelegramIdentity(token, app.clock, max_age) if tg.enabled and tg.webapp.enabled else None
    api = MiniAppApi(app.shop, app.clock, [*([host] if host else []), *hosts], i18n, settings.store.name)
    server.app.add_subapp(PREFIX, api.sub)
    mount_page(server, app)  # the page itself: /app/ and /app/static/ (bots/miniapp/page.py)
    return api
