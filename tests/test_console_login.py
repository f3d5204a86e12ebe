"""The console's door: a one-time link opens one session; used, expired, forged links and strangers are refused;
every POST needs the session's CSRF token; staff are kept off owner pages; logout and revocation end a session."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from core.clock import FakeClock
from core.console import ConsoleCode, ConsoleError
from tests.console_kit import OWNER, STAFF, STRANGER, open_console


async def _audited(kit, action: str, actor: str) -> int:  # noqa: ANN001
    async with kit.app.shop.uow() as uow:
        return len(await uow.audit.latest(action, actor))


async def test_a_link_opens_one_session_and_only_once(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        url = await kit.link(OWNER)
        token = url.split("t=", 1)[1]
        assert url.startswith(kit.base + "/console/login?t=")
        jars = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(4)]
        try:
            # a link preview (GET) spends nothing; then four tabs race to sign in with it
            async with jars[0].get(url) as r:
                assert r.status == 200 and 'name="t"' in await r.text()

            async def sign_in(http: aiohttp.ClientSession) -> int:
                async with http.post(kit.base + "/console/login", data={"t": token}, allow_redirects=False) as r:
                    return r.status

            statuses = await asyncio.gather(*(sign_in(h) for h in jars))
            assert sorted(statuses) == [303, 403, 403, 403]
            winner = jars[statuses.index(303)]
            status, html = await kit.get(winner, "/")
            assert status == 200 and 'data-figure="orders"' in html
            loser = jars[(statuses.index(303) + 1) % 4]
            status, html = await kit.get(loser, "/")
            assert 'id="login-page"' in html and 'data-figure="orders"' not in html
            async with loser.post(kit.base + "/console/login", data={"t": token}) as r:
                assert r.status == 403 and 'data-refusal="link_used"' in await r.text()
        finally:
            for h in jars:
                await h.close()
        assert await _audited(kit, "console_login", OWNER.key) == 1


async def test_expired_forged_and_strangers_links_are_refused(sqlite_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_console(sqlite_url, tmp_path, clock=clock) as kit:
        url = await kit.link(OWNER)
        clock.advance(minutes=kit.app.settings.console.link_minutes, seconds=1)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for token, reason in ((url.split("t=", 1)[1], "link_expired"), ("forged" * 5, "link_unknown"),
                                  ("", "link_unknown")):
                async with http.post(kit.base + "/console/login", data={"t": token}, allow_redirects=False) as r:
                    assert r.status == 403, token
                    assert f'data-refusal="{reason}"' in await r.text()
            assert not [c for c in http.cookie_jar if c.key == "console_session"]
        try:
            await kit.web.desk.issue_link(STRANGER)
            raise AssertionError("a stranger got a link")
        except ConsoleError as exc:
            assert exc.code is ConsoleCode.NOT_MERCHANT
        assert await _audited(kit, "admin_denied", STRANGER.key) == 1


async def test_every_post_needs_the_csrf_token(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        async with kit.client(OWNER) as http:
            status, html = await kit.post(http, "/logout", csrf=False)
            assert status == 403 and 'data-refusal="csrf"' in html
            status, html = await kit.post(http, "/logout", {"csrf": "0" * 40}, csrf=False)
            assert status == 403
            assert (await kit.get(http, "/"))[0] == 200  # still signed in: nothing was done
            status, html = await kit.post(http, "/logout")
            assert status == 200 and 'id="login-page"' in html
            status, html = await kit.get(http, "/", allow_redirects=False)
            assert status == 303  # the session is over
        assert await _audited(kit, "console_logout", OWNER.key) == 1


async def test_staff_are_kept_off_owner_pages(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit:
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, "/")
            assert status == 200 and 'data-figure="revenue' not in html  # no money on a staff dashboard
            status, html = await kit.get(http, "/charts/revenue.svg")
            assert status == 403 and 'data-refusal="owner_only"' in html
        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/")
            assert 'data-figure="revenue' in html
        assert await _audited(kit, "admin_denied", STAFF.key) == 1


async def test_sessions_can_be_listed_and_revoked(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit, kit.client(OWNER) as http, kit.client(STAFF) as other:
        sessions = await kit.web.desk.sessions()
        assert {s.merchant for s in sessions} == {OWNER, STAFF}
        staff_session = next(s for s in sessions if s.merchant == STAFF)
        assert await kit.web.desk.revoke([staff_session.id], OWNER) == [staff_session.id]
        assert (await kit.get(other, "/", allow_redirects=False))[0] == 303
        assert (await kit.get(http, "/"))[0] == 200
        assert await kit.web.desk.revoke([staff_session.id], OWNER) == []  # already ended


async def test_a_merchant_removed_from_the_config_loses_the_console(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit, kit.client(STAFF) as http:
        kit.web.desk.staff.discard(STAFF)
        assert (await kit.get(http, "/", allow_redirects=False))[0] == 303


async def test_the_cookie_and_headers_keep_the_session_to_the_console(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit:
        async with aiohttp.ClientSession() as http:
            token = (await kit.link(OWNER)).split("t=", 1)[1]
            async with http.post(kit.base + "/console/login", data={"t": token}, allow_redirects=False) as r:
                cookie = r.headers["Set-Cookie"]
                assert r.status == 303 and r.headers["Location"] == "/console/"
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
            assert "Secure" not in cookie  # plain http on 127.0.0.1: a Secure cookie would never come back
            async with http.get(kit.base + "/console/login") as r:
                h = r.headers
                csp = h["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "no-referrer"
                assert h["Cache-Control"] == "no-store"
        # behind https (server.public_url), the cookie is Secure
        kit.web.secure = True
        async with aiohttp.ClientSession() as http:
            token = (await kit.link(OWNER)).split("t=", 1)[1]
            async with http.post(kit.base + "/console/login", data={"t": token}, allow_redirects=False) as r:
                assert "Secure" in r.headers["Set-Cookie"]


async def test_the_console_speaks_chinese_when_asked(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit:
        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/?lang=zh_CN")
            assert status == 200 and "今日概览" in html and 'lang="zh-CN"' in html
            status, html = await kit.get(http, "/")  # the choice is kept (cookie)
            assert "今日概览" in html
        async with aiohttp.ClientSession() as http, \
                http.get(kit.base + "/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}) as r:
            assert "登录店铺后台" in await r.text()


async def test_a_session_ends_when_idle_too_long_or_too_old(sqlite_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_console(sqlite_url, tmp_path, clock=clock) as kit:
        c = kit.app.settings.console
        async with kit.client(OWNER) as http:
            clock.advance(minutes=c.idle_minutes - 1)
            assert (await kit.get(http, "/", allow_redirects=False))[0] == 200  # used in time: still open
            clock.advance(minutes=c.idle_minutes)
            assert (await kit.get(http, "/", allow_redirects=False))[0] == 303  # idle too long
        async with kit.client(OWNER) as http:
            for _ in range(c.session_hours * 60 // (c.idle_minutes - 1)):
                clock.advance(minutes=c.idle_minutes - 1)  # busy all along ...
                assert (await kit.get(http, "/", allow_redirects=False))[0] == 200
            clock.advance(minutes=c.idle_minutes - 1)
            assert (await kit.get(http, "/", allow_redirects=False))[0] == 303  # ... but no longer than session_hours
