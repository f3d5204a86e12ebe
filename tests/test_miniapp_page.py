"""The shop page's serving (bots/miniapp/page.py) over real HTTP: `/app/` is the Telegram page with a strict CSP
that lets only Telegram Web frame it; its assets are versioned, cached for a year, gzip-compressed, and a first
load stays under the issue's 150 KB; the same page for WeChat carries its session in a <meta> and is never framed;
the shell itself carries no words, only the boot strings in every language as inert data."""
from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bots.miniapp.page import ShopPage
from locales import Translator
from tests.test_miniapp_api import open_miniapp

MAX_FIRST_LOAD = 150 * 1024


@asynccontextmanager
async def served(url: str, tmp_path: Path) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with open_miniapp(url, tmp_path) as kit:
        yield kit.base.removesuffix("/api"), kit.http


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/app/static/[^"]+)"', html)


async def test_the_page_is_served_with_a_strict_policy_and_telegram_web_may_frame_it(sqlite_url: str,
                                                                                      tmp_path: Path) -> None:
    async with served(sqlite_url, tmp_path) as (base, http):
        async with http.get(base + "/", headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and r.content_type == "text/html"
            html = await r.text()
            csp = r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert '<html lang="en" data-host="telegram">' in html
        policy = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'"  # no inline script, no CDN
        assert policy["connect-src"] == "'self'" and policy["img-src"] == "'self' data:"
        assert policy["frame-ancestors"] == "'self' https://web.telegram.org"
        assert "<script>" not in html  # no inline script
        assert not re.search(r'(?:src|href)="(?!/app/static/)', html)  # nothing from elsewhere

        async with http.get(base, allow_redirects=False) as r:  # /app -> /app/
            assert (r.status, r.headers["Location"]) == (301, "/app/")


async def test_assets_are_versioned_cached_compressed_and_small(sqlite_url: str, tmp_path: Path) -> None:
    async with served(sqlite_url, tmp_path) as (base, http):
        async with http.get(base + "/", headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            shell = await r.read()
        html = gzip.decompress(shell).decode()
        assets = assets_of(html)
        assert {a.rsplit("/", 1)[1] for a in assets} >= {"app.js", "tg.js", "style.css"}
        version = assets[0].split("/")[3]
        first_load = len(shell)
        origin = base.removesuffix("/app")
        for path in assets:
            assert path.split("/")[3] == version  # one version for the whole bundle
            async with http.get(origin + path, headers={"Accept-Encoding": "gzip, br"}, auto_decompress=False) as r:
                assert r.status == 200, path
                assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert r.headers["Content-Encoding"] == "gzip"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.content_type in ("text/javascript", "text/css"), path
                etag, zipped = r.headers["ETag"], await r.read()
            first_load += len(zipped)
            async with http.get(origin + path, headers={"Accept-Encoding": "identity"}) as r:
                assert "Content-Encoding" not in r.headers
                assert gzip.decompress(zipped) == await r.read()
            async with http.get(origin + path, headers={"If-None-Match": etag}) as r:
                assert r.status == 304
        assert first_load <= MAX_FIRST_LOAD
        async with http.get(origin + "/app/static/000000000000/app.js") as r:  # another version: not this bundle
            assert r.status == 404
        async with http.get(origin + f"/app/static/{version}/nothing.js") as r:
            assert r.status == 404
        async with http.get(origin + f"/app/static/{version}/..%2Fpage.py") as r:
            assert r.status == 404

        # what bench/webapp.py reports as the first load is what a browser downloads
        page = ShopPage(Translator())
        assert page.version == version
        assert page.first_load_bytes() == first_load


def test_the_same_page_for_wechat_carries_its_session_and_is_never_framed() -> None:
    page = ShopPage(Translator())
    html = page.page_html("wechat", {"store-session": 'tok"en<&>'}).decode()
    assert 'data-host="wechat"' in html
    assert '<meta name="store-session" content="tok&quot;en&lt;&amp;&gt;">' in html
    assert "frame-ancestors 'none'" in page.headers("wechat")["Content-Security-Policy"]
    assert page.headers("wechat")["Cache-Control"] == "no-store"
    with pytest.raises(ValueError, match="unknown host"):
        page.page_html("web")


def test_the_shell_has_no_words_only_the_boot_strings_in_every_language() -> None:
    page = ShopPage(Translator())
    html = page.page_html("telegram").decode()
    boot = re.search(r'<script type="application/json" id="boot-strings">(.*?)</script>', html, re.S)
    assert boot is not None
    data = json.loads(boot.group(1))
    assert set(data["strings"]) == {"en", "zh_CN"} and data["default"] == "en"
    assert "Telegram" in data["strings"]["en"]["webapp.boot.unauthorized"]
    assert "重新打开" in data["strings"]["zh_CN"]["webapp.boot.unauthorized"]
    assert all(k.startswith("webapp.boot.") for k in data["strings"]["en"])
    words = re.sub(r"<script.*?</script>|<[^>]+>", "", html, flags=re.S)
    assert words.strip() == ""  # a neutral loading state, no text

