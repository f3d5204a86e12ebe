"""The WeChat H5 shop's sign-in (bots/wechat/h5.py) over real HTTP: the store's server, the fake WeChat API's
OAuth2 page and code exchange (tests/fake_wechat_api.py), the Mini App API answering `wxh5` session tokens.
A buyer who opens /h5/ is sent through WeChat's authorize page and comes back signed in as the chat's customer;
a bad, used or expired code, or a state this browser was not given, gets an error page and no session; a forged or
expired session token is 401 on the API."""
from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from app import App
from bots.http import HttpServer
from bots.miniapp import mount_miniapp
from bots.wechat.h5 import STATE_COOKIE, Sessions, mount_h5
from core.clock import FakeClock
from core.models import Buyer
from core.supply import import_codes
from tests.dbtemplate import from_template
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer
from tests.fake_wechat_pay import FakeWeChatPay, make_cert
from tests.helpers import free_port, start_store, stop_store, write_config
from tests.test_wechat_pay_v3 import APIV3_KEY, v3_pay_settings
from tests.wechat_harness import AES_KEY, APPID, MCH_ID, PAY_KEY, SECRET, TOKEN, option, store_settings

OPENID = "o-h5-ann-0123456789abcdefgh"


class H5Kit:
    """A store serving /wechat, /h5/ and /app/api/ (the WeChat host) on a known port, and a browser-like client
    (cookies kept) for it."""

    def __init__(self, api: FakeWeChatAPI, tmp_path: Path, *, pay: dict[str, Any] | None = None,
                 clock: FakeClock | None = None, database: str | None = None) -> None:
        """`pay`: the `wechat.pay` section (v2_pay / v3_pay below); its notify_url is this store's."""
        self.api, self.clock = api, clock
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        wechat: dict[str, Any] = {"aes_key": AES_KEY, "h5": {"oauth_base": api.base}}
        if pay is not None:
            wechat["pay"] = {**pay, "notify_url": f"{self.url}/wechat/pay/notify"}
        self.settings = store_settings(api, tmp_path, wechat=wechat, database=database, extra={
            "server": {"host": "127.0.0.1", "port": self.port, "public_url": self.url}})

    async def __aenter__(self) -> H5Kit:
        from_template(self.settings.database_url_resolved())
        self.app = await App.open(self.settings, clock=self.clock)
        self.server = HttpServer("127.0.0.1", self.port)
        self.runtime = self.app.add_wechat(self.server)
        self.host = mount_h5(self.server, self.app, self.runtime)
        mount_miniapp(self.server, self.app, hosts=[self.host])
        await self.app.shop.start()
        await self.runtime.start()
        await self.server.start()
        self.http = self.browser()
        self.wx = WeChatServer(self.url + "/wechat", TOKEN, APPID, AES_KEY)
        await self.wx.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.wx.__aexit__()
            await self.http.close()
            await self.server.stop()
            await self.runtime.stop()
        finally:
            await self.app.close()

    @staticmethod
    def browser(language: str = "en-US,en;q=0.9") -> aiohttp.ClientSession:
        """A browser's cookie jar (cookies of 127.0.0.1 kept) and language."""
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Accept-Language": language})

    async def open_shop(self, http: aiohttp.ClientSession | None = None) -> tuple[int, str]:
        """The buyer opens /h5/ and follows every redirect, as WeChat's browser does: (status, page)."""
        async with (http or self.http).get(self.url + "/h5/") as r:
            return r.status, await r.text()

    async def sign_in_link(self, http: aiohttp.ClientSession | None = None) -> str:
        """/h5/ -> WeChat's authorize page -> the link back to the store (with code and state), not yet opened."""
        http = http or self.http
        async with http.get(self.url + "/h5/", allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            authorize = r.headers["Location"]
        async with http.get(authorize.split("#")[0], allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            return r.headers["Location"]

    async def api_get(self, path: str, token: str, scheme: str = "wxh5") -> tuple[int, Any]:
        async with self.http.get(f"{self.url}/app/api{path}", headers={"Authorization": f"{scheme} {token}"}) as r:
            return r.status, await r.json()

    async def api_post(self, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}/app/api{path}", json=body,
                                  headers={"Authorization": f"wxh5 {token}"}) as r:
            return r.status, await r.json()

    async def stock(self, n: int, sku: str = "GAME") -> list[str]:
        codes = [f"H5-{sku}-{secrets.token_hex(4)}" for _ in range(n)]
        await import_codes(self.app.db.uow, self.app.vault, self.app.clock, sku, [(c + "\n").encode() for c in codes])
        return codes

    async def idle(self) -> None:
        """The outbox and the chat's follow-up messages: everything due has gone out."""
        for _ in range(5):
            await self.runtime.idle()
            await self.app.shop.dispatcher.drain()


def v2_pay(tmp_path: Path, fake: FakeWeChatPay) -> dict[str, Any]:
    cert, key = make_cert(tmp_path, "merchant")
    return {"mch_id": MCH_ID, "api_key": PAY_KEY, "api_base": fake.api_base, "cert": str(cert), "key": str(key)}


def v3_pay(tmp_path: Path, fake: FakeWeChatPay) -> dict[str, Any]:
    return v3_pay_settings(fake, tmp_path)


async def fake_pay(version: int) -> FakeWeChatPay:
    if version == 3:
        return await FakeWeChatPay(APPID, MCH_ID, apiv3_key=APIV3_KEY).start()
    return await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()


def token_of(page: str) -> str:
    m = re.search(r'<meta name="store-session" content="([^"]+)"', page)
    assert m, page[:500]
    return m.group(1)


@asynccontextmanager
async def h5_shop(tmp_path: Path, **kw: Any) -> AsyncIterator[H5Kit]:
    async with FakeWeChatAPI(APPID, SECRET) as api, H5Kit(api, tmp_path, **kw) as kit:
        yield kit


async def test_opening_the_shop_signs_the_buyer_in_as_the_chats_customer(tmp_path: Path) -> None:
    async with h5_shop(tmp_path) as kit:
        kit.api.oauth_openid = OPENID
        # In the chat the buyer chose English.
        reply = await kit.wx.text(OPENID, "语言")
        await kit.wx.text(OPENID, option(reply, "English"))

        status, page = await kit.open_shop()
        assert status == 200, page
        asked = kit.api.authorized[-1]
        assert (asked["appid"], asked["redirect_uri"], asked["response_type"], asked["scope"]) == (
            APPID, kit.url + "/h5/", "code", "snsapi_base")
        assert re.fullmatch(r"[A-Za-z0-9]{1,128}", asked["state"])  # WeChat's rule for state
        token = token_of(page)

        status, body = await kit.api_get("/catalog", token)
        assert status == 200, body
        assert body["language"] == "en"  # the chat's customer: their language choice holds on the page
        assert {p["title"] for p in body["products"]} == {"Game card", "Video VIP"}
        assert kit.host.identify(token).buyer == Buyer("wechat", OPENID)

        # Open again: the session cookie lets the page in without another trip through WeChat.
        trips = len(kit.api.authorized)
        status, again = await kit.open_shop()
        assert (status, len(kit.api.authorized)) == (200, trips)
        assert token_of(again) == token

        # Where the store sends the buyer: WeChat's authorize URL, as WeChat documents it.
        async with kit.browser() as fresh, fresh.get(kit.url + "/h5", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, kit.url + "/h5/")
        async with kit.browser() as fresh, fresh.get(kit.url + "/h5/", allow_redirects=False) as r:
            location = r.headers["Location"]
            assert r.headers["Cache-Control"] == "no-store"
        assert location.startswith(kit.api.base + "/connect/oauth2/authorize?appid=" + APPID + "&redirect_uri=")
        assert location.endswith("#wechat_redirect")


async def test_a_used_expired_or_bad_code_gets_an_error_page_and_no_session(tmp_path: Path) -> None:
    async with h5_shop(tmp_path) as kit:
        kit.api.oauth_openid = OPENID
        back = await kit.sign_in_link()
        async with kit.http.get(back, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, kit.url + "/h5/")  # signed in; the code leaves the URL

        async def refused(link: str, http: aiohttp.ClientSession) -> str:
            async with http.get(link, allow_redirects=False) as r:
                text = await r.text()
                assert r.status == 400, text
                assert "wxh5=" not in r.headers.get("Set-Cookie", "").replace("wxh5=;", ""), r.headers
                assert f'<a id="retry" href="{kit.url}/h5/">Try again</a>' in text
                return text

        # The same link again (a reload, a shared link), with this browser's state cookie: the code is used.
        async with kit.browser() as other:
            state = parse_qs(urlsplit(back).query)["state"][0]
            other.cookie_jar.update_cookies({STATE_COOKIE: state[:16]})
            assert "already used or has expired" in await refused(back, other)
            assert not any(c.key == "wxh5" for c in other.cookie_jar)

        # A code past its 5 minutes.
        async with kit.browser() as late:
            link = await kit.sign_in_link(late)
            kit.api.age_codes(301)
            assert "already used or has expired" in await refused(link, late)
            # A code WeChat never issued; and no code at all.
            link = await kit.sign_in_link(late)
            query = parse_qs(urlsplit(link).query)
            await refused(f"{kit.url}/h5/?code=made-up&state={query['state'][0]}", late)
        refusals = [c for c in kit.api.calls if c.path == "sns/oauth2/access_token"]
        assert len(refusals) == 4  # each was asked of WeChat (one good, three refused) with the app's credentials
        assert all(c.query["appid"] == APPID and c.query["grant_type"] == "authorization_code" for c in refusals)

        # In Chinese for a Chinese WeChat.
        async with kit.browser("zh-CN,zh;q=0.9") as zh:
            link = await kit.sign_in_link(zh)
            kit.api.age_codes(301)
            async with zh.get(link) as r:
                text = await r.text()
                assert r.status == 400 and "无法登录" in text and "重试" in text


async def test_a_forged_stale_or_other_browsers_state_is_refused_before_asking_wechat(tmp_path: Path) -> None:
    clock = FakeClock()
    async with h5_shop(tmp_path, clock=clock) as kit:
        asked = lambda: len([c for c in kit.api.calls if c.path == "sns/oauth2/access_token"])  # noqa: E731
        link = await kit.sign_in_link()
        state = parse_qs(urlsplit(link).query)["state"][0]
        code = parse_qs(urlsplit(link).query)["code"][0]

        async def refused(url: str, http: aiohttp.ClientSession) -> None:
            async with http.get(url, allow_redirects=False) as r:
                text = await r.text()
                assert r.status == 400, text
                assert "was not started on this page or took too long" in text
                assert not any(c.key == "wxh5" for c in http.cookie_jar)

        forged = state[:-1] + ("0" if state[-1] != "0" else "1")
        longer = state[:16] + str(int(state[16:26]) + 3600) + state[26:]  # a later expiry, same signature
        for bad in (forged, longer, "", "abc", state + "0"):
            await refused(f"{kit.url}/h5/?code={code}&state={bad}", kit.http)
        # Another browser's sign-in link (login CSRF: the attacker's code and state sent to a victim).
        async with kit.browser() as victim:
            await refused(link, victim)
        # Ten minutes later the state is stale.
        clock.advance(minutes=11)
        await refused(link, kit.http)
        assert asked() == 0  # WeChat never asked to exchange the code
        assert await kit.app.shop.my_orders(Buyer("wechat", kit.api.oauth_openid)) == []


async def test_forged_expired_or_malformed_session_tokens_are_401(tmp_path: Path) -> None:
    clock = FakeClock()
    async with h5_shop(tmp_path, clock=clock) as kit:
        kit.api.oauth_openid = OPENID
        token = token_of((await kit.open_shop())[1])
        assert (await kit.api_get("/catalog", token))[0] == 200
        openid, expires, sig = token.split(".")
        other_store = Sessions(lambda: secrets.token_bytes(32), lambda: clock.now().timestamp(), 12)
        cases = [  # (token, reason)
            ("", "missing"),
            ("not-a-token", "malformed"),
            (f"{openid}.{expires}", "malformed"),
            (f"{openid}.{expires}.{sig}.x", "malformed"),
            (f"o-someone-else-0123456789ab.{expires}.{sig}", "bad_hash"),  # another buyer's openid
            (f"{openid}.{int(expires) + 86400}.{sig}", "bad_hash"),  # a longer session
            (f"{openid}.{expires}.{'0' * 64}", "bad_hash"),
            (other_store.issue(OPENID), "bad_hash"),  # signed with another store's key
        ]
        for bad, reason in cases:
            status, body = await kit.api_get("/catalog", bad)
            assert (status, body) == (401, {"error": {"code": "unauthorized", "reason": reason}}), bad
        assert (await kit.api_get("/catalog", token, scheme="tma"))[0] == 401  # the token is not initData

        # wechat.h5.session_hours (12) later the session is over: 401, and /h5/ signs the buyer in again.
        clock.advance(hours=12, seconds=1)
        status, body = await kit.api_get("/catalog", token)
        assert (status, body["error"]["reason"]) == (401, "expired")
        trips = len(kit.api.authorized)
        status, page = await kit.open_shop()
        assert (status, len(kit.api.authorized)) == (200, trips + 1)
        assert token_of(page) != token and (await kit.api_get("/catalog", token_of(page)))[0] == 200

        # A forged session cookie does not open the page either: the buyer goes to WeChat.
        async with kit.browser() as forger:
            forger.cookie_jar.update_cookies({"wxh5": f"o-someone-else-0123456789ab.{expires}.{sig}"})
            async with forger.get(kit.url + "/h5/", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"].startswith(kit.api.base + "/connect/oauth2/")


async def test_run_py_serves_the_h5_shop_and_its_api(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = write_config(tmp_path, demo=False, extra={
            "server": {"port": port, "public_url": url},
            "wechat": {"appid": APPID, "token": TOKEN, "secret": SECRET, "api_base": api.base,
                       "h5": {"oauth_base": api.base}}})
        proc = await asyncio.to_thread(start_store, cfg, port)
        try:
            api.oauth_openid = OPENID
            async with H5Kit.browser() as http:
                async with http.get(url + "/h5/") as r:
                    assert r.status == 200
                    token = token_of(await r.text())
                async with http.get(url + "/app/api/catalog", headers={"Authorization": f"wxh5 {token}"}) as r:
                    assert r.status == 200, await r.text()
                    assert [p["title"] for p in (await r.json())["products"]] == ["Game card 10"]
                async with http.get(url + "/app/api/catalog", headers={"Authorization": "wxh5 x.1.y"}) as r:
                    assert r.status == 401
        finally:
            await asyncio.to_thread(stop_store, proc)
