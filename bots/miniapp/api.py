"""`/app/api/`: the Mini App's JSON API (read-only: catalogue, search, one product).

Answers are JSON. Errors are `{"error": {"code": <stable code>, ...}}` with the HTTP status of ERRORS; a refused
initData adds `"reason"` (core/webapp_auth.py InitDataRefusal: missing, bad_hash, expired, ...), so the page can
tell "open the shop again" from a bug. Texts are in the buyer's language, from Telegram's `user.language_code`
(zh_CN / en, else the store's default). Prices are in Telegram Stars (`stars`; null when the product has no Stars
price). `available`: codes on sale now (counted up to the low-stock mark + 1), null when not counted (reusable or
bought from a supplier when sold); `in_stock` says whether it can be bought now.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web

from bots.miniapp.hosts import Identity, TelegramIdentity, Unauthorized, Visitor
from core.clock import Clock
from core.errors import StoreError
from core.models import Product, localized
from core.shop import ProductView, Shop, category_key

log = logging.getLogger(__name__)

PREFIX = "/app/api"
MAX_QUERY = 100  # characters of a search
ERRORS = {"unauthorized": 401, "bad_request": 400, "not_found": 404, "method_not_allowed": 405, "internal": 500}
VISITOR_KEY = web.RequestKey("miniapp_visitor", Visitor)
HOST_KEY = web.RequestKey("miniapp_host", Identity)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(code: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, **extra}}, status=ERRORS[code],
                             headers={"Cache-Control": "no-store"})


class MiniAppApi:
    """The routes over the store's Shop, for the hosts given (bots/miniapp/hosts.py): a request is answered for
    the host whose Authorization scheme it carries."""

    def __init__(self, shop: Shop, clock: Clock, hosts: Sequence[Identity]) -> None:
        self.shop = shop
        self.clock = clock
        self.hosts = {h.scheme: h for h in hosts}
        self.sub = web.Application(middlewares=[self._gate])
        self.sub.router.add_get("/catalog", self.catalog)
        self.sub.router.add_get("/search", self.search)
        self.sub.router.add_get("/products/{product_id}", self.product)

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
        try:
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

    def language(self, request: web.Request) -> str:
        return self.shop.match_language(request[VISITOR_KEY].language_hint)

    # -- routes ------------------------------------------------------------------------------------------------
    async def catalog(self, request: web.Request) -> web.Response:
        """`GET /app/api/catalog[?category=<key>]`: the categories and the products on sale (of one category)."""
        lang = self.language(request)
        category = request.query.get("category") or None
        cats = [{"key": key, "name": localized(p.category, lang, self.shop.default_language) or key}
                for key, p in await self.shop.categories()]
        if category is not None and category not in {c["key"] for c in cats}:
            return error("not_found", field="category")
        views = await self.shop.product_views(await self.shop.products(category))
        return web.json_response({"language": lang, "categories": cats,
                                  "products": [self._product(v, lang) for v in views]})

    async def search(self, request: web.Request) -> web.Response:
        """`GET /app/api/search?q=<words>`: products on sale matching every word (any language)."""
        q = request.query.get("q", "").strip()
        if not q or len(q) > MAX_QUERY:
            return error("bad_request", field="q", max_length=MAX_QUERY)
        lang = self.language(request)
        views = await self.shop.product_views(await self.shop.search(q))
        return web.json_response({"language": lang, "query": q, "products": [self._product(v, lang) for v in views]})

    async def product(self, request: web.Request) -> web.Response:
        """`GET /app/api/products/<id>`: one product on sale, with its description."""
        raw = request.match_info["product_id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            return error("not_found")
        try:
            view = await self.shop.product_view(int(raw))
        except StoreError:  # unknown or off sale
            return error("not_found")
        lang = self.language(request)
        return web.json_response({"language": lang, "product": self._product(view, lang, full=True)})

    def _product(self, v: ProductView, lang: str, *, full: bool = False) -> dict[str, Any]:
        p: Product = v.product
        fallback = self.shop.default_language
        out: dict[str, Any] = {
            "id": p.id, "sku": p.sku, "title": localized(p.title, lang, fallback),
            "category": category_key(p), "stars": p.stars, "min_qty": p.min_qty, "max_qty": p.max_qty,
            "available": v.available, "in_stock": v.available is None or v.available > 0, "low": v.low,
        }
        if full:
            out["description"] = localized(p.description, lang, fallback)
        return out


def mount_miniapp(server: Any, app: Any, hosts: Sequence[Identity] = ()) -> MiniAppApi:
    """The Mini App's API on `server` (bots/http.py HttpServer) under /app/api/: Telegram's host when Telegram is
    on, and `hosts` (the WeChat H5 shop's, bots/wechat/h5.py mount_h5)."""
    tg = app.settings.telegram
    own = [TelegramIdentity(tg.token.get_secret_value(), app.clock, timedelta(seconds=tg.webapp.max_age_seconds))
           ] if tg.enabled and tg.webapp.enabled else []
    api = MiniAppApi(app.shop, app.clock, [*own, *hosts])
    server.app.add_subapp(PREFIX, api.sub)
    return api
