"""The WeChat H5 shop: `/h5/` on the store's HTTP server, opened from the Official Account's menu inside WeChat.

The buyer is learnt by OAuth2 `snsapi_base` (silent: no consent screen), then the page talks to the Mini App API
(`/app/api/`, bots/miniapp/) as the `wxh5` host (`WeChatHost`, or `WeChatIdentity` without WeChat Pay;
bots/miniapp/hosts.py) and pays held orders with
WeChat Pay's in-app sheet (JSAPI).

    GET /h5/                    no valid session cookie: 302 to WeChat's authorize page, with a signed,
                                short-lived `state` bound to a cookie of this browser
    GET /h5/?code=..&state=..   back from WeChat: the state checked, the code exchanged for the openid
                                (`sns/oauth2/access_token`), a session cookie set, 302 to /h5/ (the code never
                                stays in the address bar); a bad state or code: a localized error page with
                                "try again", nothing created
    GET /h5/ (session cookie)   the shop page (bots/miniapp/page.py, host "wechat"), its session token in
                                `<meta name="store-session">`

The session token (`Authorization: wxh5 <token>`, and the HttpOnly cookie that lets /h5/ skip the round trip)
is `<openid>.<expires (unix seconds)>.<hex HMAC-SHA256>`: stateless, nothing stored. The HMAC key is derived
from the vault's fingerprint key (core/vault.py; never rotated) for this purpose only, so every store process
checks every token, and a token is worthless without the vault's key file. A forged, expired or malformed token
is `Unauthorized` (401 on the API); `wechat.h5.session_hours` bounds a session. The OAuth2 `state` is
`<nonce 16 hex><expires 10 digits><HMAC 32 hex>` (letters and digits only, as WeChat asks), good for 10 minutes,
and its nonce must equal the `wxh5_state` cookie set with the redirect: a sign-in link made for another browser
(login CSRF) or replayed later is refused.

Language: WeChat's `snsapi_base` says nothing about the buyer. The H5 buyer is the chat's customer
(`wechat:<openid>`), so their `/language` choice (in the chat or on the page) wins; a buyer new to the store gets
Chinese when the store speaks it, as in the chat (`LANGUAGE_HINT`).
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bots.miniapp.hosts import Unauthorized, Visitor
from bots.miniapp.page import ShopPage, shop_page
from bots.wechat import CHANNEL, LANGUAGE_HINT
from bots.wechat.client import CodeRefused, H5OAuth, WeChatApiError
from core.models import Buyer, Order, Product, localized
from core.shop import Shop
from locales import Translator

log = logging.getLogger(__name__)

PATH = "/h5/"
SCHEME = "wxh5"
SESSION_COOKIE = "wxh5"
STATE_COOKIE = "wxh5_state"
META = "store-session"  # the <meta> the page reads its session token from (bots/miniapp/static/api.js)
STATE_TTL = 600  # seconds for the round trip through WeChat's authorize page
OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")  # WeChat openids: 28 characters of [A-Za-z0-9_-]
STATE = re.compile(r"^([0-9a-f]{16})([0-9]{10})([0-9a-f]{32})$")
MAX_TOKEN = 160


def redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})


class Signer:
    """HMAC-SHA256 under a key of its own, derived from a store secret for one purpose."""

    def __init__(self, root: bytes, purpose: bytes) -> None:
        self._key = hmac.new(root, b"wechat-h5:" + purpose, hashlib.sha256).digest()

    def sign(self, text: str, length: int = 64) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:length]

    def check(self, text: str, sig: str, length: int = 64) -> bool:
        return hmac.compare_digest(self.sign(text, length), sig)


class Sessions:
    """The H5 session tokens and the OAuth2 state (see the module's docstring)."""

    def __init__(self, root: Callable[[], bytes], now: Callable[[], float], hours: int) -> None:
        self._session = Signer(root(), b"session")
        self._state = Signer(root(), b"state")
        self.now = now
        self.seconds = hours * 3600

    def issue(self, openid: str) -> str:
        if not OPENID.match(openid):
            raise ValueError("not an openid")
        body = f"{openid}.{int(self.now()) + self.seconds}"
        return f"{body}.{self._session.sign(body)}"

    def openid(self, token: str) -> str:
        """The openid a session token proves, or Unauthorized (missing, malformed, bad_hash, expired)."""
        token = token.strip()
        if not token:
            raise Unauthorized("missing")
        parts = token.split(".")
        if len(token) > MAX_TOKEN or len(parts) != 3 or not OPENID.match(parts[0]) or not parts[1].isdigit() \
                or len(parts[1]) > 12 or not re.fullmatch(r"[0-9a-f]{64}", parts[2]):
            raise Unauthorized("malformed")
        if not self._session.check(f"{parts[0]}.{parts[1]}", parts[2]):
            raise Unauthorized("bad_hash")
        if int(parts[1]) <= self.now():
            raise Unauthorized("expired")
        return parts[0]

    def state(self) -> tuple[str, str]:
        """(state for the authorize URL, the nonce for this browser's cookie)."""
        nonce = secrets.token_hex(8)
        body = f"{nonce}{int(self.now()) + STATE_TTL:010d}"
        return body + self._state.sign(body, 32), nonce

    def state_ok(self, state: str, nonce: str | None) -> bool:
        m = STATE.match(state)
        if m is None or not nonce or not self._state.check(m[1] + m[2], m[3], 32):
            return False
        return hmac.compare_digest(m[1], nonce) and int(m[2]) > self.now()


class WeChatIdentity:
    """The WeChat H5 shop as a Mini App host that can identify but not take payments (WeChat Pay is not configured,
    or its gateway has no JSAPI): the page browses; an order is refused before anything is held."""

    name = CHANNEL
    scheme = SCHEME

    def __init__(self, sessions: Sessions, shop: Shop) -> None:
        self.sessions = sessions
        self.shop = shop
        self.currency: str = shop.currency

    def identify(self, credentials: str) -> Visitor:
        openid = self.sessions.openid(credentials)
        return Visitor(self.name, Buyer(CHANNEL, openid), openid, LANGUAGE_HINT)

    def unit_price(self, product: Product) -> int | None:
        return product.price if product.currency == self.currency else None

    async def language(self, buyer: Buyer) -> str:
        cust = await self.shop.customer(buyer, LANGUAGE_HINT)
        return cust.language or self.shop.default_language


class WeChatHost(WeChatIdentity):
    """The WeChat H5 shop as a Mini App host (bots/miniapp/hosts.py): buyers by H5 session token, prices in the
    store's currency, held orders paid by JSAPI (`gateway.create_jsapi`, WeChat Pay v2 or v3)."""

    def __init__(self, sessions: Sessions, shop: Shop, gateway: Any) -> None:
        super().__init__(sessions, shop)
        self.gateway = gateway

    async def pay(self, order: Order, product: Product, visitor: Visitor, client_ip: str) -> dict[str, Any]:
        """`{"kind": "wechat_jsapi", "params": <getBrandWCPayRequest's six>}` for the buyer's openid, the title in
        the buyer's language."""
        title = localized(product.title, await self.language(visitor.buyer), self.shop.default_language)
        params = await self.gateway.create_jsapi(order, title, visitor.chat_id, client_ip)
        return {"kind": "wechat_jsapi", "params": params}


class H5Shop:
    """The `/h5/` routes: the OAuth2 round trip, the session cookie, the page."""

    def __init__(self, host: WeChatIdentity, oauth: H5OAuth, i18n: Translator, public_url: str,
                 page: ShopPage) -> None:
        self.host = host
        self.sessions = host.sessions
        self.oauth = oauth
        self.i18n = i18n
        self.url = public_url.rstrip("/") + PATH
        self.cookie_path = (urlsplit(public_url).path.rstrip("/") or "") + PATH
        self.secure = public_url.startswith("https://")
        self.page = page

    def mount(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.handle)
        app.router.add_get(PATH.rstrip("/"), self._slash)

    async def _slash(self, request: web.Request) -> web.Response:
        return redirect(self.url)

    def _lang(self, request: web.Request) -> str:
        accept = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
        return self.host.shop.match_language(accept or LANGUAGE_HINT)

    def _cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=self.cookie_path, httponly=True, secure=self.secure,
                            samesite="Lax")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if "code" in q or "state" in q:
            return await self._back(request, q.get("code", ""), q.get("state", ""))
        token = request.cookies.get(SESSION_COOKIE, "")
        try:
            self.sessions.openid(token)
        except Unauthorized:
            state, nonce = self.sessions.state()
            response = redirect(self.oauth.authorize_url(state))
            self._cookie(response, STATE_COOKIE, nonce, STATE_TTL)
            return response
        return self.page.response(CHANNEL, {META: token}, request=request)

    async def _back(self, request: web.Request, code: str, state: str) -> web.StreamResponse:
        """Back from WeChat's authorize page: a session for the openid the code proves, or an error page."""
        if not self.sessions.state_ok(state, request.cookies.get(STATE_COOKIE)):
            log.warning("wechat h5: sign-in refused (state not issued to this browser, or stale)")
            return self._error(request, "wechat.webshop.error.state", 400)
        if not code or len(code) > 128:
            return self._error(request, "wechat.webshop.error.code", 400)
        try:
            openid = await self.oauth.openid(code)
            token = self.sessions.issue(openid)
        except CodeRefused:
            return self._error(request, "wechat.webshop.error.code", 400)
        except (WeChatApiError, ValueError):
            return self._error(request, "wechat.webshop.error.unavailable", 502)
        response = redirect(self.url)
        self._cookie(response, SESSION_COOKIE, token, self.sessions.seconds)
        response.del_cookie(STATE_COOKIE, path=self.cookie_path)
        return response

    def _error(self, request: web.Request, key: str, status: int) -> web.Response:
        lang = self._lang(request)
        t = self.i18n.t
        body = (f'<!doctype html><html lang="{lang.replace("_", "-")}"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(t(lang, 'wechat.webshop.error.title'))}</title></head><body>"
                f"<h1>{html.escape(t(lang, 'wechat.webshop.error.title'))}</h1>"
                f'<p id="reason">{html.escape(t(lang, key))}</p>'
                f'<p><a id="retry" href="{html.escape(self.url)}">{html.escape(t(lang, "wechat.webshop.error.retry"))}'
                f"</a></p></body></html>")
        response = web.Response(text=body, status=status, content_type="text/html",
                                headers={"Cache-Control": "no-store"})
        response.del_cookie(STATE_COOKIE, path=self.cookie_path)
        return response


def h5_enabled(settings: Any) -> bool:
    """The H5 shop is served: WeChat on, `wechat.h5.enabled` and `server.public_url` set."""
    return bool(settings.wechat.enabled and settings.wechat.h5.enabled and settings.server.public_url)


def mount_h5(server: Any, app: Any, wechat: Any) -> WeChatIdentity:
    """`/h5/` on `server` (bots/http.py HttpServer) for the WeChat runtime `wechat` (its gateway pays); returns the
    host for the Mini App API's hosts."""
    h5 = build_h5(app.settings, app.shop, wechat.gateway)
    h5.mount(server.app)
    server.app.on_cleanup.append(lambda _app: _close(h5))
    return h5.host


async def _close(h5: H5Shop) -> None:
    h5.oauth.close()


def build_h5(settings: Any, shop: Shop, gateway: Any | None) -> H5Shop:
    wx = settings.wechat
    public_url = settings.server.public_url
    sessions = Sessions(lambda: shop.vault.ring.fingerprint_key, lambda: shop.clock.now().timestamp(),
                        wx.h5.session_hours)
    # WeChat Pay on (v2 or v3, its gateway makes JSAPI orders): a host that pays; else one that only browses.
    host = WeChatHost(sessions, shop, gateway) if hasattr(gateway, "create_jsapi") else WeChatIdentity(sessions, shop)
    oauth = H5OAuth(wx.appid, wx.secret.get_secret_value(), public_url.rstrip("/") + PATH, api_base=wx.api_base,
                    oauth_base=wx.h5.oauth_base)
    store = settings.store
    # The shared page (bots/miniapp/page.py), the very one mount_miniapp serves: its assets under /app/static/.
    page = shop_page(tuple(store.languages), store.default_language)
    return H5Shop(host, oauth, Translator(store.languages, store.default_language), public_url, page)


# -- the custom menu's Shop button (`run.py wechat menu`) --------------------------------------------------------
TOP_BUTTONS, SUB_BUTTONS, TOP_NAME_BYTES, SUB_NAME_BYTES = 3, 5, 16, 60  # WeChat's menu limits


class MenuFull(ValueError):
    """The custom menu has no room for the Shop button within WeChat's limits."""


def menu_language(settings: Any) -> str:
    """The menu's one language: Chinese when the store speaks it (WeChat's buyers), else the default."""
    return LANGUAGE_HINT if LANGUAGE_HINT in settings.store.languages else settings.store.default_language


def add_shop_button(menu: dict[str, Any], name: str, url: str) -> tuple[dict[str, Any], str | None]:
    """menu/create's body with a `view` button `name` to `url`: a top-level button while there are fewer than 3,
    else the last sub-menu with fewer than 5; (menu, the sub-menu's name or None for top-level). A menu that
    already opens `url` is left as it is. MenuFull when there is no room."""
    buttons = [dict(b) for b in menu["button"]]
    for b in buttons:
        if b.get("url") == url or any(s.get("url") == url for s in b.get("sub_button", [])):
            return {"button": buttons}, None
    view = {"type": "view", "name": name, "url": url}
    if len(buttons) < TOP_BUTTONS and len(name.encode()) <= TOP_NAME_BYTES:
        return {"button": [*buttons, view]}, None
    for b in reversed(buttons):
        if "sub_button" in b and len(b["sub_button"]) < SUB_BUTTONS and len(name.encode()) <= SUB_NAME_BYTES:
            b["sub_button"] = [*b["sub_button"], view]
            return {"button": buttons}, str(b["name"])
    raise MenuFull(name)
