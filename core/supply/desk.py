"""Supplier products and top-ups inside an order's life.

    hold -> pay -> [outbox `buy`]   buy upstream (request id B<order>) -> codes into the vault -> deliver
    hold -> pay -> [outbox `topup`] top up upstream (request id T<order>) -> pending -> done | failed
                                     (finished by the supplier's callback or by poll_topups)

The buyer is told each change in the chat (outbox notices): accepted upstream and under way
(aftersales.status.topup_pending), done (topup.done; a purchase: the codes), failed and being refunded
(aftersales.status.topup_failed / supplier_failed), refunded (refund.done, once the provider took it).

A paid supplier/topup order is `pending` until the supplier delivers. A failing supplier is asked again by the
outbox with backoff and the same request id (never a second purchase); when it refuses for good, or after
`max_attempts` tries, the payment is refunded through the outbox and the buyer is told (refund.done).
Bought codes are encrypted and stored like pool codes (sold, bound to the order), so "My orders" and "show
codes again" work the same.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import Clock
from core.errors import SupplierError
from core.models import (
    AuditEntry,
    CodeStatus,
    Kind,
    NewCode,
    Offer,
    Order,
    OrderStatus,
    OutboxItem,
    Product,
    SupplyRequest,
)
from core.outbox import SendOutcome
from core.ports import Supplier, TopupResult, UnitOfWork, UnitOfWorkFactory
from core.vault import Vault

if TYPE_CHECKING:
    from core.shop import Shop

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
POLL_BATCH = 100
MAX_ACCOUNT = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def request_id_for(kind: str, order_id: str) -> str:
    """The idempotency key an order's purchase (B) or top-up (T) carries to the supplier, on every retry."""
    return ("T" if kind == "topup" else "B") + order_id


def order_id_of(request_id: str) -> str | None:
    return request_id[1:] if request_id[:1] in ("B", "T") and len(request_id) > 1 else None


def check_account(account: str, pattern: str) -> str | None:
    """The account as it will be sent (spaces and dashes a buyer types around a phone number dropped), or None
    when it does not fit the product's pattern (or, without one, is empty, too long or has control characters)."""
    text = account.strip()
    if pattern:
        compact = re.sub(r"[\s-]", "", text)
        for candidate in (text, compact):
            if re.fullmatch(pattern, candidate):
                return candidate
        return None
    if not text or len(text) > MAX_ACCOUNT or _CONTROL.search(text):
        return None
    return text


@dataclass(slots=True)
class SupplyOutcome:
    order_id: str
    status: str  # delivered | pending | refunding | skipped


class SupplyDesk:
    """Runs the outbox kinds `buy` and `topup`, finishes top-ups (callbacks, polling). One per shop."""

    def __init__(self, uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.uow = uow_factory
        self.vault = vault
        self.clock = clock
        self.wake = wake
        self.suppliers: dict[str, Supplier] = {}
        self.offers: dict[str, Offer] = {}
        self.max_attempts: dict[str, int] = {}  # per supplier; DEFAULT_MAX_ATTEMPTS when not given

    def attach(self, suppliers: Mapping[str, Supplier], offers: Mapping[str, Offer] | None = None) -> None:
        self.suppliers = dict(suppliers)
        self.offers = dict(offers or getattr(suppliers, "offers", {}) or {})
        for name, s in self.suppliers.items():
            conf = getattr(s, "conf", None)
            self.max_attempts[name] = int(getattr(conf, "max_attempts", DEFAULT_MAX_ATTEMPTS))

    def offer_for(self, product: Product) -> Offer | None:
        return self.offers.get(product.sku)

    def supplier_for(self, product: Product) -> Supplier | None:
        offer = self.offers.get(product.sku)
        return self.suppliers.get(offer.supplier) if offer else None

    # -- the outbox kinds ----------------------------------------------------------------------------
    async def handle(self, item: OutboxItem) -> SendOutcome:
        """One `buy` or `topup` row: (done, error, extra) as the dispatcher expects. A retryable failure is
        returned as not done (the outbox tries again with backoff); a final one refunds and counts as done."""
        async with self.uow() as uow:
            order = await uow.orders.get(item.order_id or "")
            product = await uow.products.get(order.product_id) if order else None
        if order is None or product is None or order.status is not OrderStatus.PENDING:
            return True, "", {}  # finished already (a retry after a crash, or a callback came first)
        offer = self.offers.get(product.sku)
        supplier = self.suppliers.get(offer.supplier) if offer else None
        rid = request_id_for(item.kind, order.id)
        attempts = item.attempts + 1
        limit = self.max_attempts.get(offer.supplier if offer else "", DEFAULT_MAX_ATTEMPTS)
        try:
            if offer is None or supplier is None:
                raise SupplierError(f"no supplier configured for {product.sku}", retryable=True)
            if item.kind == "buy":
                codes = await supplier.buy(offer.supplier_sku, order.qty, rid)
                await self._store_bought(order, product, offer, rid, codes)
                return True, "", {}
            result = await supplier.topup(offer.supplier_sku, order.account, rid)
        except SupplierError as exc:
            if exc.retryable and attempts < limit:
                await self._note(order, offer, item.kind, rid, str(exc))
                return False, f"SupplierError: {exc}"[:500], {}
            reason = "topup_failed" if item.kind == "topup" else "supplier_failed"
            log.warning("supplier for order %s failed for good after %d attempts: %s", order.id, attempts, exc)
            await self._refund(order, offer, item.kind, rid, reason, str(exc))
            return True, "", {}
        await self.finish_topup(result, order=order, offer=offer)
        return True, "", {}

    async def _store_bought(self, order: Order, product: Product, offer: Offer, rid: str, codes: list[str]) -> None:
        now = self.clock.now()
        fp = self.vault.fingerprinter(product.id)
        async with self.uow(write=True) as uow:
            current = (await uow.orders.get_many([order.id], for_update=True)).get(order.id)
            if current is None or current.status is not OrderStatus.PENDING:
                return
            ids = await uow.codes.next_ids(len(codes))
            rows = []
            for cid, code in zip(ids, codes, strict=True):
                kid, nonce, ct = self.vault.encrypt(cid, code)
                rows.append(NewCode(cid, product.id, CodeStatus.SOLD, kid, nonce, ct, fp(code), None, order.id))
            if await uow.codes.insert_ignore(rows) != len(rows):
                # A code this shop already has for the product: sold before, so not sellable again.
                raise SupplierError("the supplier sent a code the shop already has", retryable=False)
            await uow.orders.move(order.id, OrderStatus.PENDING, OrderStatus.DELIVERED, now, delivered=True)
            await uow.supplies.save(self._request(order, offer, "buy", rid, "done", now))
            await uow.outbox.add_many([OutboxItem(None, "deliver", order.buyer.channel, order.chat_id, order.id, {})])
            await uow.audit.add_many([AuditEntry("supplier", "system", order.buyer.channel, now, order.id, product.id,
                                                 detail={"request_id": rid, "supplier": offer.supplier,
                                                         "sku": offer.supplier_sku, "codes": len(codes)})])
            await uow.commit()
        self.wake()

    # -- top-ups -------------------------------------------------------------------------------------
    async def finish_topup(self, result: TopupResult, *, order: Order | None = None,
                           offer: Offer | None = None, supplier: str | None = None) -> SupplyOutcome:
        """Apply what the supplier says about a top-up (its answer, a callback, a poll). Idempotent: a
        second word on a finished order changes nothing. `supplier` (a callback: the supplier whose secret
        signed it) may only finish its own requests: another supplier's is skipped like an unknown one."""
        oid = order.id if order else order_id_of(result.request_id)
        if oid is None:
            return SupplyOutcome("", "skipped")
        sent_to: str | None = None
        if order is None or offer is None or supplier is not None:
            async with self.uow() as uow:
                order = await uow.orders.get(oid)
                product = await uow.products.get(order.product_id) if order else None
                sent = await uow.supplies.get(request_id_for("topup", oid)) if supplier is not None else None
            if order is None or product is None or product.kind is not Kind.TOPUP:
                return SupplyOutcome(oid, "skipped")
            offer = offer or self.offers.get(product.sku) or Offer("", "")
            # Whom the request went to: its supply_requests row (the offer may have changed since), else the offer.
            sent_to = sent.supplier if sent is not None else offer.supplier
        if supplier is not None and supplier != sent_to:
            log.warning("supplier %s sent a result for %r, a request of supplier %s: ignored", supplier,
                        result.request_id, sent_to or "(none)")
            return SupplyOutcome(oid, "skipped")
        if order.status is not OrderStatus.PENDING:
            return SupplyOutcome(order.id, "skipped")
        rid = request_id_for("topup", order.id)
        if result.status == "failed":
            await self._refund(order, offer, "topup", rid, "topup_failed", result.message or "failed")
            return SupplyOutcome(order.id, "refunding")
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if result.status == "done":
                if not await uow.orders.move(order.id, OrderStatus.PENDING, OrderStatus.DELIVERED, now,
                                             delivered=True):
                    return SupplyOutcome(order.id, "skipped")
                await uow.outbox.add_many([OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                    "key": "topup.done", "language": order.language,
                    "params": {"order": order.id, "account": order.account}})])
                await uow.audit.add_many([AuditEntry("supplier", "system", order.buyer.channel, now, order.id,
                                                     order.product_id, detail={"request_id": rid, "topup": "done",
                                                                               "upstream": result.upstream_id})])
            elif (before := await uow.supplies.get(rid)) is None or before.status != "pending":
                # Accepted upstream, not finished: the buyer hears it is under way (once; done or failed follows).
                await uow.outbox.add_many([status_notice(order, "aftersales.status.topup_pending")])
            if offer.supplier:
                await uow.supplies.save(self._request(order, offer, "topup", rid,
                                                      "done" if result.status == "done" else "pending", now,
                                                      upstream=result.upstream_id))
            await uow.commit()
        self.wake()
        return SupplyOutcome(order.id, "delivered" if result.status == "done" else "pending")

    async def poll_topups(self, limit: int = POLL_BATCH) -> int:
        """Ask the suppliers about top-ups they accepted but have not finished; returns how many finished."""
        async with self.uow() as uow:
            pending = await uow.supplies.pending_topups(limit)
        finished = 0
        for req in pending:
            supplier = self.suppliers.get(req.supplier)
            if supplier is None:
                continue
            try:
                result = await supplier.topup_status(req.request_id)
            except SupplierError as exc:
                log.warning("polling top-up %s: %s", req.request_id, exc)
                continue
            if result.status in ("done", "failed"):
                outcome = await self.finish_topup(result, supplier=req.supplier)
                finished += outcome.status in ("delivered", "refunding")
            else:
                async with self.uow(write=True) as uow:  # least recently asked first next time
                    req.updated_at = self.clock.now()
                    await uow.supplies.save(req)
                    await uow.commit()
        return finished

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _request(self, order: Order, offer: Offer, kind: str, rid: str, status: str, now: datetime, *,
                 upstream: str = "", detail: str = "") -> SupplyRequest:
        cost = (offer.cost or 0) * order.qty if status != "failed" else 0
        return SupplyRequest(rid, offer.supplier, offer.supplier_sku, kind, status, now, now, order.id, order.qty,
                             cost, upstream, detail)

    async def _note(self, order: Order, offer: Offer | None, kind: str, rid: str, detail: str) -> None:
        """A failed try the outbox repeats: status `retrying` (not `pending`: polling leaves it alone, the supplier
        may never have seen it)."""
        if offer is None:
            return
        async with self.uow(write=True) as uow:
            existing = await uow.supplies.get(rid)
            if existing is None or existing.status == "retrying":
                await uow.supplies.save(self._request(order, offer, kind, rid, "retrying", self.clock.now(),
                                                      detail=detail))
                await uow.commit()

    async def _refund(self, order: Order, offer: Offer | None, kind: str, rid: str, reason: str, detail: str) -> None:
        """The supplier cannot deliver: refund the order's payment through the outbox; the buyer is told."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            current = (await uow.orders.get_many([order.id], for_update=True)).get(order.id)
            if current is None or current.status is not OrderStatus.PENDING:
                return
            await refund_pending_order(uow, current, reason, now)
            # The buyer hears of the failure now; "refunded" (refund.done) follows once the provider took it.
            await uow.outbox.add_many([status_notice(current, f"aftersales.status.{reason}")])
            if offer is not None and offer.supplier:
                await uow.supplies.save(self._request(order, offer, kind, rid, "failed", now, detail=detail))
            await uow.audit.add_many([AuditEntry("supplier", "system", order.buyer.channel, now, order.id,
                                                 order.product_id, detail={"request_id": rid, "failed": detail[:200]})])
            await uow.commit()
        self.wake()


async def refund_pending_order(uow: UnitOfWork, order: Order, reason: str, now: datetime) -> None:
    """Queue the refund of a paid order that will not be delivered (it becomes refunding, then refunded)."""
    payments = [p for p in await uow.payments.for_order(order.id) if p.status == "captured"]
    await uow.orders.move(order.id, OrderStatus.PENDING, OrderStatus.REFUNDING, now)
    for p in payments[:1]:  # the payment that paid it; any other was refunded as paid_twice already
        assert p.id is not None
        await uow.payments.set_status(p.id, "refund_pending")
        await uow.outbox.add_many([OutboxItem(None, "refund", order.buyer.channel, order.chat_id, order.id,
                                              {"payment_id": p.id, "reason": reason, "language": order.language})])


def status_notice(order: Order, key: str) -> OutboxItem:
    """A message to the buyer that their supplier order changed state (aftersales.status.*)."""
    return OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
        "key": key, "language": order.language, "params": {"order": order.id, "account": order.account}})


async def poll_topups(shop: Shop) -> int:
    """For the scheduler: ask the suppliers about pending top-ups; returns how many finished (done or failed)."""
    return await shop.supply.poll_topups()
