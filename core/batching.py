"""Group commit: many waiting requests served in one transaction.

Each type of request (a small dataclass, named for what it asks, a `Request[T]` whose caller gets a T back) has a
batch handler `async (uow, items) -> results`, registered for that type (`register(ReserveRequest, handler)`;
`submit(request)` finds it by the request's type, so "go to definition" on the request leads to its handler's
registration). Each handler does set-based work, so one transaction costs a fixed number of statements however
many buyers wait. A result that is an
exception is raised to that caller only. If a whole batch fails unexpectedly (a conflict with another
process, a bug), it is rolled back and every item is retried alone, so one bad item cannot sink others.

Riders (`ride(rider)`) are writes nobody waits for that go along with whatever transaction runs next: after the
batch's handlers, each rider takes what it has gathered in memory and writes it in the same transaction, just before
the commit (so a row it updates stays locked only for the commit); if the transaction fails, what it took is given
back for the next one, and the items retried alone go without riders (a rider's failure never fails a sale).
The report's funnel counts ride this way (core/reports/events.py): a product view costs no transaction of its own.

Lanes (`own_lane(kind)`): requests of a kind given a lane of their own are batched apart from the others, and their
transaction may run while another lane's does (on two connections, as two processes' batches would on PostgreSQL,
which is the only place a shop asks for it: core/shop.py). While one lane waits for the database, the other's
Python work runs: holding stock for the next buyers overlaps paying for the last ones. Within a lane, batches run
one at a time, as they always do; without `own_lane` there is one lane.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from core.errors import StoreError
from core.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

# What the running batch (of this task's lane) calls once it has committed (`after_this_commit`).
_AFTER_THIS_COMMIT: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "after_this_commit", default=None)

T = TypeVar("T")


class Request(Generic[T]):
    """A request for the group committer, answered with a T (`submit` returns it) or an exception raised to its
    caller only. Its batch handler returns one of them per request, in order."""

    __slots__ = ()


class QuietRequest(Request[T]):
    """A request whose commit never adds outbox rows: the outbox dispatcher is not woken by it (each wake-up is a
    claim transaction; customers' state writes come with every message on numbered channels)."""

    __slots__ = ()


class Rider(Protocol):
    """Writes that go along with the next group commit (`GroupCommitter.ride`)."""

    def take(self) -> object | None:
        """What was gathered since the last take (None: nothing to write); forgotten here until given back."""
    async def write(self, uow: UnitOfWork, taken: object) -> None:
        """Write what was taken, in the batch's transaction."""
    def give_back(self, taken: object) -> None:
        """The transaction failed: keep what was taken for the next one."""


Q = TypeVar("Q", bound=Request[Any])
# (unit of work, the batch's requests of one type) -> one answer (or exception) per request, in order
BatchHandler = Callable[[UnitOfWork, Sequence[Any]], Awaitable[Sequence[object]]]


@dataclass(slots=True)
class _Job:
    kind: type[Request[Any]]
    item: Request[Any]
    future: asyncio.Future[Any]


class GroupCommitter:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, max_batch: int = 256, retries: int = 3,
                 lanes: Sequence[Sequence[type[Request[Any]]]] = ()) -> None:
        self._uow = uow_factory
        self._handlers: dict[type[Request[Any]], BatchHandler] = {}
        self._after_commit: list[Callable[[set[type]], None]] = []
        self._riders: list[Rider] = []
        self._lane_of: dict[type[Request[Any]], str] = {}  # kinds with a lane of their own ("": the shared one)
        self._lanes: dict[str, tuple[asyncio.Queue[_Job], asyncio.Task[None]]] = {}
        for kinds in lanes:
            self.own_lane(*kinds)
        self.max_batch = max_batch
        self.retries = retries
        self.batches = 0
        self.items = 0

    def register(self, kind: type[Q], handler: Callable[[UnitOfWork, Sequence[Q]], Awaitable[Sequence[object]]]
                 ) -> None:
        """Requests of type `kind` are served by `handler` (one handler per type: registering again replaces it,
        e.g. a second merchant-command service on the same shop)."""
        self._handlers[kind] = handler

    def own_lane(self, *kinds: type[Request[Any]]) -> None:
        """Requests of these types are batched together on a lane of their own, whose transactions may run at the
        same time as the other lanes' (see the module docstring). Only for a database that takes concurrent
        writers."""
        for kind in kinds:
            self._lane_of[kind] = kinds[0].__name__

    def ride(self, rider: Rider) -> None:
        """`rider` writes what it gathered in every batch's transaction, before the commit."""
        self._riders.append(rider)

    def on_commit(self, callback: Callable[[set[type]], None]) -> None:
        self._after_commit.append(callback)

    def after_this_commit(self, callback: Callable[[], None]) -> None:
        """Called by a batch handler: run callback once the running batch has committed (never if it fails)."""
        this_batch = _AFTER_THIS_COMMIT.get()
        if this_batch is None:  # a handler called outside the committer: no batch of ours to follow
            log.debug("after_this_commit outside a batch: %r dropped", callback)
            return
        this_batch.append(callback)

    async def submit(self, item: Request[T]) -> T:
        """Queue a request for the next batch; its handler is the one registered for its type."""
        kind = type(item)
        if kind not in self._handlers:
            raise LookupError(f"no batch handler for {kind.__name__}")
        lane = self._lane_of.get(kind, "")
        running = self._lanes.get(lane)
        if running is None or running[1].done():
            queue: asyncio.Queue[_Job] = asyncio.Queue()
            running = self._lanes[lane] = (queue, asyncio.create_task(
                self._run(queue), name=f"group-commit-{lane}" if lane else "group-commit"))
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        running[0].put_nowait(_Job(kind, item, fut))
        return await fut

    async def close(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        for _, task in lanes:
            task.cancel()
        for _, task in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            jobs = [await queue.get()]
            # Let every buyer who is already on the way join this batch.
            await asyncio.sleep(0)
            while not queue.empty() and len(jobs) < self.max_batch:
                jobs.append(queue.get_nowait())
            live = [j for j in jobs if not j.future.done()]
            if live:
                await self._flush(live)

    async def _flush(self, jobs: list[_Job]) -> None:
        try:
            results, this_batch = await self._run_batch(jobs)
        except Exception as exc:  # noqa: BLE001 - fall back to one transaction per item
            if len(jobs) > 1:
                log.warning("batch of %d failed (%s); retrying one by one", len(jobs), type(exc).__name__)
            for job in jobs:
                await self._flush_single(job)
            return
        self._committed(jobs, results, this_batch)

    async def _flush_single(self, job: _Job) -> None:
        last: Exception | None = None
        for _ in range(self.retries):
            try:
                results, this_batch = await self._run_batch([job], riders=False)
            except StoreError as exc:
                last = exc
                break
            except Exception as exc:  # noqa: BLE001
                last = exc
                await asyncio.sleep(0.01)
                continue
            self._committed([job], results, this_batch)
            return
        if not job.future.done():
            job.future.set_exception(last or RuntimeError("batch failed"))

    async def _run_batch(self, jobs: list[_Job], *, riders: bool = True
                         ) -> tuple[list[object], list[Callable[[], None]]]:
        """One transaction for the jobs: (the answers, what to call once committed). Only the commit is inside:
        what runs after it lives in _committed, so a failure there can never make the batch run again."""
        by_kind: dict[type[Request[Any]], list[int]] = {}
        for i, job in enumerate(jobs):
            by_kind.setdefault(job.kind, []).append(i)
        results: list[object] = [None] * len(jobs)
        this_batch: list[Callable[[], None]] = []
        reset = _AFTER_THIS_COMMIT.set(this_batch)
        taken: list[tuple[Rider, object]] = []
        try:
            async with self._uow(write=True) as uow:
                for kind, idx in by_kind.items():
                    out = await self._handlers[kind](uow, [jobs[i].item for i in idx])
                    for i, r in zip(idx, out, strict=True):
                        results[i] = r
                for rider in self._riders if riders else ():
                    load = rider.take()
                    if load is not None:
                        taken.append((rider, load))
                        await rider.write(uow, load)
                await uow.commit()
        except BaseException:
            for rider, load in taken:
                rider.give_back(load)
            raise
        finally:
            _AFTER_THIS_COMMIT.reset(reset)
        return results, this_batch

    def _committed(self, jobs: list[_Job], results: list[object], this_batch: list[Callable[[], None]]) -> None:
        self.batches += 1
        self.items += len(jobs)
        self._settle(jobs, results)
        kinds = {j.kind for j in jobs}
        for fn in [*this_batch, *(lambda cb=cb: cb(kinds) for cb in self._after_commit)]:
            try:
                fn()
            except Exception:  # noqa: BLE001 - the batch is committed; a hook's failure is only logged
                log.exception("after-commit hook failed")

    @staticmethod
    def _settle(jobs: list[_Job], results: list[object]) -> None:
        for job, res in zip(jobs, results, strict=True):
            if job.future.done():
                continue
            if isinstance(res, BaseException):
                job.future.set_exception(res)
            else:
                job.future.set_result(res)


class Coalesced(Generic[T]):
    """One load for every caller that asks while it runs (a burst of buyers finding a cache stale share one read,
    not a read each). `forget()`: callers from now on start a fresh load (one already running keeps its callers)."""

    def __init__(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load
        self._running: asyncio.Task[T] | None = None

    async def get(self) -> T:
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        return await asyncio.shield(self._running)  # a caller that gives up does not cancel the others' load

    def forget(self) -> None:
        self._running = None

    async def _run(self) -> T:
        me = asyncio.current_task()
        try:
            return await self._load()
        finally:
            if self._running is me:
                self._running = None
