"""WeChat with several store processes sharing a real Redis (tests/redis_kit.py: the machine's, a key prefix of the
test's own deleted afterwards; a private redis-server for Redis restarted mid-run).

- The access token: two clients standing for two processes (each its own redis client, one prefix) fetch it once
  between them; a token refused by both is fetched again once (bots/wechat/client.py).
- Messages: WeChat's re-send reaching another process is handled once; a failed handling is handled again when
  re-sent (bots/wechat/callback.py).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import pytest
import redis
from aiohttp import web

from bots.wechat.callback import WeChatCallback
from bots.wechat.client import SharedTokens, StoreWeChatClient, WeChatApi
from storage.coordination import RedisShared
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer
from tests.helpers import free_port
from tests.redis_kit import REDIS_URL, PrivateRedis, private_redis, redis_prefix  # noqa: F401 - fixtures by name
from tests.wechat_harness import APPID, SECRET, WeChatShop

TOKEN = "callback_token"


@pytest.fixture
def prefix(redis_prefix: tuple[str, str]) -> str:  # noqa: F811 - the fixture, by name
    """A key prefix of this test's own on the test Redis (REDIS_URL); its keys are deleted afterwards."""
    return redis_prefix[1]


class GatedWeChatAPI(FakeWeChatAPI):
    """The fake API, with two gates that make a race certain instead of likely:
    - `token_after(n)`: /cgi-bin/token answers only once n processes are waiting for the token;
    - `refuse_together(n)`: calls with an invalid token are answered (40001) only once n of them have come."""

    def __init__(self, appid: str, secret: str) -> None:
        super().__init__(appid, secret)
        self.waiting: list[str] = []  # processes that asked for the shared token lock (SpyTokens.lock)
        self._token_after = 0
        self._refuse_together = 0
        self._held = 0
        self._all_held = asyncio.Event()

    def token_after(self, n: int) -> None:
        self._token_after = n

    def refuse_together(self, n: int) -> None:
        self._refuse_together, self._held = n, 0
        self._all_held.clear()

    async def _token(self, request: web.Request) -> web.Response:
        deadline = time.monotonic() + 10
        while len(set(self.waiting)) < self._token_after and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return await super()._token(request)

    async def _custom_send(self, request: web.Request) -> web.Response:
        if self._refuse_together and request.query.get("access_token") != self.token:
            self._held += 1
            if self._held >= self._refuse_together:
                self._all_held.set()
            await asyncio.wait_for(self._all_held.wait(), 10)
        return await super()._custom_send(request)


class SpyTokens(SharedTokens):
    """SharedTokens that tells the fake API when its process waits for the token lock."""

    def __init__(self, name: str, api: GatedWeChatAPI, prefix: str) -> None:
        super().__init__(REDIS_URL, prefix, APPID)
        self.name = name
        self.api = api

    def lock(self) -> Any:
        self.api.waiting.append(self.name)
        return super().lock()


@pytest.fixture
async def api():
    async with GatedWeChatAPI(APPID, SECRET) as fake:
        yield fake


def process(name: str, api: GatedWeChatAPI, prefix: str) -> WeChatApi:
    """One store process's WeChat API: its own client, its own Redis connection, the shop's prefix."""
    return WeChatApi(StoreWeChatClient(APPID, SECRET, api.base, shared=SpyTokens(name, api, prefix)))


def tokens_used(api: FakeWeChatAPI, openid: str) -> set[str]:
    return {c.query["access_token"] for c in api.sends(openid)}


async def test_two_processes_fetch_the_token_once_and_a_token_refused_by_both_is_fetched_again_once(api, prefix):
    one, two = process("one", api, prefix), process("two", api, prefix)
    try:
        # Both start without a token, and the API answers the fetch only once both are waiting for the lock.
        api.token_after(2)
        await asyncio.gather(*(p.send_text(f"o-{p_name}-{i}", "hi") for p, p_name in ((one, "one"), (two, "two"))
                               for i in range(3)))
        assert sorted(set(api.waiting)) == ["one", "two"]  # both processes needed a token at the same time
        assert api.token_fetches == 1
        assert sorted([one.client.token_fetches, two.client.token_fetches]) == [0, 1]
        assert len(api.sends()) == 6
        first = api.token
        assert {c.query["access_token"] for c in api.sends()} == {first}  # the other used the fetcher's token

        # The token is made invalid elsewhere; both processes' next calls are refused (40001) together.
        api.token = "made-invalid-elsewhere"
        api.token_after(0)
        api.refuse_together(2)
        await asyncio.gather(one.send_text("o-a", "again"), two.send_text("o-b", "again"))
        assert [c.errcode for c in api.refused("message/custom/send")] == [40001, 40001]
        assert api.token_fetches == 2  # one new token, not one per process
        assert tokens_used(api, "o-a") == tokens_used(api, "o-b") == {api.token} != {first}

        # A third process starting now uses the shared token without fetching one.
        three = process("three", api, prefix)
        try:
            await three.send_text("o-c", "hello")
        finally:
            three.close()
        assert api.token_fetches == 2 and tokens_used(api, "o-c") == {api.token}
    finally:
        one.close()
        two.close()


async def test_a_token_past_its_margin_is_fetched_by_one_process(api, prefix):
    one, two = process("one", api, prefix), process("two", api, prefix)
    try:
        await one.send_text("o-a", "hi")
        # The stored token has 30 s left (under the 60 s margin): due for a refresh, by one process only.
        with redis.Redis.from_url(REDIS_URL) as client:
            client.pexpire(f"{prefix}wx:token:{APPID}", 30_000)
        api.waiting.clear()
        api.token_after(2)
        await asyncio.gather(one.send_text("o-b", "hi"), two.send_text("o-c", "hi"))
        assert api.token_fetches == 2
        assert tokens_used(api, "o-b") == tokens_used(api, "o-c") == {api.token}
    finally:
        one.close()
        two.close()


async def test_redis_away_the_process_keeps_its_own_token_with_one_warning_and_no_password(caplog):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
        wx = WeChatApi(StoreWeChatClient(APPID, SECRET, api.base, shared=SharedTokens(url, "x:", APPID)))
        try:
            with caplog.at_level(logging.INFO):
                for i in range(3):
                    await wx.send_text(f"o-{i}", "hi")
                api.token = "made-invalid-elsewhere"
                await wx.send_text("o-x", "again")
        finally:
            wx.close()
        assert len(api.sends()) == 4 and api.token_fetches == 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "redis" in r.getMessage()]
        assert len(warnings) == 1 and "***" in warnings[0].getMessage()
        assert "hunter2" not in caplog.text and api.token not in caplog.text


async def test_redis_restarted_mid_run_each_process_keeps_going_then_they_share_the_token_again(
        api, private_redis: PrivateRedis, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr("bots.wechat.client.REDIS_RETRY", 0.0)  # Redis is tried again at the next call

    def process_on(url: str) -> WeChatApi:
        return WeChatApi(StoreWeChatClient(APPID, SECRET, api.base, shared=SharedTokens(url, "p:", APPID)))

    one = process_on(private_redis.url)
    two: WeChatApi | None = None
    try:
        await one.send_text("o-a", "hi")
        private_redis.stop()
        with caplog.at_level(logging.INFO):
            api.token = "made-invalid-elsewhere"
            await one.send_text("o-b", "hi")  # refused: a token of its own, Redis being away
            await one.send_text("o-c", "hi")
        assert api.token_fetches == 2 and len(api.sends()) == 3
        assert len([r for r in caplog.records if r.levelno == logging.WARNING and "redis" in r.getMessage()]) == 1

        private_redis.start()  # empty: the other process fetches a token (the first one's is now invalid) ...
        two = process_on(private_redis.url)
        await two.send_text("o-d", "hi")
        await one.send_text("o-e", "hi")  # ... and the first one takes it from Redis instead of fetching again
        assert api.token_fetches == 3
        assert tokens_used(api, "o-d") == tokens_used(api, "o-e") == {api.token}
    finally:
        one.close()
        if two is not None:
            two.close()


# -- messages -------------------------------------------------------------------------------------------------------

class Processes:
    """Two callbacks standing for two store processes: separate RedisShared instances on one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.handled: list[tuple[str, str]] = []  # (process, message text)
        self.fail = 0  # the next handlings that raise
        self.wx = WeChatServer("http://unused", TOKEN, APPID)

    async def __aenter__(self) -> Processes:
        self.shared = [RedisShared(REDIS_URL, self.prefix) for _ in range(2)]
        for shared in self.shared:
            await shared.start()
        self.callbacks = [WeChatCallback(TOKEN, APPID, self._handler(name), shared=shared)
                          for name, shared in zip(("one", "two"), self.shared, strict=True)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for shared in self.shared:
            await shared.close()

    def _handler(self, name: str) -> Any:
        async def handle(msg: Any) -> str:
            await asyncio.sleep(0.05)  # still being handled when the re-send comes in
            if self.fail:
                self.fail -= 1
                raise RuntimeError("the database went away")
            self.handled.append((name, msg.content))
            return f"answer to {msg.content}"
        return handle

    async def deliver(self, process: int, xml: str) -> tuple[int, str]:
        """WeChat posting `xml` (a re-send: its own timestamp and nonce) to one process: (status, reply)."""
        answer = await self.callbacks[process].receive(self.wx.signed_query(nonce=secrets.token_hex(5)), xml.encode())
        body = answer.body.decode()
        return answer.status, "" if body == "success" else body


async def test_a_message_resent_to_another_process_is_handled_once(prefix):
    async with Processes(prefix) as p:
        xml = p.wx.text_xml("o-ann", "buy 1", msg_id=7001)
        answers = await asyncio.gather(p.deliver(0, xml), p.deliver(1, xml))  # at once
        later = await asyncio.gather(p.deliver(1, xml), p.deliver(0, xml))  # and after it was answered
        assert [status for status, _ in answers + later] == [200, 200, 200, 200]
        assert len(p.handled) == 1
        handler = p.handled[0][0]
        assert sorted(bool(reply) for _, reply in answers) == [False, True]  # the other one: `success`
        assert all("answer to buy 1" in reply for _, reply in answers if reply)
        # The handling process answers a re-send again; the other says `success`.
        later_by = {"two": later[0][1], "one": later[1][1]}
        other = "two" if handler == "one" else "one"
        assert "answer to buy 1" in later_by[handler] and later_by[other] == ""
        # Another message is handled as usual.
        assert "answer to hello" in (await p.deliver(1, p.wx.text_xml("o-ann", "hello", msg_id=7002)))[1]
        assert len(p.handled) == 2


async def test_a_failed_handling_is_handled_again_when_resent_to_any_process(prefix):
    async with Processes(prefix) as p:
        xml = p.wx.text_xml("o-bob", "orders", msg_id=7101)
        p.fail = 1
        assert await p.deliver(0, xml) == (200, "")  # failed: WeChat gets an empty answer, and will re-send
        assert p.handled == []
        status, reply = await p.deliver(1, xml)  # the re-send reaches the other process: handled there
        assert status == 200 and "answer to orders" in reply
        assert await p.deliver(0, xml) == (200, "")  # ... and only there
        assert p.handled == [("two", "orders")]

        xml = p.wx.text_xml("o-bob", "help", msg_id=7102)
        p.fail = 1
        await p.deliver(1, xml)
        assert "answer to help" in (await p.deliver(1, xml))[1]  # the same process takes its re-send again
        assert p.handled[-1] == ("two", "help")


async def test_two_store_processes_on_redis_handle_a_resent_message_once_and_share_the_token(prefix, db_url,
                                                                                               tmp_path):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        extra = {"redis": {"url": REDIS_URL, "prefix": prefix}}
        async with WeChatShop(api, tmp_path, database=db_url, extra=extra) as one, \
                WeChatShop(api, tmp_path, database=db_url, extra=extra) as two:
            xml = one.wx.text_xml("o-ann", "帮助", msg_id=8001)
            answers = await asyncio.gather(one.wx.post(xml), two.wx.post(xml))
            assert [status for status, _ in answers] == [200, 200]
            assert one.runtime.callback.handled + two.runtime.callback.handled == 1
            await one.idle()
            await two.idle()
            replies = [reply for _, reply in answers if reply] + api.texts("o-ann")
            assert len(replies) == 1 and "帮助" in replies[0]  # the help text, once (a reply, or a message after)

            await asyncio.gather(one.runtime.api.send_text("o-x", "hi"), two.runtime.api.send_text("o-y", "hi"))
            assert api.token_fetches == 1
