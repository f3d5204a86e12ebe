"""core.coordination.Shared on Redis (`redis.url`): what several store processes share, through the `redis`
package's asyncio client. Every key and channel starts with `redis.prefix`, so two shops can share one Redis.

- Buckets: one Lua script per reservation (GCRA on the Redis server's clock, `TIME`), so every process draws on
  the same bucket whatever its own clock says; a bucket key lives only as long as its schedule reaches ahead.
- Claims: `SET NX PX` (GET of the winner's value for the loser); renew and release compare the value first.
- Messages: pub/sub on `<prefix><channel>`, one listener task that reconnects by itself.

Slow is not away. A call that has no answer after `redis.timeout_seconds` may still have been done by Redis (a busy
event loop reads a quick answer late; a stalled Redis runs the queued commands when it resumes), so an answer that
decides something is waited for up to PATIENCE times that: a reservation (a turn Redis has most likely taken in the
shared bucket: answering it from this process's own bucket as well would send twice, and several loaded processes
would overshoot the bot's limit together), a claim (a late `SET NX` that succeeded means this process owns the key;
answering from memory could handle an update another process handles), a renewal and a read. A late reservation is
placed where Redis put it: the script returns Redis's clock, which the fastest answers tie to ours, so the wait
counts from when Redis ran it, not from when the answer was read (a stalled Redis's queued turns are spread from
when it resumed, not all due at once). Writes nobody waits on (put, release, publish) are also done in memory after
`timeout` and left to finish on Redis. A call left running is ended by its socket's timeout and its failure is read.

Redis going away never stops the shop: a call that fails, a call that has no answer within the patience, or
SLOW_IN_A_ROW slow moments in a row (calls slow together in one moment count once; any answer ends the row) log one
WARNING and the process uses its own memory (core.coordination.LocalShared) for a second, then tries Redis again
(while it counts as away, a call without an answer after `timeout` is answered from memory at once); the first call
that works again logs that Redis is back, and the listeners are told to drop every cache (`ALL`: messages may have
been missed meanwhile). While Redis is away each process keeps its own limits, so the shop as a whole may send
faster than the shared limit for that while — Telegram's 429s are still waited out.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
SLOW_IN_A_ROW = 3  # moments in a row with a call slower than redis.timeout_seconds: Redis counts as away
PATIENCE = 4  # a call whose answer decides something waits up to this many times redis.timeout_seconds for it
DRIFT = 0.001  # how far two clocks may drift apart, seconds a second (what is known of Redis's clock fades so)
DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)

# KEYS[1]: the bucket; ARGV: seconds per unit, burst, max wait (negative: wait whatever it takes).
# Returns {1, wait, now} when a unit was taken, {0, wait, now} when the wait would be longer than max wait (nothing
# taken); `now` is Redis's clock as the script ran.
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
local at = string.format('%.6f', now)
if max_wait >= 0 and wait > max_wait then return {0, tostring(wait), at} end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return {1, tostring(wait), at}
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
        self.patience = PATIENCE * timeout
        # The socket gives up a little after the patience: a call left running after a fallback ends by then
        self.client: Any = aioredis.Redis.from_url(url, socket_timeout=self.patience + timeout,
                                                   socket_connect_timeout=timeout, decode_responses=True)
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
        self._slow = 0  # moments in a row with a call that had no answer after `timeout`
        self._slow_at = 0.0  # the last such moment: calls begun before it were slow in that moment
        self._skew = (-math.inf, math.inf, 0.0)  # Redis's clock minus ours lies in [lo, hi], as known at (monotonic)
        self._left: set[asyncio.Future[Any]] = set()  # calls answered from memory, left to finish on Redis
        self._listeners: dict[str, list[Callable[[str], None]]] = {}
        self._listening: asyncio.Task[None] | None = None
        self.fallbacks = 0  # calls answered by this process's own memory (tests and /metrics read it)
        self.late = 0  # answers used though they came after `timeout` (tests read it)

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
        for call in list(self._left):
            call.cancel()
        if self._left:
            await asyncio.wait(self._left)
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

    async def _call(self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]], *,
                    patient: bool = True) -> T:
        """Redis's answer; this process's own (`local`) while Redis counts as away, or when it has none in time:
        `timeout` for a write nobody waits on, the patience for an answer that decides something."""
        if self._down and time.monotonic() < self._down_until:
            self.fallbacks += 1
            return await local()
        started = time.monotonic()
        call = asyncio.ensure_future(remote())
        try:
            done, _ = await asyncio.wait({call}, timeout=self.timeout)
            if not done:
                self._slow_moment(started)
                if patient and not self._down:
                    rest = self.patience - (time.monotonic() - started)
                    done, _ = await asyncio.wait({call}, timeout=max(0.0, rest))
                    if not done:  # nothing within the patience: Redis is away, not slow
                        self._went_down(TimeoutError())
                elif self._down:  # it was away a moment ago and still does not answer: away a while longer
                    self._went_down(TimeoutError())
        finally:
            if not call.done():  # answered here (or the caller went): Redis may still do it, let it
                self._left.add(call)
                call.add_done_callback(self._finished)
        if not done:
            self.fallbacks += 1
            return await local()
        try:
            result = call.result()
        except DOWN as exc:
            self._went_down(exc)
            self.fallbacks += 1
            return await local()
        if time.monotonic() - started > self.timeout:
            self.late += 1
        self._slow = 0
        if self._down and started > self._down_since:  # a call begun before the failure proves nothing
            self._came_back()
        return result

    def _slow_moment(self, started: float) -> None:
        """A call has no answer after `timeout`. Calls that were under way together are one slow moment, however
        many (a stalled loop or Redis delays them all): SLOW_IN_A_ROW moments, no answer between, is Redis away."""
        if started < self._slow_at:
            return
        self._slow += 1
        self._slow_at = time.monotonic()
        if self._slow >= SLOW_IN_A_ROW:
            self._went_down(TimeoutError())

    def _finished(self, call: asyncio.Future[Any]) -> None:
        """A call left to finish on Redis ended: its failure is read here (nobody else waits for it)."""
        self._left.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.debug("a redis call answered from memory then failed: %s", type(call.exception()).__name__)

    def _ran_at(self, redis_now: float, sent: float, answered: float) -> float:
        """When, on this process's clock (time.time), a script ran that read `redis_now` from Redis's: between
        `sent` and `answered`. Every answer bounds the clocks' difference; the fastest ones bound it tightly (the
        bounds widen by DRIFT as time passes), so a late answer is placed the latest it can have run."""
        lo, hi = redis_now - answered, redis_now - sent
        known_lo, known_hi, at = self._skew
        now = time.monotonic()
        faded = (now - at) * DRIFT
        known_lo, known_hi = known_lo - faded, known_hi + faded
        if lo > known_hi or hi < known_lo:  # a clock was set: start again from this answer
            known_lo, known_hi = lo, hi
        self._skew = (max(lo, known_lo), min(hi, known_hi), now)
        return redis_now - self._skew[0]

    def _key(self, key: str) -> str:
        return self.prefix + key

    # -- Shared --------------------------------------------------------------------------------------------------

    async def reserve(self, key: str, per_second: float, burst: int, max_wait: float | None = None) -> float | None:
        async def remote() -> float | None:  # when the unit is due, on the monotonic clock
            sent = time.time()
            took, wait, redis_now = await self._gcra(keys=[self._key("b:" + key)], args=[
                repr(1.0 / per_second), burst, -1 if max_wait is None else max_wait])
            answered, answered_mono = time.time(), time.monotonic()
            if not int(took):
                return None
            return answered_mono + self._ran_at(float(redis_now), sent, answered) + float(wait) - answered

        async def local() -> float | None:
            wait = await self.local.reserve(key, per_second, burst, max_wait)
            return None if wait is None else time.monotonic() + wait

        due = await self._call(remote, local)
        return None if due is None else max(0.0, due - time.monotonic())

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

        await self._call(remote, lambda: self.local.put(key, value, seconds), patient=False)

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

        await self._call(remote, lambda: self.local.release(key, value), patient=False)

    async def publish(self, channel: str, message: str) -> None:
        async def remote() -> None:
            await self.client.publish(self._key(channel), message)

        await self._call(remote, lambda: self.local.publish(channel, message), patient=False)

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
