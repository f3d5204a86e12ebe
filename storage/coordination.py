"""core.coordination.Shared on Redis (`redis.url`): what several store processes share, through the `redis`
package's asyncio client. Every key and channel starts with `redis.prefix`, so two shops can share one Redis.

- Buckets: one Lua script per reservation (GCRA on the Redis server's clock, `TIME`), so every process draws on
  the same bucket whatever its own clock says; a bucket key lives only as long as its schedule reaches ahead.
- Claims: `SET NX PX` (GET of the winner's value for the loser); renew and release compare the value first.
- Messages: pub/sub on `<prefix><channel>`, one listener task that reconnects by itself.

Redis going away never stops the shop: a call that fails (or SLOW_IN_A_ROW calls in a row that take longer than
`redis.timeout_seconds`: a busy process reads a quick answer late, which is not Redis being away; a slow call alone is
answered from memory) logs one WARNING and the process uses its own memory (core.coordination.LocalShared) for a
second, then tries Redis again;
the first call that works again logs that Redis is back, and the listeners are told to drop every cache
(`ALL`: messages may have been missed meanwhile). While Redis is away each process keeps its own limits, so the
shop as a whole may send faster than the shared limit for that while — Telegram's 429s are still waited out.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.coordination import ALL, LocalShared

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 1.0  # after a failed call, this process's own memory is used this long before Redis is tried again
SLOW_IN_A_ROW = 3  # calls slower than redis.timeout_seconds in a row that count as Redis being away
DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)

# KEYS[1]: the bucket; ARGV: seconds per unit, burst, max wait (negative: wait whatever it takes).
# Returns {1, wait} when a unit was taken, {0, wait} when the wait would be longer than max wait (nothing taken).
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * interval
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return {0, tostring(wait)} end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return {1, tostring(wait)}
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisUnavailable(Exception):
    """Redis did not answer at start (and `redis.start_without` is false)."""


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisShared:
    distributed = True

    def __init__(self, url: str, prefix: str = "store:", *, timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.client: Any = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                   decode_responses=True)
        # Pub/sub waits for messages as long as none come: its own connection, without the calls' timeout
        self.listener_client: Any = aioredis.Redis.from_url(url, socket_connect_timeout=timeout,
                                                            decode_responses=True, health_check_interval=10)
        self.local = LocalShared()
        self._gcra = self.client.register_script(GCRA)
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)
        self._down_until = 0.0
        self._down_since = 0.0
        self._down = False
        self._slow = 0  # calls in a row that took longer than `timeout`
        self._listeners: dict[str, list[Callable[[str], None]]] = {}
        self._listening: asyncio.Task[None] | None = None
        self.fallbacks = 0  # calls answered by this process's own memory (tests and /metrics read it)

    # -- life ----------------------------------------------------------------------------------------------------

    async def start(self, *, required: bool = True) -> None:
        """Ping Redis; unreachable: RedisUnavailable naming `redis.url` (required), else a WARNING and the local
        fallback until it answers. Then the listener starts."""
        try:
            await asyncio.wait_for(self.client.ping(), self.timeout * 4)
        except (*DOWN, RedisError) as exc:
            if required:
                raise RedisUnavailable(f"cannot reach {redacted(self.url)} ({type(exc).__name__}); "
                                       "start Redis, fix redis.url, or set redis.start_without: true") from None
            self._went_down(exc)
        if self._listeners and self._listening is None:
            self._listening = asyncio.create_task(self._listen(), name="redis-listener")

    async def ping(self) -> None:
        """The readiness check (/readyz `redis`): raises when Redis does not answer within a second."""
        await asyncio.wait_for(self.client.ping(), 1.0)

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening
            self._listening = None
        for client in (self.client, self.listener_client):
            with contextlib.suppress(Exception):
                await client.aclose()

    @property
    def down(self) -> bool:
        return self._down

    def _went_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        self._down_since = time.monotonic()
        if not self._down:
            self._down = True
            log.warning("redis unreachable at %s (%s): send and rate limits, update de-duplication and cache "
                        "messages fall back to this process's own until it answers", redacted(self.url),
                        type(exc).__name__)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            self._slow = 0
            log.warning("redis answers again at %s: limits and de-duplication are shared again", redacted(self.url))

    async def _call(self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self._down and time.monotonic() < self._down_until:
            self.fallbacks += 1
            return await local()
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(remote(), self.timeout)
        except (TimeoutError, RedisTimeoutError) as exc:
            # Slow is not gone: a busy event loop reads a quick answer late. This call is answered here; only
            # SLOW_IN_A_ROW such calls in a row count as Redis being away.
            self._slow += 1
            if self._slow >= SLOW_IN_A_ROW:
                self._went_down(exc)
            self.fallbacks += 1
            return await local()
        except DOWN as exc:
            self._went_down(exc)
            self.fallbacks += 1
            return await local()
        self._slow = 0
        if self._down and started > self._down_since:  # a call begun before the failure proves nothing
            self._came_back()
        return result

    def _key(self, key: str) -> str:
        return self.prefix + key

    # -- Shared --------------------------------------------------------------------------------------------------

    async def reserve(self, key: str, per_second: float, burst: int, max_wait: float | None = None) -> float | None:
        async def remote() -> float | None:
            took, wait = await self._gcra(keys=[self._key("b:" + key)],
                                          args=[repr(1.0 / per_second), burst, -1 if max_wait is None else max_wait])
            return float(wait) if int(took) else None

        return await self._call(remote, lambda: self.local.reserve(key, per_second, burst, max_wait))

    async def claim(self, key: str, value: str, seconds: float) -> str | None:
        async def remote() -> str | None:
            k = self._key("c:" + key)
            if await self.client.set(k, value, nx=True, px=max(1, int(seconds * 1000))):
                return None
            found = await self.client.get(k)
            return found if found is not None else value  # expired between the two: treat as taken (rare)

        return await self._call(remote, lambda: self.local.claim(key, value, seconds))

    async def renew(self, key: str, value: str, seconds: float) -> bool:
        async def remote() -> bool:
            return bool(await self._renew(keys=[self._key("c:" + key)], args=[value, max(1, int(seconds * 1000))]))

        return await self._call(remote, lambda: self.local.renew(key, value, seconds))

    async def put(self, key: str, value: str, seconds: float) -> None:
        async def remote() -> None:
            await self.client.set(self._key("c:" + key), value, px=max(1, int(seconds * 1000)))

        await self._call(remote, lambda: self.local.put(key, value, seconds))

    async def get(self, key: str) -> str | None:
        async def remote() -> str | None:
            found = await self.client.get(self._key("c:" + key))
            return str(found) if found is not None else None

        return await self._call(remote, lambda: self.local.get(key))

    async def release(self, key: str, value: str | None = None) -> None:
        async def remote() -> None:
            if value is None:
                await self.client.delete(self._key("c:" + key))
            else:
                await self._release(keys=[self._key("c:" + key)], args=[value])

        await self._call(remote, lambda: self.local.release(key, value))

    async def publish(self, channel: str, message: str) -> None:
        async def remote() -> None:
            await self.client.publish(self._key(channel), message)

        await self._call(remote, lambda: self.local.publish(channel, message))

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        self._listeners.setdefault(channel, []).append(callback)
        self.local.listen(channel, callback)

    def _tell(self, channel: str, message: str) -> None:
        for callback in self._listeners.get(channel, ()):
            try:
                callback(message)
            except Exception as exc:  # noqa: BLE001 - one cache's trouble must not stop the listener
                log.error("a cache message's handler failed: %s", type(exc).__name__)

    async def _listen(self) -> None:
        """Subscribed to every channel listened to; reconnects (after a second, then up to 5 s apart) when the
        connection drops, then tells every listener ALL (messages may have been missed)."""
        delay = RETRY_SECONDS
        lost = False
        channels = {self._key(c): c for c in self._listeners}
        while True:
            pubsub = self.listener_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                if lost:
                    lost = False
                    self._came_back()
                    for channel in self._listeners:
                        self._tell(channel, ALL)
                delay = RETRY_SECONDS
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message and message.get("type") == "message":
                        name = channels.get(message["channel"])
                        if name is not None:
                            self._tell(name, str(message["data"]))
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (*DOWN, RedisError) as exc:
                if not lost:
                    self._went_down(exc)
                lost = True
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
