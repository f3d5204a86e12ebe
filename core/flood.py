"""Incoming update limits per sender: a flooder is slowed, then ignored for a moment — never crashed on,
and never able to starve the other buyers.

One token bucket per sender: `burst` updates at once, refilled at `per_minute`. An update beyond that waits for
its token when that is at most `max_delay` seconds away (the sender is slowed: the update is handled late, in
order); further ones are dropped until tokens come back, and the sender is told once per such episode. The
buckets are core/coordination.py's GCRA: in this process's memory (a bounded LRU: the oldest sender is forgotten
first); with `redis.url` (`shared`,
core/coordination.py) every process draws on the same bucket per sender, so a flooder spread over several webhook
processes is slowed as one.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from core.coordination import LocalShared, Shared


@dataclass(frozen=True, slots=True)
class Admission:
    delay: float = 0.0  # seconds to wait before handling the update
    drop: bool = False  # do not handle it
    warn: bool = False  # dropped, and the first drop of this episode: tell the sender to slow down


ADMIT = Admission()


class FloodGate:
    def __init__(self, per_minute: float, burst: int, max_delay: float, *,
                 clock: Callable[[], float] = time.monotonic, max_senders: int = 100_000,
                 shared: Shared | None = None, scope: str = "") -> None:
        if per_minute <= 0 or burst < 1 or max_delay < 0:
            raise ValueError("per_minute > 0, burst >= 1 and max_delay >= 0 are needed")
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_delay = max_delay
        self.max_senders = max_senders
        # The buckets: this process's (bounded, the oldest sender forgotten first), or every process's with Redis.
        self.local = LocalShared(clock)
        self.shared = shared if shared is not None and shared.distributed else None
        self.scope = scope  # the channel: its senders' buckets in `shared`
        self._warned: OrderedDict[Hashable, None] = OrderedDict()  # senders told to slow down in this episode

    async def check(self, sender: Hashable) -> Admission:
        """`admit`, on the bucket every process shares when there is one."""
        if self.shared is None:
            return self.admit(sender)
        key = f"flood:{self.scope}:{sender}"
        return self._decide(sender, await self.shared.reserve(key, self.rate, self.burst, self.max_delay))

    def admit(self, sender: Hashable) -> Admission:
        """This process's bucket of `sender` decides (no Redis)."""
        key = f"flood:{self.scope}:{sender}"
        return self._decide(sender, self.local.reserve_now(key, self.rate, self.burst, self.max_delay))

    def _decide(self, sender: Hashable, wait: float | None) -> Admission:
        """The bucket's answer (the wait for this update's token, None: more than max_delay away, none taken) as
        an admission; a sender is told to slow down once per episode of drops."""
        if wait is not None:
            self._warned.pop(sender, None)
            return ADMIT if wait <= 0 else Admission(delay=wait)
        warn = sender not in self._warned
        self._warned[sender] = None
        while len(self._warned) > self.max_senders:
            self._warned.popitem(last=False)
        return Admission(drop=True, warn=warn)


class FloodSettings(Protocol):
    """What the gate reads of the `risk:` settings section (config/settings/ `Risk`)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def flood_per_minute(self) -> float: ...
    @property
    def flood_burst(self) -> int: ...
    @property
    def flood_max_delay_seconds(self) -> float: ...


def gate_from(section: FloodSettings, shared: Shared | None = None, scope: str = "") -> FloodGate | None:
    """The gate the `risk:` settings section asks for (None when risk checks are off), on `shared` buckets."""
    if not section.enabled:
        return None
    return FloodGate(section.flood_per_minute, section.flood_burst,
                     section.flood_max_delay_seconds, shared=shared, scope=scope)
