"""Work nobody waits for: follow-up messages, alerts, first-contact writes.

asyncio keeps only weak references to tasks, so a task nobody holds can vanish mid-flight; and an exception
nobody retrieves only shows up as a warning at exit. `Background` holds each task until it ends, logs a
failure by its type (never its text: it may carry a buyer's data), waits for all of them on shutdown or in
tests (`idle`), or cancels them (`stop`).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    def __init__(self, log: logging.Logger, what: str = "background work") -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.warning("%s failed: %s", self._what, type(task.exception()).__name__)

    def __len__(self) -> int:
        return len(self._tasks)

    async def idle(self, timeout: float | None = None) -> None:
        """Until every task (including ones spawned meanwhile) has ended, or `timeout` seconds."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while self._tasks:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(list(self._tasks), timeout=left)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
