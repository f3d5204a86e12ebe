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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from core.logcontext import log_context

log = logging.getLogger(__name__)

U = TypeVar("U")
STOP_GRACE = 5.0  # seconds the updates being handled get to finish when polling stops


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
