"""The shop page both hosts share (bots/miniapp/static/): Telegram's Mini App at `/app/`, WeChat's H5 shop at `/h5/`.

    page = mount_page(server, app)                    # GET /app/ and GET /app/static/<version>/<file>
    page.response("wechat", {"store-session": token}) # the same page for another host (bots/wechat/h5.py)

The page is plain ES modules, a stylesheet and one HTML shell; no build step. At start every file is read once,
gzip-compressed once, and the whole bundle gets one *version*: the first 12 hex digits of a SHA-256 over every
file's name and bytes. Assets are served under `/app/static/<version>/<file>` with `Cache-Control: public,
max-age=31536000, immutable` (a new release is a new version, so a browser never keeps a stale module; modules
import each other by relative names, which stay inside the version's folder). Another version is 404.

The shell (`page_html(host, meta)`) carries no words: a neutral loading state, then the page draws itself in the
buyer's language from `GET /app/api/me` (`strings`: every `webapp.*` key of locales/*/LC_MESSAGES/webapp.po). The
few words needed before /me answers — or when it cannot (forged or stale initData) — are the `webapp.boot.*`
keys in every language, carried as inert JSON (`<script type="application/json">`, never run) for the page to
pick by the app's language.

Headers: a strict Content-Security-Policy (everything from the store itself: no inline script, no CDN, images
only from the store) and `X-Content-Type-Options: nosniff`. Telegram Web (web.telegram.org) shows a Mini App in an
iframe, so the Telegram page allows exactly that ancestor (`frame-ancestors 'self' https://web.telegram.org`;
the mobile and desktop apps use a webview, not a frame); the WeChat page is never framed (`frame-ancestors
'none'`).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import html
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from locales import Translator

STATIC = Path(__file__).parent / "static"
PAGE_PATH = "/app/"
STATIC_PREFIX = "/app/static"
HOSTS = ("telegram", "wechat")
FRAME_ANCESTORS = {"telegram": "'self' https://web.telegram.org", "wechat": "'none'"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")
LONG_CACHE = "public, max-age=31536000, immutable"
BOOT_PREFIX = "webapp.boot."
SLOT = re.compile(r"\{(host|meta|static|boot)\}")  # the shell's slots (static/index.html)
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=9, mtime=0)  # mtime 0: the same bytes on every start


def _asset(name: str, body: bytes) -> Asset:
    kind = TYPES.get(Path(name).suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Asset(body, _gzip(body), kind, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


class ShopPage:
    """The page's files, read and compressed once; answers for the page and its assets."""

    def __init__(self, translator: Any, static: Path = STATIC) -> None:
        files = {p.name: p.read_bytes() for p in sorted(static.iterdir()) if p.is_file()}
        self._shell = files.pop("index.html").decode()
        digest = hashlib.sha256()
        for name, body in files.items():
            digest.update(name.encode() + b"\0" + body + b"\0")
        digest.update(self._shell.encode())
        self.version = digest.hexdigest()[:12]
        self.assets = {name: _asset(name, body) for name, body in files.items()}
        boot = {lang: {k: v for k, v in sorted(cat.items()) if k.startswith(BOOT_PREFIX)}
                for lang, cat in translator.catalogs.items()}
        # no "<" at all: the carrying <script> element cannot be closed early (its text is never HTML-decoded)
        self._boot = json.dumps({"default": translator.default, "strings": boot},
                                ensure_ascii=False).replace("<", "\\u003c")

    # -- the page ----------------------------------------------------------------------------------------------
    def page_html(self, host: str, meta: dict[str, str] | None = None) -> bytes:
        """The shell for `host` ("telegram" | "wechat"): `<html data-host=...>`, one `<meta name content>` per item
        of `meta` (e.g. WeChat's `{"store-session": <the H5 session token>}`, which the page sends as
        `Authorization: wxh5 <token>`), the stylesheet and the page's module under this version."""
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}: one of {HOSTS}")
        metas = "".join(f'<meta name="{html.escape(k)}" content="{html.escape(v)}">\n'
                        for k, v in (meta or {}).items())
        fill = {"host": host, "meta": metas, "static": f"{STATIC_PREFIX}/{self.version}",
                "boot": self._boot}
        return SLOT.sub(lambda m: fill[m.group(1)], self._shell).encode()  # one pass: a value is never re-read

    def headers(self, host: str) -> dict[str, str]:
        """The page's security headers for `host`."""
        return {"Content-Security-Policy": CSP.format(ancestors=FRAME_ANCESTORS[host]),
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store"}  # small, and a WeChat page carries its session token

    def response(self, host: str, meta: dict[str, str] | None = None, *,
                 request: web.Request | None = None) -> web.Response:
        """The page for `host` as an aiohttp answer, with its headers (gzip when the request accepts it)."""
        body = self.page_html(host, meta)
        headers = self.headers(host)
        if request is not None and _accepts_gzip(request):
            body = _gzip(body)
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return web.Response(body=body, headers=headers, content_type="text/html", charset="utf-8")

    def first_load_bytes(self) -> int:
        """What a first visit downloads, gzip-compressed: the shell and every script and stylesheet (bench/webapp.py
        reports it as first_load_kb; the issue's limit is 150 KB). Product images are not counted."""
        shell = len(_gzip(self.page_html("telegram")))
        return shell + sum(len(a.gzipped) for n, a in self.assets.items() if n.endswith((".js", ".css")))

    # -- aiohttp handlers --------------------------------------------------------------------------------------
    async def serve_page(self, request: web.Request) -> web.Response:
        return self.response("telegram", request=request)

    async def serve_asset(self, request: web.Request) -> web.Response:
        asset = self.assets.get(request.match_info["name"])
        if request.match_info["version"] != self.version or asset is None:
            return web.Response(status=404, text="not found", headers={"X-Content-Type-Options": "nosniff"})
        headers = {"Cache-Control": LONG_CACHE, "ETag": asset.etag, "X-Content-Type-Options": "nosniff",
                   "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        body = asset.body
        if _accepts_gzip(request):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers, content_type=asset.content_type)


def _accepts_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def mount_page(server: Any, app: Any) -> ShopPage:
    """`GET /app/` (the Telegram page) and `GET /app/static/<version>/<file>` on `server` (bots/http.py HttpServer)
    for `app` (app/bootstrap.py App: its store's languages)."""
    store = app.settings.store
    page = shop_page(tuple(store.languages), store.default_language)

    async def slash(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(PAGE_PATH)

    server.app.router.add_get(PAGE_PATH.rstrip("/"), slash)
    server.app.router.add_get(PAGE_PATH, page.serve_page)
    server.app.router.add_get(STATIC_PREFIX + "/{version}/{name}", page.serve_asset)
    return page


@functools.cache
def shop_page(languages: tuple[str, ...], default: str) -> ShopPage:
    """The page for a store's languages, read and compressed once per process: the Mini App (mount_page) and the
    WeChat H5 shop (bots/wechat/h5.py) serve the same one."""
    return ShopPage(Translator(languages, default, rooms=("webapp",)))


def first_load_bytes() -> int:
    """The page's compressed first load in bytes (bench/webapp.py's first_load_kb), with the shipped catalogues."""
    return shop_page(("en", "zh_CN"), "en").first_load_bytes()
