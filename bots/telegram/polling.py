"""Long polling that confirms a payment update only after it was handled, for both Telegram libraries.

Telegram confirms every update below the `offset` of the next getUpdates. aiogram's and python-telegram-bot's
own polling loops move the offset past an update as soon as it is fetched, while it is still being handled, so
a crash in between loses a `successful_payment` for good (Telegram never sends it again). Here every update is
still handled concurrently and polling never waits, but the offset stops at the oldest `successful_payment`
whose handling has not finished: until the payment is recorded, Telegram keeps sending it (and what came after
it) with every getUpdates, and the repeats are skipped by id. If the process dies first, the restarted store
gets the payment again, and the payment's (provider, charge id) uniqueness makes any repeat harmless. The Stars
reconciliation (core/payments.py) covers whatever still slips through (a payment whose recording failed for
good: it is confirmed once its handler gives up).

A `pre_checkout_query` is not held back: its answer is read-only, and one lost in a crash only makes Telegram
cancel that attempt (the buyer pays again). Each library supplies three small functions: fetch a page of
updates, handle one, tell a payment update.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from config.settings import ConfigError
from core.coordination import Shared
from core.logcontext import log_context

log = logging.getLogger(__name__)

U = TypeVar("U")
STOP_GRACE = 5.0  # seconds the updates being handled get to finish when polling stops
POLLER_SECONDS = 30.0  # the poller's claim on its bot; renewed every third of it, free this long after a crash


class PollerLease:
    """Only one process may poll a bot (Telegram answers a second getUpdates with 409 Conflict and the two cut each
    other off): the poller claims `tg:<bot>:poller` in the shared state (core/coordination.py; with Redis every
    store process sees it) and renews it while it polls. A second poller is refused at start, naming the way out."""

    def __init__(self, shared: Shared, bot: str, *, wait: float = POLLER_SECONDS) -> None:
        self.shared = shared
        self.wait = wait  # how long a start waits for another poller's claim to lapse (a crashed one's does)
        self.key = f"tg:{bot}:poller"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._renewing: asyncio.Task[None] | None = None

    async def take(self) -> None:
        held = await self.shared.claim(self.key, self.owner, POLLER_SECONDS)
        if held is not None:  # perhaps a poller that crashed: its claim lapses unless it is alive and renews it
            log.warning("another store process (%s) polls this bot; waiting up to %.0f s for its claim to lapse",
                        held, self.wait)
            deadline = time.monotonic() + self.wait + 1.0
            while time.monotonic() < deadline:
                await asyncio.sleep(min(1.0, self.wait / 4 or 0.1))
                held = await self.shared.claim(self.key, self.owner, POLLER_SECONDS)
                if held is None:
                    break
        if held is not None:
            raise ConfigError([("telegram.mode", f"another store process ({held}) polls this bot already; polling "
                                                 "allows one process: run several processes with telegram.mode: "
                                                 "webhook, or stop the other one")])
        self._renewing = asyncio.create_task(self._renew(), name="telegram-poller-lease")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(POLLER_SECONDS / 3)
            if (not await self.shared.renew(self.key, self.owner, POLLER_SECONDS)
                    and await self.shared.claim(self.key, self.owner, POLLER_SECONDS) is not None):
                log.error("another process took over polling this bot; this one goes on, and Telegram will "
                          "answer one of the two with 409 Conflict: stop one of them")

    async def release(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
            self._renewing = None
        await self.shared.release(self.key, self.owner)


class PaymentFirstPolling(Generic[U]):
    def __init__(self, fetch: Callable[[int, int], Awaitable[Sequence[U]]], handle: Callable[[U], Awaitable[Any]],
                 update_id: Callable[[U], int], is_payment: Callable[[U], bool], *, timeout: int = 10,
                 concurrent: bool = True) -> None:
        self._fetch = fetch
        self._handle = handle
        self._update_id = update_id
        self._is_payment = is_payment
        self.timeout = timeout
        self.concurrent = concurrent
        self.offset = 0
        self._task: asyncio.Task[None] | None = None
        self._fetching: asyncio.Future[Sequence[U]] | None = None
        self._stopping = False
        self._running: set[asyncio.Task[None]] = set()
        self._payments: dict[int, asyncio.Task[None]] = {}  # update id -> its handling, until recorded
        self._newest = -1  # the newest update id handed out

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        """Stop asking for updates; a payment being handled is finished, not cut off."""
        self._stopping = True
        if self._fetching is not None:
            self._fetching.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.wait(set(self._running), timeout=STOP_GRACE)
        # Confirm what was handled, so the next start does not get it again (what is left, it does get).
        offset = min(self._payments) if self._payments else self._newest + 1
        if offset > self.offset:
            try:
                await asyncio.wait_for(self._fetch(offset, 0), timeout=STOP_GRACE)
            except Exception as exc:  # noqa: BLE001 - the next start gets those updates again; harmless
                log.info("could not confirm the last updates at stop (%s)", type(exc).__name__)
            self.offset = offset

    async def _run(self) -> None:
        delay = 0.5
        seen: set[int] = set()  # ids handed out that Telegram may send again (>= offset)
        while not self._stopping:
            self._fetching = asyncio.ensure_future(self._fetch(self.offset, self.timeout))
            try:
                updates = await self._fetching
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as exc:  # noqa: BLE001 - the network or the Bot API; try again later
                if "Conflict" in type(exc).__name__:  # aiogram's TelegramConflictError, PTB's Conflict
                    log.error("getUpdates: Telegram says another program polls this bot (409 Conflict), or a webhook "
                              "is set; only one poller per bot: again in %.1f s", delay)
                else:
                    log.warning("getUpdates failed (%s); again in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            finally:
                self._fetching = None
            delay = 0.5
            fresh = []
            for update in updates:
                uid = self._update_id(update)
                if uid >= self.offset and uid not in seen:
                    seen.add(uid)
                    fresh.append(update)
                    self._newest = max(self._newest, uid)
            for update in fresh:
                if not self.concurrent:
                    await self._one(update)
                    continue
                task = asyncio.create_task(self._one(update))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                if self._is_payment(update):
                    uid = self._update_id(update)
                    self._payments[uid] = task
                    task.add_done_callback(lambda _t, uid=uid: self._payments.pop(uid, None))
            if not fresh and self._payments:  # only repeats while a payment is recorded: wait for it, no spin
                await asyncio.wait(set(self._payments.values()), return_when=asyncio.FIRST_COMPLETED)
            # Everything below the oldest payment still being recorded is confirmed; that payment and what came
            # after it are sent again by the next getUpdates (and skipped here as seen) until it is recorded.
            self.offset = min(self._payments) if self._payments else self._newest + 1
            seen = {i for i in seen if i >= self.offset}

    async def _one(self, update: U) -> None:
        try:
            await self._handle(update)
        except Exception as exc:  # noqa: BLE001 - the update's type and id only: updates may hold codes
            log.error("Telegram update %s failed: %s", self._update_id(update), type(exc).__name__)


async def handled(shop: Any, via: str, update_id: int, handle: Awaitable[Any]) -> None:
    """One update handled (webhook or polling, either library): counted (`updates`, core/metrics.py), and its log
    lines carry the channel and the update id (core/logcontext.py)."""
    shop.metrics.count("updates", channel="telegram", via=via)
    with log_context(channel="telegram", update_id=update_id, order_id=None):
        await handle
