"""What several store processes share through Redis (storage/coordination.py, core/coordination.py), each
"process" here being its own RedisShared (its own connections) on one key prefix, as two store processes are:
send limits that hold for the bot as a whole, an update handled by one process only, one poller per bot, caches
that every process drops when one changes a product or revokes an API key, what happens when Redis is slow (its
late answer is waited for and used: the shared limit and the single claim hold) and when it is away (at start: a
clear error naming redis.url, or the fallback when configured; mid-run, or stalled past the patience: a clear log
line, the shop keeps going on its own limits, and is back on the shared ones when Redis is)."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.http import SECRET_HEADER, HttpServer
from bots.telegram.limits import LimitedPort
from bots.telegram.polling import PollerLease
from config.settings import ConfigError
from core.coordination import ALL, CacheBus, low_priority
from core.flood import FloodGate
from core.resellers import keys as keys_module
from storage.coordination import RedisShared
from tests.helpers import make_settings, sqlite_url_for
from tests.redis_kit import PrivateRedis, private_redis, redis_prefix  # noqa: F401 - fixtures used by name


@contextlib.asynccontextmanager
async def two(url: str, prefix: str, **kw: Any) -> AsyncIterator[tuple[RedisShared, RedisShared]]:
    """Two processes' clients of one Redis, closed at the end."""
    a, b = RedisShared(url, prefix, **kw), RedisShared(url, prefix, **kw)
    try:
        await a.start()
        await b.start()
        yield a, b
    finally:
        await a.close()
        await b.close()


class Recording:
    """A TelegramPort's send, recording when each message left."""

    def __init__(self, sent: list[tuple[float, int]]) -> None:
        self.sent = sent

    async def send(self, chat_id: int, message: Any) -> int:
        self.sent.append((time.monotonic(), chat_id))
        return len(self.sent)


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


async def test_two_processes_together_keep_the_bots_overall_send_rate(redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    async with two(url, prefix) as (a, b):
        sent: list[tuple[float, int]] = []
        ports = [LimitedPort(Recording(sent), overall=20, shared=s, bot="42") for s in (a, b)]
        # 60 messages to 60 chats, half from each process: alone, each process would send its 30 in 1.5 s
        await asyncio.gather(*(ports[i % 2].send(1000 + i, None) for i in range(60)))
        assert len(sent) == 60
        assert most_in_a_second([t for t, _ in sent]) <= 22  # 20 a second for the bot, whichever process sent
        assert sent[-1][0] - sent[0][0] >= 2.5  # 60 messages at 20 a second: about 3 s, not 1.5


async def test_a_chats_limit_is_shared_and_broadcasts_leave_room_for_deliveries(
        redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    async with two(url, prefix) as (a, b):
        sent: list[tuple[float, int]] = []
        pa, pb = (LimitedPort(Recording(sent), overall=20, per_chat_burst=2, shared=s, bot="42",
                              broadcast_share=0.25) for s in (a, b))
        t0 = time.monotonic()
        await asyncio.gather(pa.send(7, None), pb.send(7, None), pa.send(7, None), pb.send(7, None))
        # one private chat: 2 at once, then one a second, though two processes sent to it
        assert sorted(t - t0 for t, _ in sent)[-1] >= 1.5

        sent.clear()

        async def broadcast(i: int) -> None:
            with low_priority():
                await pa.send(5000 + i, None)

        announcement = [asyncio.create_task(broadcast(i)) for i in range(20)]
        await asyncio.sleep(0.3)
        t1 = time.monotonic()
        await pb.send(99, None)  # a code to deliver, from the other process, while 20 broadcast messages wait
        waited = time.monotonic() - t1
        await asyncio.gather(*announcement)
        assert waited < 0.5  # at 5 a second the announcement would hold it 4 s; it draws a quarter of the rate
        assert sent[-1][1] != 99


async def test_a_flooder_spread_over_processes_is_slowed_as_one(redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    async with two(url, prefix) as (a, b):
        gates = [FloodGate(6, 4, 0.0, shared=s, scope="telegram") for s in (a, b)]
        seen = [await gates[i % 2].check(777) for i in range(8)]
        assert [x.drop for x in seen] == [False] * 4 + [True] * 4  # a burst of 4 in all, not 4 per process
        assert [x.warn for x in seen if x.drop] == [True, True, False, False]  # each process tells the sender once
        assert not (await gates[0].check(778)).drop  # another sender has a bucket of their own


async def test_an_update_sent_to_two_processes_is_handled_once(redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    async with two(url, prefix) as (a, b):
        handled: list[int] = []

        class Runtime:
            async def feed_webhook(self, update: dict[str, Any]) -> None:
                await asyncio.sleep(0.3)
                handled.append(update["update_id"])

        servers = []
        try:
            for shared in (a, b):
                server = HttpServer("127.0.0.1", 0)
                server.add_telegram(Runtime(), "/tg", "s3cret", shared, bot="42")
                await server.start()
                servers.append(server)
            async with aiohttp.ClientSession() as http:
                async def post(server: HttpServer, update_id: int) -> int:
                    async with http.post(f"http://127.0.0.1:{server.port}/tg", json={"update_id": update_id},
                                         headers={SECRET_HEADER: "s3cret"}) as r:
                        return r.status

                # Telegram re-sends a slow update; a balancer gives the copy to the other process
                statuses = await asyncio.gather(post(servers[0], 5001), post(servers[1], 5001))
                assert sorted(statuses) == [200, 503]  # the copy: "later", while the first is being handled
                assert await post(servers[1], 5001) == 200  # handled now: the copy is answered, not handled again
                assert handled == [5001]
                assert await post(servers[1], 5002) == 200
                assert handled == [5001, 5002]
        finally:
            for server in servers:
                await server.stop()


async def test_a_second_poller_for_one_bot_is_refused_with_the_way_out(
        redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    async with two(url, prefix) as (a, b):
        first = PollerLease(a, "42", wait=0.5)
        await first.take()
        with pytest.raises(ConfigError) as refused:
            await PollerLease(b, "42", wait=0.5).take()
        assert "telegram.mode" in str(refused.value) and "webhook" in str(refused.value)
        await PollerLease(b, "43", wait=0.5).take()  # another bot on the same Redis is its own
        await first.release()
        second = PollerLease(b, "42", wait=0.5)
        await second.take()  # the first stopped: the next may poll
        await second.release()


async def test_a_change_in_one_process_drops_every_processs_cache(redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    a, b = RedisShared(url, prefix), RedisShared(url, prefix)
    bus_a, bus_b = CacheBus(a), CacheBus(b)
    dropped_a: list[str] = []
    dropped_b: list[str] = []
    bus_a.on("api_keys", dropped_a.append)
    bus_b.on("api_keys", dropped_b.append)
    await a.start()
    await b.start()
    try:
        await asyncio.sleep(0.2)  # the listeners subscribed
        bus_a.changed("api_keys", "K1")
        for _ in range(50):
            if dropped_b:
                break
            await asyncio.sleep(0.02)
        assert dropped_b == ["K1"] and dropped_a == ["K1"]  # here at once, there within a round trip; once each
    finally:
        await bus_a.close()
        await bus_b.close()
        await a.close()
        await b.close()


async def test_a_revoked_key_and_an_edited_product_count_in_the_other_process_at_once(
        redis_prefix: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from app.bootstrap import App, product_specs  # noqa: PLC0415

    url, prefix = redis_prefix
    settings = make_settings(sqlite_url_for(tmp_path), tmp_path)
    settings.redis.url = type(settings.redis.url)(url)
    settings.redis.prefix = prefix
    monkeypatch.setattr(keys_module, "KEY_CACHE_SECONDS", 3600.0)
    one = await App.open(settings)
    other = await App.open(settings)
    other.shop.catalog_ttl = 3600.0
    try:
        r = await one.resellers.create("Acme")
        key_id, _ = await one.resellers.create_api_key(r.id)
        assert await other.resellers.api_key(key_id) is not None  # read, and now cached in the other process
        before = {p.sku: p.price for p in await other.shop.products()}  # the catalogue, cached there too
        await asyncio.sleep(0.2)
        await one.resellers.revoke_api_key(key_id)
        specs = product_specs(settings)
        specs[0] = replace(specs[0], price=specs[0].price + 100)
        await one.shop.sync_catalog(specs)  # the merchant changes a price in one process
        for _ in range(200):  # the cached entries would live an hour: only the messages can drop them
            after = {p.sku: p.price for p in await other.shop.products()}
            if await other.resellers.api_key(key_id) is None and after != before:
                break
            await asyncio.sleep(0.05)
        assert await other.resellers.api_key(key_id) is None
        assert after[specs[0].sku] == before[specs[0].sku] + 100
    finally:
        await one.close()
        await other.close()


async def test_redis_down_at_start_names_redis_url_or_starts_on_its_own_when_allowed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from app.bootstrap import App  # noqa: PLC0415

    nowhere = PrivateRedis()  # a port with nothing listening
    settings = make_settings(sqlite_url_for(tmp_path), tmp_path)
    settings.redis.url = type(settings.redis.url)(f"redis://:hunter2@127.0.0.1:{nowhere.port}/0")
    with pytest.raises(ConfigError) as refused:
        await App.open(settings)
    assert "redis.url" in str(refused.value) and "hunter2" not in str(refused.value)

    settings.redis.start_without = True
    with caplog.at_level(logging.WARNING):
        app = await App.open(settings)
    try:
        assert any("redis unreachable" in r.getMessage() for r in caplog.records)
        assert all("hunter2" not in r.getMessage() for r in caplog.records)
        assert await app.shop.products()  # the shop works, on this process's own limits
        assert await app.shop.shared.reserve("x", 10, 1) == 0.0
    finally:
        await app.close()


async def test_redis_restarted_mid_run_falls_back_then_shares_again(
        private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    shared = RedisShared(private_redis.url, "r:", timeout=0.3)
    told: list[str] = []
    shared.listen("cache", told.append)
    await shared.start()
    try:
        assert await shared.reserve("bucket", 1, 1) == 0.0
        with caplog.at_level(logging.WARNING):
            private_redis.stop()
            assert await shared.reserve("other", 1, 1) == 0.0  # answered from this process's memory
            assert shared.down and shared.fallbacks >= 1
            assert any("redis unreachable" in r.getMessage() for r in caplog.records)
            private_redis.start()  # empty, as a restarted Redis that keeps nothing on disk is
            for _ in range(100):
                await asyncio.sleep(0.1)
                await shared.reserve("again", 100, 100)
                if not shared.down and ALL in told:
                    break
        assert not shared.down
        assert any("redis answers again" in r.getMessage() for r in caplog.records)
        assert ALL in told  # every cache was told to start afresh: messages may have been missed meanwhile
        assert await shared.claim("k", "v", 5) is None and await shared.claim("k", "w", 5) == "v"  # on Redis
    finally:
        await shared.close()


async def test_a_redis_that_answers_late_is_waited_for_and_the_processes_keep_the_shared_rate(
        private_redis: PrivateRedis) -> None:  # noqa: F811
    async with two(private_redis.url, "slow:", timeout=0.5) as (a, b):  # patience: 4 × 0.5 s
        try:
            for shared in (a, b):
                await shared.reserve("warm", 1000, 1000)  # the script loaded, Redis's clock compared with ours

            async def turn(shared: RedisShared) -> float:
                """A sender's turn in the bot's overall bucket: reserve, wait, send."""
                wait = await shared.reserve("tg:42:overall", 20, 1)
                assert wait is not None
                await asyncio.sleep(wait)
                return time.monotonic()

            private_redis.pause()  # Redis stalls longer than redis.timeout_seconds, then answers
            turns = [asyncio.create_task(turn(s)) for s in (a, b) for _ in range(20)]
            await asyncio.sleep(1.0)
            private_redis.resume()
            sent = await asyncio.gather(*turns)
            # 40 turns at 20 a second: spread over 2 s from when Redis answered, not sent at once for the time waited
            assert most_in_a_second(sent) <= 22
            assert a.fallbacks == b.fallbacks == 0  # no turn taken from a process's own bucket
            assert a.late == b.late == 20 and not a.down and not b.down  # every turn was Redis's, answered late
        finally:
            private_redis.resume()


async def test_an_update_claimed_while_redis_answers_late_is_still_handled_by_one_process(
        private_redis: PrivateRedis) -> None:  # noqa: F811
    async with two(private_redis.url, "slow:", timeout=0.5) as (a, b):
        try:
            private_redis.pause()
            claims = [asyncio.create_task(s.claim("tg:42:update:7", name, 60)) for s, name in ((a, "a"), (b, "b"))]
            await asyncio.sleep(1.0)
            private_redis.resume()
            held = await asyncio.gather(*claims)
            assert held.count(None) == 1 and set(held) - {None} <= {"a", "b"}  # one won; the other was told who
            assert a.fallbacks == b.fallbacks == 0 and a.late == b.late == 1
        finally:
            private_redis.resume()


async def test_a_redis_stalled_past_the_patience_is_answered_here_and_the_shop_keeps_sending(
        private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    shared = RedisShared(private_redis.url, "stall:", timeout=0.2)  # patience: 0.8 s
    sent: list[tuple[float, int]] = []
    port = LimitedPort(Recording(sent), overall=20, shared=shared, bot="42")
    await shared.start()
    try:
        await port.send(1, None)
        with caplog.at_level(logging.WARNING):
            private_redis.pause()
            try:
                await port.send(2, None)  # no answer within the patience: sent on this process's own limits
                assert shared.down and shared.fallbacks >= 2 and [chat for _, chat in sent] == [1, 2]
                assert await shared.claim("k", "v", 5) is None  # Redis counts as away: answered here at once
                await asyncio.sleep(1.5)  # the calls Redis never answered give up on their socket meanwhile
            finally:
                private_redis.resume()
            for _ in range(100):
                await asyncio.sleep(0.1)
                await shared.reserve("again", 100, 100)
                if not shared.down:
                    break
            assert not shared.down
            gc.collect()  # a call left unanswered whose failure nobody read would be reported as it is collected
        messages = [r.getMessage() for r in caplog.records]
        assert any("redis unreachable" in m for m in messages) and any("redis answers again" in m for m in messages)
        assert not [m for m in messages if "never retrieved" in m], messages
    finally:
        private_redis.resume()
        await shared.close()
