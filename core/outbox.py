"""The outbox dispatcher: sends what committed transactions queued (deliveries, refunds, notices).

Rows are written in the same transaction as the change they announce and sent after commit; rows left
unsent by a crash are sent when the store starts again. Sending is at-least-once between the send and the
"sent" mark; everything before the send (payment, codes sold) is exactly-once. A row that takes several
messages (codes and card faces, a long text in parts, several deletions) records each part that went out in
its payload (core/ports.py Parts), so a retry sends only the parts that did not.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from core.batching import GroupCommitter, QuietRequest
from core.clock import Clock
from core.coordination import low_priority
from core.errors import RecipientUnreachable, VaultError
from core.logcontext import set_order
from core.metrics import NO_METRICS, Metrics
from core.models import AuditEntry, CodeStatus, Order, OrderStatus, OutboxItem, Product, StoredCode
from core.ports import (
    Delivery,
    ForgetfulNotifier,
    Notifier,
    Parts,
    PaymentGateway,
    TemplateNotifier,
    UnitOfWork,
    UnitOfWorkFactory,
)
from core.vault import Vault

if TYPE_CHECKING:
    from core.supply import SupplyDesk

log = logging.getLogger(__name__)

# Refund reasons that give back the whole order (it becomes 'refunded' once the provider took the refund);
# other refunds return a stray payment and leave the order as it is.
ORDER_REFUNDS = frozenset({"stock_gone", "merchant", "supplier_failed", "topup_failed", "recalled", "group_failed"})
REFUND_PENDING_RETRY = timedelta(seconds=60)  # a refund the provider accepted is asked about this often
BROADCAST_ATTEMPTS = 3  # an announcement is not worth a day of retries
MAX_ATTEMPTS = 12  # notices give up after this many failures; deliveries and refunds never give up
LEASE = timedelta(seconds=60)  # a claimed row is left alone this long by other dispatchers
SEND_TIMEOUT = 45.0  # a send (queueing included) ends well inside the lease, so no one else sends the row meanwhile
VAULT_RETRY = timedelta(minutes=10)  # codes that do not decrypt: the keys may be fixed; retry without counting
PARTS = "parts"  # payload key: the parts of a row's messages that went out (index -> message reference)
PARTED_KINDS = frozenset({"deliver", "reissue", "delete"})

# What a send came to: (sent, error, extra: what follows from it, e.g. the parts that went out, a deletion due).
SendOutcome = tuple[bool, str, dict[str, Any]]


class LeaseLost(Exception):
    """The row's lease passed to another dispatcher: this one stops sending it."""


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(5 * 2**attempts, 3600))


async def load_stored(uow: UnitOfWork, orders: Sequence[Order]) -> dict[str, list[StoredCode]]:
    """The encrypted codes of orders. Reusable orders get their pinned code. Burned codes (recalled and
    replaced, core/aftersales/) are never sent or shown again."""
    # Sorted by product: a bundle's codes come grouped by part (its parts in product id order; handlers/orders.py).
    stored = {oid: sorted((c for c in rows if c.status is not CodeStatus.BURNED), key=lambda c: (c.product_id, c.id))
              for oid, rows in
              (await uow.codes.for_orders([o.id for o in orders if not o.reusable_code_id])).items()}
    reusable_ids = sorted({o.reusable_code_id for o in orders if o.reusable_code_id})
    reusable = {c.id: c for c in await uow.codes.get_many(reusable_ids)} if reusable_ids else {}
    return {o.id: [reusable[o.reusable_code_id]] if o.reusable_code_id in reusable else stored.get(o.id, [])
            for o in orders}


def decrypt_codes(vault: Vault, rows: Sequence[StoredCode]) -> list[str]:
    """Plain codes of one order, in memory only; raises VaultError when any does not decrypt."""
    return [vault.decrypt(c.id, c.key_id, c.nonce, c.ciphertext) for c in rows]


def decrypt_all(vault: Vault, stored: Mapping[str, list[StoredCode]]) -> dict[str, list[str]]:
    """Plain codes, in memory only, on their way to the buyer. An order whose codes do not decrypt is left
    out (and logged by order id): it must not hold up the other orders of the batch."""
    out: dict[str, list[str]] = {}
    for oid, rows in stored.items():
        try:
            out[oid] = decrypt_codes(vault, rows)
        except VaultError as exc:
            log.error("outbox: the codes of order %s do not decrypt (%s)", oid, exc)
    return out


async def load_codes(uow: UnitOfWork, vault: Vault, orders: Sequence[Order]) -> dict[str, list[str]]:
    return decrypt_all(vault, await load_stored(uow, orders))


@dataclass(slots=True)
class Handoff:
    """A delivery committed by a payment batch, handed straight to the dispatcher (its row is leased)."""

    item: OutboxItem
    order: Order
    product: Product
    stored: list[StoredCode]


@dataclass(frozen=True, slots=True)
class ClaimOutbox(QuietRequest[list[OutboxItem]]):
    """Lease up to `limit` due rows."""

    limit: int


@dataclass(frozen=True, slots=True)
class FinishOutbox(QuietRequest[None]):
    """Mark claimed rows sent or failed (with what follows from them: refunds done, deletions due, notices)."""

    outcomes: list[tuple[OutboxItem, SendOutcome]]


@dataclass(frozen=True, slots=True)
class SaveParts(QuietRequest[bool]):
    """Record which parts of a delivery went out (while the row is still leased by this claimer)."""

    row_id: int
    lease: str | None
    payload: dict[str, Any]


class OutboxDispatcher:
    def __init__(self, uow_factory: UnitOfWorkFactory, committer: GroupCommitter, vault: Vault, clock: Clock,
                 notifiers: Mapping[str, Notifier], gateways: Mapping[str, PaymentGateway],
                 *, batch: int = 256, concurrency: int = 32, lease: timedelta = LEASE,
                 send_timeout: float = SEND_TIMEOUT) -> None:
        self.uow = uow_factory
        self.committer = committer
        self.vault = vault
        self.clock = clock
        self.notifiers = notifiers
        self.gateways = gateways
        self.batch = batch
        self.lease = lease
        self.send_timeout = send_timeout
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._handoffs: set[asyncio.Task[None]] = set()
        # Set by the shop: buys from suppliers and top-ups (kinds buy, topup; core/supply/desk.py SupplyDesk).
        self.supply: SupplyDesk | None = None
        # Called in the transaction that marks orders refunded (commission reversal, core/resellers/commissions.py).
        self.refunded_hooks: list[Callable[[UnitOfWork, list[str]], Awaitable[None]]] = []
        self.metrics: Metrics = NO_METRICS  # deliveries, refunds and failures counted once marked (core/metrics.py)
        committer.register(ClaimOutbox, self._claim_batch)
        committer.register(FinishOutbox, self._done_batch)
        committer.register(SaveParts, self._parts_batch)
        committer.on_commit(self._on_commit)

    def _on_commit(self, kinds: set[type]) -> None:
        if any(not issubclass(k, QuietRequest) for k in kinds):
            self._wake.set()

    def on_refunded(self, hook: Callable[[UnitOfWork, list[str]], Awaitable[None]]) -> None:
        """Run `hook` in the transaction that marks orders refunded, with their ids (registered by the composition
        root, app/bootstrap.py)."""
        self.refunded_hooks.append(hook)

    def start(self) -> None:
        if self._task is None:
            self._wake.set()  # whatever a crash left behind goes out first
            self._task = asyncio.create_task(self._loop(), name="outbox")

    def wake(self) -> None:
        """Something was queued outside the group committer: look at the outbox now."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    async def drain(self) -> None:
        """Send everything that is due now, hand-offs in flight included (shutdown, tests)."""
        while self._handoffs:
            await asyncio.gather(*list(self._handoffs), return_exceptions=True)
        await self._poll()

    async def _poll(self) -> None:
        while await self.dispatch_once() == self.batch:
            pass

    def handoff(self, entries: Sequence[Handoff]) -> None:
        """Send deliveries a payment batch just committed, without claiming and re-reading them.

        Their rows were written leased, so the polling loop leaves them alone; if this send fails or the
        process dies, the lease runs out and the loop (or the next start) sends them.
        """
        if not entries or self._task is None:
            return
        task = asyncio.create_task(self._send_handoff(list(entries)), name="outbox-handoff")
        self._handoffs.add(task)
        task.add_done_callback(self._handoffs.discard)

    async def _send_handoff(self, entries: list[Handoff]) -> None:
        codes = decrypt_all(self.vault, {e.order.id: e.stored for e in entries})
        orders = {e.order.id: e.order for e in entries}
        products = {e.product.id: e.product for e in entries}
        items = [e.item for e in entries]
        outcomes = await asyncio.gather(*(self._send(i, orders, products, codes) for i in items))
        await self._finish(items, outcomes)

    async def _finish(self, items: list[OutboxItem], outcomes: Sequence[SendOutcome]) -> None:
        """Mark the rows sent or failed, then count what was marked (committed: a retried batch counts once)."""
        await self.committer.submit(FinishOutbox(list(zip(items, outcomes, strict=True))))
        for item, (ok, _err, extra) in zip(items, outcomes, strict=True):
            if not ok:
                if not extra.get("pending"):  # a refund the provider is still moving is not a failure
                    self.metrics.count("outbox_failures", kind=item.kind)
            elif item.kind in ("deliver", "reissue"):
                self.metrics.count("deliveries", channel=item.channel)
            elif item.kind == "refund":
                reason = str(item.payload.get("reason", ""))  # the store's own reason words; anything else: other
                self.metrics.count("refunds", reason=reason if re.fullmatch(r"[a-z_]{1,32}", reason) else "other")

    async def stop(self) -> None:
        for task in list(self._handoffs):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5)
            self._wake.clear()
            try:
                await self._poll()  # hand-offs are leased and go out on their own; never wait for them here
            except Exception:  # noqa: BLE001 - keep the loop alive; rows stay pending and are retried
                log.exception("outbox dispatch failed")

    async def dispatch_once(self) -> int:
        """Send one batch of due rows; returns how many were attempted."""
        async with self._lock:
            # Claiming leases the rows, so a second process (PostgreSQL) never sends them too.
            items: list[OutboxItem] = await self.committer.submit(ClaimOutbox(self.batch))
            if not items:
                return 0
            async with self.uow() as uow:
                orders = await uow.orders.get_many(sorted({i.order_id for i in items if i.order_id}))
                products = await uow.products.get_many(sorted({o.product_id for o in orders.values()}))
                deliver_orders = [orders[i.order_id] for i in items if i.kind == "deliver" and i.order_id in orders]
                codes = await load_codes(uow, self.vault, deliver_orders)
            outcomes = await asyncio.gather(*(self._send(i, orders, products, codes) for i in items))
            await self._finish(items, outcomes)
            return len(items)

    async def _claim_batch(self, uow: UnitOfWork, claims: Sequence[ClaimOutbox]) -> list[list[OutboxItem]]:
        now = self.clock.now()
        out = []
        for limit in (c.limit for c in claims):
            out.append(await uow.outbox.claim(now, limit, now + self.lease))
        return out

    def _parts(self, item: OutboxItem) -> Parts:
        """The row's record of its parts sent; each save lands only while this claimer holds the row."""
        async def save(done: dict[str, Any]) -> None:
            # A row without an id was never stored as one of its own: nothing to record it on.
            if item.id is None or not await self.committer.submit(
                    SaveParts(item.id, item.lease, {**item.payload, PARTS: done})):
                raise LeaseLost(f"outbox row {item.id} is leased by another dispatcher")
        return Parts(item.payload.get(PARTS), save)

    async def _parts_batch(self, uow: UnitOfWork, saves: Sequence[SaveParts]) -> list[bool]:
        return await uow.outbox.save_payloads([(s.row_id, s.lease, s.payload) for s in saves])

    async def _send(self, item: OutboxItem, orders: Mapping[str, Order], products: Mapping[int, Product],
                    codes: Mapping[str, list[str]]) -> SendOutcome:
        """(sent, error, extra). Errors of deliveries keep only the exception's type: a platform error may
        quote the message, and the message carries the codes. A failure's extra carries the parts that went
        out and are not saved yet (the failed mark saves them)."""
        parts = self._parts(item) if item.kind in PARTED_KINDS else None
        set_order(item.order_id)  # this send's own task: its log lines carry the order (core/logcontext.py)

        def failure(error: str, extra: dict[str, Any]) -> SendOutcome:
            if parts is not None and parts.unsaved:
                extra[PARTS] = dict(parts.done)
            return False, error, extra

        try:
            async with asyncio.timeout(self.send_timeout), self._sem:
                return await self._send_one(item, orders, products, codes, parts)
        except RecipientUnreachable:
            log.warning("outbox %s #%s: recipient unreachable; not retried", item.kind, item.id)
            return failure("RecipientUnreachable", {"unreachable": True})
        except Exception as exc:  # noqa: BLE001 - recorded on the row, retried with backoff
            log.warning("outbox %s #%s failed: %s", item.kind, item.id, type(exc).__name__)
            if item.kind in ("deliver", "reissue"):
                return failure(type(exc).__name__, {})
            return failure(f"{type(exc).__name__}: {exc}"[:500], {})

    async def _send_one(self, item: OutboxItem, orders: Mapping[str, Order], products: Mapping[int, Product],
                        codes: Mapping[str, list[str]], parts: Parts | None = None
                        ) -> SendOutcome:
        parts = parts if parts is not None else Parts()
        if item.kind == "deliver":
            order = orders[item.order_id or ""]
            if order.id not in codes:
                return False, "codes do not decrypt", {"vault": True}
            notifier = self._notifier(item.channel)
            refs = await notifier.deliver(item.recipient, Delivery(order, products[order.product_id], codes[order.id],
                                                                   parts=parts))
            extra: dict[str, Any] = {"codes": len(codes[order.id])}
            delete_after = getattr(notifier, "delete_after", None)
            if refs and delete_after:
                extra["delete"] = (refs, delete_after)
            return True, "", extra
        if item.kind == "reissue":  # a recalled code's replacement (core/aftersales/recalls.py)
            return await self._reissue(item, orders[item.order_id or ""], products, parts)
        if item.kind == "delete":  # one part per message: a retry does not delete a deleted one again
            forgetful = cast(ForgetfulNotifier, self._notifier(item.channel))
            for n, ref in enumerate(item.payload.get("refs", [])):
                await parts.send(n, partial(forgetful.delete, item.recipient, [ref]))
            return True, "", {}
        if item.kind == "refund":
            if not await self._refund(item):
                return False, "refund accepted; waiting for the provider to move the money", {"pending": True}
        elif item.kind in ("buy", "topup") and self.supply is not None:
            return await self.supply.handle(item)
        elif item.kind in ("notify", "broadcast"):  # a broadcast is a notice of lower priority (core/broadcast.py)
            p = item.payload
            notifier = self._notifier(item.channel)
            if p.get("template") and not (isinstance(notifier, TemplateNotifier) and notifier.templates_ready):
                return False, f"no template message set up for {item.channel}", {}
            # a broadcast draws on its own lane of the channel's send limit (core/coordination.py)
            with low_priority() if item.kind == "broadcast" else contextlib.nullcontext():
                if p.get("template"):  # outside the channel's reply window: the merchant's template message
                    await cast(TemplateNotifier, notifier).notify_template(item.recipient, p.get("language", ""),
                                                                           p["key"], p.get("params", {}))
                else:
                    await notifier.notify(item.recipient, p.get("language", ""), p["key"], p.get("params", {}))
        else:
            return False, f"unknown outbox kind {item.kind}", {}
        return True, "", {}

    async def _reissue(self, item: OutboxItem, order: Order, products: Mapping[int, Product], parts: Parts
                       ) -> SendOutcome:
        """The buyer is told the old code was recalled, then gets the new one(s) named in the row (the notice
        is a part of its own: a retry does not tell them again)."""
        async with self.uow() as uow:
            stored = await uow.codes.get_many([int(i) for i in item.payload.get("code_ids", [])])
        try:
            codes = decrypt_codes(self.vault, stored)
        except VaultError as exc:
            log.error("outbox: the replacement codes of order %s do not decrypt (%s)", order.id, exc)
            return False, "codes do not decrypt", {"vault": True}
        notifier = self._notifier(item.channel)
        language, notice = str(item.payload.get("language", "")), str(item.payload.get("notice", "aftersales.recalled"))
        await parts.send("notice", lambda: notifier.notify(item.recipient, language, notice,
                                                           {"order": order.id, "n": len(codes)}))
        refs = await notifier.deliver(item.recipient, Delivery(order, products[order.product_id], codes, parts=parts))
        extra: dict[str, Any] = {"codes": len(codes)}
        delete_after = getattr(notifier, "delete_after", None)
        if refs and delete_after:
            extra["delete"] = (refs, delete_after)
        return True, "", extra

    def _notifier(self, channel: str) -> Notifier:
        n = self.notifiers.get(channel)
        if n is None:
            raise LookupError(f"no notifier for channel {channel!r}")
        return n

    async def _refund(self, item: OutboxItem) -> bool:
        """True once the money went back. A provider that only accepts the refund for now (WeChat Pay) says
        False: the row is asked about again every minute until the provider reports it done."""
        async with self.uow() as uow:
            payment = await uow.payments.get(int(item.payload["payment_id"]))
        if payment is None or payment.status == "refunded":
            return True
        gw = self.gateways.get(payment.provider)
        if gw is None:
            raise LookupError(f"no payment gateway {payment.provider!r} to refund with")
        return await gw.refund(payment, str(item.payload.get("reason", ""))) is not False

    async def _done_batch(self, uow: UnitOfWork, finished: Sequence[FinishOutbox]) -> list[None]:
        batches = [f.outcomes for f in finished]
        now = self.clock.now()
        sent: list[tuple[int, str | None]] = []
        failed: list[tuple[int, str | None, str, datetime, bool, bool]] = []
        audit: list[AuditEntry] = []
        follow_up: list[OutboxItem] = []
        refunded_orders: list[str] = []
        deletions: list[tuple[datetime, OutboxItem]] = []
        progress: list[tuple[int, str | None, dict[str, Any]]] = []
        for pairs in batches:
            for item, (ok, err, extra) in pairs:
                assert item.id is not None
                if not ok:
                    if PARTS in extra:  # what went out before the failure is not sent again
                        progress.append((item.id, item.lease, {**item.payload, PARTS: extra[PARTS]}))
                    if extra.get("vault"):
                        failed.append((item.id, item.lease, err, now + VAULT_RETRY, False, False))
                        continue
                    if extra.get("pending"):  # a refund on its way at the provider: not a failure
                        failed.append((item.id, item.lease, err, now + REFUND_PENDING_RETRY, False, False))
                        continue
                    attempts = item.attempts + 1
                    # Someone who blocked the bot is not written to again (the codes stay in My orders).
                    give_up = bool(extra.get("unreachable")) or (
                        item.kind in ("notify", "delete") and attempts >= MAX_ATTEMPTS) or (
                        item.kind == "broadcast" and attempts >= BROADCAST_ATTEMPTS)
                    failed.append((item.id, item.lease, err, now + backoff(attempts), give_up, True))
                    continue
                sent.append((item.id, item.lease))
                if item.kind in ("deliver", "reissue"):
                    detail = {"chat": item.recipient, "codes": extra.get("codes", 0)}
                    if item.kind == "reissue":
                        detail.update(reissue=True, code_ids=list(item.payload.get("code_ids", [])))
                    audit.append(AuditEntry("deliver", "system", item.channel, now, item.order_id, detail=detail))
                    if "delete" in extra:  # the code message goes away later; "My orders" keeps the codes
                        refs, after = extra["delete"]
                        deletions.append((now + after, OutboxItem(None, "delete", item.channel, item.recipient,
                                                                  item.order_id, {"refs": refs})))
                elif item.kind == "refund":
                    pid = int(item.payload["payment_id"])
                    await uow.payments.set_status(pid, "refunded")
                    reason = str(item.payload.get("reason", ""))
                    if item.order_id and reason in ORDER_REFUNDS:
                        refunded_orders.append(item.order_id)
                    audit.append(AuditEntry("refund", "system", item.channel, now, item.order_id,
                                            detail={"payment_id": pid, "reason": reason}))
                    if item.recipient:
                        follow_up.append(OutboxItem(None, "notify", item.channel, item.recipient, item.order_id, {
                            "key": "refund.done", "language": item.payload.get("language", ""),
                            "params": {"order": item.order_id or "", "reason": reason}}))
        if sent:
            await uow.outbox.mark_sent(sent, now)
        if progress:
            await uow.outbox.save_payloads(progress)  # before the failed mark, which ends the lease
        if failed:
            await uow.outbox.mark_failed(failed)
        if refunded_orders:
            await uow.orders.set_status(refunded_orders, OrderStatus.REFUNDED, now)
            for hook in self.refunded_hooks:
                await hook(uow, refunded_orders)
        if audit:
            await uow.audit.add_many(audit)
        for due, item in deletions:
            await uow.outbox.add_many([item], due_at=due)
        if follow_up:
            await uow.outbox.add_many(follow_up)
            self._wake.set()
        return [None] * len(batches)
