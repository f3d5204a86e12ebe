"""Codes a supplier recalled (`RecallDesk.burn`, `run.py codes burn`): given in plain text, matched by the vault's
fingerprint (never stored). Available ones are burned (never sold); sold ones are burned and their buyer gets a
replacement from the pool through the outbox (kind `reissue`: "your code was recalled" and the new code), or, when
the pool has none, the order is refunded through the outbox (reason `recalled`); an unpaid hold gets another code or
is given up. Every touched order gets a `recall` audit entry; the merchants are told through the AdminAlerts port."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from core import stock_alerts
from core.aftersales.audit import code_ref
from core.alerts import AdminAlerts
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, CodeStatus, Kind, OrderStatus, OutboxItem, Product, StoredCode
from core.ports import UnitOfWorkFactory
from core.supply import LineParser, parse_lines
from core.vault import Vault

RECALL_REFUND = "recalled"  # the refund reason when a recalled code has no replacement (core/outbox.py)
BATCH = 500  # recalled codes looked up and settled per transaction


class RecallRepo(Protocol):
    """Codes by fingerprint (storage/aftersales.py SqlRecallRepo, on the unit of work as `uow.recalls`): the recall
    finds and burns them, the audit export names them by fingerprint."""

    async def by_fingerprints(self, product_id: int, fingerprints: Sequence[bytes]
                              ) -> list[tuple[StoredCode, bytes]]:
        """The stored codes of a product with these fingerprints (locked for the transaction on PostgreSQL)."""
    async def burn_ids(self, ids: Sequence[int], statuses: Sequence[CodeStatus]) -> int:
        """Burn these codes where they still have one of `statuses`; the rows changed."""
    async def fingerprints(self, ids: Sequence[int]) -> dict[int, bytes]: ...


@dataclass
class BurnReport:
    sku: str
    lines: int = 0
    codes: int = 0  # distinct codes in the file
    burned_available: int = 0  # available (or withdrawn, or held by an unpaid order) codes burned
    reissued: int = 0  # orders that got a replacement
    refunded: int = 0  # orders refunded: no replacement in the pool
    not_found: int = 0  # codes in the file the pool never had
    already_burned: int = 0
    held_swapped: int = 0  # unpaid orders whose held code was swapped for another
    rejected: int = 0  # unreadable lines
    orders: list[str] = field(default_factory=list)  # orders reissued or refunded (for the alert)


class RecallDesk:
    """Burns recalled codes and puts their buyers right."""

    def __init__(self, uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, *,
                 alerts: AdminAlerts | None = None, wake: Callable[[], None] | None = None) -> None:
        self.uow = uow_factory
        self.vault = vault
        self.clock = clock
        self.alerts = alerts
        self.wake = wake

    async def burn(self, sku: str, lines: Iterable[bytes | None], *, actor: str = "cli", channel: str = "cli",
                   progress: Callable[[int], None] | None = None, batch_size: int = BATCH) -> BurnReport:
        """Burn the codes of `lines` (one per line, or CSV with a `code` header) in SKU's pool."""
        async with self.uow() as uow:
            product = await uow.products.by_sku(sku)
        if product is None:
            raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
        if product.kind not in (Kind.CODE, Kind.SUPPLIER):
            raise StoreError(ErrorCode.KIND_NOT_SUPPORTED, sku=sku, kind=product.kind.value)
        report = BurnReport(sku)
        parser = LineParser(datetime(1970, 1, 1, tzinfo=UTC))  # recall files: expiry is no reason to skip
        fp = self.vault.fingerprinter(product.id)
        seen: set[bytes] = set()
        pending: list[bytes] = []
        consumed = 0
        for line_no, size, parsed in parse_lines(lines, parser):
            report.lines = line_no
            consumed += size
            if parsed is None:
                continue
            if isinstance(parsed, str):
                report.rejected += 1
                continue
            f = fp(parsed[0])
            if f in seen:
                continue
            seen.add(f)
            pending.append(f)
            if len(pending) >= batch_size:
                await self._settle(product, pending, report, actor, channel)
                pending = []
                if progress:
                    progress(consumed)
                    consumed = 0
        if pending:
            await self._settle(product, pending, report, actor, channel)
        if progress and consumed:
            progress(consumed)
        report.codes = len(seen)
        async with self.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("burn", actor, channel, self.clock.now(), product_id=product.id,
                                                 detail=_summary(report))])
            await uow.commit()
        if self.alerts is not None and (report.burned_available or report.reissued or report.refunded
                                        or report.held_swapped):
            await self.alerts.alert("aftersales.alert.burned", {
                "sku": sku, "burned": report.burned_available, "reissued": report.reissued,
                "refunded": report.refunded, "not_found": report.not_found,
                "orders": ", ".join(report.orders[:20]) + (" …" if len(report.orders) > 20 else "")})
        return report

    async def _settle(self, product: Product, fps: list[bytes], report: BurnReport, actor: str,
                      channel: str) -> None:
        now = self.clock.now()
        queued = False
        async with self.uow(write=True) as uow:
            found = await uow.recalls.by_fingerprints(product.id, fps)
            report.not_found += len(set(fps) - {f for _, f in found})
            refs = {c.id: code_ref(c.id, f) for c, f in found}
            loose: list[int] = []
            by_order: dict[str, list[StoredCode]] = {}
            for c, _ in found:
                if c.status is CodeStatus.BURNED:
                    report.already_burned += 1
                elif c.status in (CodeStatus.AVAILABLE, CodeStatus.WITHDRAWN, CodeStatus.REUSABLE) or not c.order_id:
                    loose.append(c.id)
                else:  # held or sold: bound to an order
                    by_order.setdefault(c.order_id, []).append(c)
            if loose:
                report.burned_available += await uow.recalls.burn_ids(
                    loose, [CodeStatus.AVAILABLE, CodeStatus.WITHDRAWN, CodeStatus.REUSABLE])
            orders = await uow.orders.get_many(sorted(by_order), for_update=True)
            audit: list[AuditEntry] = []
            outbox: list[OutboxItem] = []
            for oid in sorted(by_order):
                codes = by_order[oid]
                order = orders.get(oid)
                ids = [c.id for c in codes]
                recalled = [refs[i] for i in ids]
                held = [c for c in codes if c.status is CodeStatus.HELD]
                if order is None or order.status not in (OrderStatus.DELIVERED, OrderStatus.HELD) or (
                        held and order.status is not OrderStatus.HELD):
                    # Nothing to put right (the order is being refunded, or was): the codes just go.
                    report.burned_available += await uow.recalls.burn_ids(ids, [CodeStatus.HELD, CodeStatus.SOLD])
                    continue
                fresh = await uow.codes.pick_available(product.id, len(ids), now)
                if order.status is OrderStatus.HELD:  # unpaid: swap the held code, or give the hold up
                    await uow.recalls.burn_ids(ids, [CodeStatus.HELD])
                    report.burned_available += len(ids)
                    if len(fresh) == len(ids) and await uow.codes.hold([(c, oid) for c in fresh]) == len(fresh):
                        report.held_swapped += 1
                        outcome = "swapped"
                    else:
                        await uow.codes.release([oid])
                        await uow.orders.set_status([oid], OrderStatus.CANCELLED, now)
                        await stock_alerts.returned(uow, [(order.product_id, order.qty - len(ids))], now)
                        outcome = "cancelled"
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": outcome, "recalled": recalled, "code_ids": fresh if outcome == "swapped" else []}))
                    continue
                burned = await uow.recalls.burn_ids(ids, [CodeStatus.SOLD])
                if len(fresh) == len(ids) and await uow.codes.hold([(c, oid) for c in fresh]) == len(fresh):
                    await uow.codes.sell_held([oid])
                    outbox.append(OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, oid, {
                        "code_ids": fresh, "recalled": burned, "language": order.language}))
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": "reissued", "recalled": recalled, "code_ids": fresh}))
                    report.reissued += 1
                    report.orders.append(oid)
                    continue
                if fresh:  # not enough for this order: what was picked stays available
                    pass
                payment = next((p for p in await uow.payments.for_order(oid) if p.status == "captured"), None)
                if payment is None:
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": "no_payment", "recalled": recalled}))
                    report.orders.append(oid)
                    continue
                assert payment.id is not None
                await uow.payments.set_status(payment.id, "refund_pending")
                await uow.orders.set_status([oid], OrderStatus.REFUNDING, now)
                others = await uow.codes.burn([oid])  # the order's other codes go with the refund
                outbox.append(OutboxItem(None, "refund", order.buyer.channel, order.chat_id, oid, {
                    "payment_id": payment.id, "reason": RECALL_REFUND, "language": order.language}))
                audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                    "outcome": "refunding", "recalled": recalled, "payment_id": payment.id,
                    "codes_burned": burned + others}))
                report.refunded += 1
                report.orders.append(oid)
            if audit:
                await uow.audit.add_many(audit)
            if outbox:
                await uow.outbox.add_many(outbox)
                queued = True
            await uow.commit()
        if queued and self.wake is not None:
            self.wake()


def _summary(r: BurnReport) -> dict[str, Any]:
    return {"sku": r.sku, "codes": r.codes, "burned_available": r.burned_available, "reissued": r.reissued,
            "refunded": r.refunded, "not_found": r.not_found, "already_burned": r.already_burned,
            "held_swapped": r.held_swapped, "rejected": r.rejected}
