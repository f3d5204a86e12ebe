"""Long polling that confirms a payment update only after it was handled, for both Telegram libraries.

Telegram confirms every update below the `offset` of the next getUpdates. aiogram's and python-telegram-bot's
own polling loops send that next getUpdates while earlier updates are still being handled, so a crash in
between loses a `successful_payment` for good (Telegram never sends it again). Here ordinary updates are still
handled concurrently, but a payment update (`pre_checkout_query`, a message with `successful_payment`) is
handled before the next getUpdates goes out: if the process dies first, Telegram sends it again, and the
payment's (provider, charge id) uniqueness makes the repeat harmless. The Stars reconciliation
(core/payments.py) covers whatever still slips through.

Each library supplies three small functions: fetch a page of updates, handle one, tell a payment update.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

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

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        """Stop asking for updates; a payment being handled is finished, not cut off."""
        self._stopping = True
        if self._fetching is not None:
            self._fetching.cancel()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._running:
            await asyncio.wait(set(self._running), timeout=STOP_GRACE)

    async def _run(self) -> None:
        delay = 0.5
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
            for update in updates:
                if self.concurrent and not self._is_payment(update):
                    task = asyncio.create_task(self._one(update))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                else:
                    await self._one(update)  # recorded before the next getUpdates confirms it
                self.offset = max(self.offset, self._update_id(update) + 1)

    async def _one(self, update: U) -> None:
        try:
            await self._handle(update)
        except Exception as exc:  # noqa: BLE001 - the update's type and id only: updates may hold codes
            log.error("Telegram update %s failed: %s", self._update_id(update), type(exc).__name__)
