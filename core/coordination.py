"""What several store processes share, and this process's own stand-in when there is one process.

`Shared` is the port: token buckets every process draws from (Telegram's send limits, the flood gate, the group
`/buy` and B2B API rate limits), claims that only one process wins (an update id handled once, the Telegram
poller), and messages to every process (a cache to drop). With `redis.url` set, storage/coordination.py
implements it on Redis; without, `LocalShared` keeps it all in this process's memory, which is exactly right for
one process (the demo, SQLite).

Buckets are GCRA ("generic cell rate algorithm"): a bucket is one number, the theoretical arrival time of the next
unit; `reserve` moves it on and says how long the caller waits before its unit is due. A caller that will not wait
that long (`max_wait`) takes nothing. The same arithmetic runs here and, as one Lua script on the server's clock,
in Redis (storage/coordination.py), so both behave alike.

`CacheBus` is what core's caches use: `changed(topic, key)` drops this process's copy at once and tells the others
(through `Shared.publish`), whose copies drop within a round trip; a process that lost its Redis connection drops
everything when it is back (it may have missed a message).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Protocol

from core.background import Background

log = logging.getLogger(__name__)

MAX_KEYS = 100_000  # buckets and claims one process keeps at most (the oldest are forgotten first)
ALL = "*"  # CacheBus key: drop every entry of a topic


class Shared(Protocol):
    """State shared by every store process (storage/coordination.py on Redis; LocalShared in one process)."""

    @property
    def distributed(self) -> bool:
        """True when other processes see the same state (Redis); False for one process's memory."""

    async def reserve(self, key: str, per_second: float, burst: int, max_wait: float | None = None) -> float | None:
        """Take the next unit of the bucket `key` (`per_second` units a second, `burst` at once): the seconds to
        wait before using it (0.0: now). With `max_wait`: None and nothing taken when the wait would be longer."""

    async def claim(self, key: str, value: str, seconds: float) -> str | None:
        """Store `value` at `key` for `seconds` unless the key holds something: None when this call claimed it,
        else the value found."""

    async def renew(self, key: str, value: str, seconds: float) -> bool:
        """Keep a claim `seconds` longer; False when `key` no longer holds `value` (it expired, another took it)."""

    async def put(self, key: str, value: str, seconds: float) -> None:
        """Store `value` at `key` for `seconds`, whatever it held."""

    async def release(self, key: str, value: str | None = None) -> None:
        """Forget `key` (only while it holds `value`, when given)."""

    async def publish(self, channel: str, message: str) -> None:
        """Tell every process (this one included) listening on `channel`."""

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(message)` for each message on `channel`; `ALL` also when messages may have been missed."""

    async def close(self) -> None: ...


def gcra(tat: float, now: float, per_second: float, burst: int, max_wait: float | None) -> tuple[float, float | None]:
    """One reservation: (the bucket's new theoretical arrival time, the wait) or (unchanged, None) when refused."""
    interval = 1.0 / per_second
    tat = max(tat, now)
    wait = max(0.0, tat - now - (burst - 1) * interval)
    if max_wait is not None and wait > max_wait:
        return tat, None
    return tat + interval, wait


class LocalShared:
    """One process's `Shared`: buckets and claims in memory (bounded, the oldest forgotten first), messages to
    this process's own listeners."""

    distributed = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: OrderedDict[str, float] = OrderedDict()
        self._claims: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._listeners: dict[str, list[Callable[[str], None]]] = {}

    async def reserve(self, key: str, per_second: float, burst: int, max_wait: float | None = None) -> float | None:
        return self.reserve_now(key, per_second, burst, max_wait)

    def reserve_now(self, key: str, per_second: float, burst: int, max_wait: float | None = None) -> float | None:
        now = self.clock()
        tat, wait = gcra(self._buckets.get(key, now), now, per_second, burst, max_wait)
        if wait is not None:
            self._buckets[key] = tat
            self._buckets.move_to_end(key)
            if len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        return wait

    def _live(self, key: str) -> tuple[str, float] | None:
        held = self._claims.get(key)
        if held is not None and held[1] <= self.clock():
            del self._claims[key]
            return None
        return held

    async def claim(self, key: str, value: str, seconds: float) -> str | None:
        held = self._live(key)
        if held is not None:
            return held[0]
        await self.put(key, value, seconds)
        return None

    async def renew(self, key: str, value: str, seconds: float) -> bool:
        held = self._live(key)
        if held is None or held[0] != value:
            return False
        await self.put(key, value, seconds)
        return True

    async def put(self, key: str, value: str, seconds: float) -> None:
        self._claims[key] = (value, self.clock() + seconds)
        self._claims.move_to_end(key)
        if len(self._claims) > MAX_KEYS:
            self._claims.popitem(last=False)

    async def get(self, key: str) -> str | None:
        held = self._live(key)
        return held[0] if held else None

    async def release(self, key: str, value: str | None = None) -> None:
        held = self._live(key)
        if held is not None and (value is None or held[0] == value):
            del self._claims[key]

    async def publish(self, channel: str, message: str) -> None:
        for callback in self._listeners.get(channel, ()):
            callback(message)

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        self._listeners.setdefault(channel, []).append(callback)

    async def close(self) -> None:
        return None


CACHE_CHANNEL = "cache"


class CacheBus:
    """Caches that every process drops together. `on(topic, drop)` registers this process's cache; `changed(topic,
    key)` drops it here at once and tells every other process (`drop(key)`, or `drop(ALL)`)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.origin = os.urandom(6).hex()  # our own messages come back from Redis: skipped, dropped already
        self._drops: dict[str, list[Callable[[str], None]]] = {}
        self._sends = Background(log, "a cache message")
        shared.listen(CACHE_CHANNEL, self._received)

    def on(self, topic: str, drop: Callable[[str], None]) -> None:
        self._drops.setdefault(topic, []).append(drop)

    def changed(self, topic: str, key: str = ALL) -> None:
        self._drop(topic, key)
        if self.shared.distributed:
            self._sends.spawn(self.shared.publish(CACHE_CHANNEL, f"{self.origin} {topic} {key}"))

    def _drop(self, topic: str, key: str) -> None:
        for drop in self._drops.get(topic, ()):
            drop(key)

    def _received(self, message: str) -> None:
        if message == ALL:  # messages may have been missed (Redis was away): every cache starts afresh
            for topic in self._drops:
                self._drop(topic, ALL)
            return
        origin, _, rest = message.partition(" ")
        topic, _, key = rest.partition(" ")
        if origin != self.origin and topic:
            self._drop(topic, key or ALL)

    async def close(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await self._sends.idle(timeout=1.0)
        await self._sends.stop()


# The priority of the sends made in this context (an asyncio task's): broadcasts draw on a lane of their own within
# the shared send limit, so codes and answers are not queued behind an announcement to thousands.
LOW_PRIORITY: ContextVar[bool] = ContextVar("low_priority", default=False)


@contextlib.contextmanager
def low_priority() -> Iterator[None]:
    token = LOW_PRIORITY.set(True)
    try:
        yield
    finally:
        LOW_PRIORITY.reset(token)
