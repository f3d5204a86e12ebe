"""A buyer's "report a problem" and the merchants' answers (`ProblemDesk`).

The buyer reports from "My orders". Where the product's supplier can check a code (`Supplier.check_code`), it is
asked first: "valid" (unused) -> no reissue, the buyer is told so and may still open a ticket; "used"/"invalid", or
a supplier that cannot answer -> the ordinary policy. Within the product's policy (reissues per order, time since
delivery, a clean history: `ReissuePolicy`) the order's codes are burned and replaced at once (outbox kind
`reissue`), outside it a ticket (`tickets` row, `T<id>`) goes to the merchants with reissue / refund / reject
buttons (a `report` audit entry and an alert).

    report -> [supplier check] -> valid: "unused" (no reissue; "open a ticket anyway")
                               -> within policy: reissued (burned + new code)
                               -> outside: ticket open -> reissued | refunded | rejected (reason to the buyer)

The merchant decides a ticket (`reissue`, `reject`; a refund closes it through core/admin.py): the ticket is closed
in the same transaction as the decision, only while open (never decided twice: a second answer is refused with
AftersalesError(TICKET_CLOSED)), and the buyer is told in the chat through the outbox. `history` is the buyer's
own purchases, reveals and tickets, newest first.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.aftersales.errors import AftersalesCode, AftersalesError
from core.aftersales.tickets import (
    AUTO_PROBLEMS,
    HISTORY,
    PROBLEMS,
    HistoryItem,
    ProblemOutcome,
    ReissuePolicy,
    Ticket,
    clean_note,
    problems_for,
    ticket_id_of,
)
from core.alerts import AdminAlerts
from core.clock import Clock
from core.errors import ErrorCode, StoreError, VaultError
from core.models import AuditEntry, Buyer, CodeStatus, Kind, Order, OrderStatus, OutboxItem
from core.outbox import decrypt_codes, load_stored
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.vault import Vault

if TYPE_CHECKING:
    from core.supply import SupplyDesk

log = logging.getLogger(__name__)


class ProblemDesk:
    """A buyer's "report a problem" from My orders: a supplier check where one is offered, an automatic reissue
    within the product's policy, or a ticket to the merchants outside it; and the merchants' answers."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, *,
                 policies: dict[str, ReissuePolicy] | None = None, default: ReissuePolicy | None = None,
                 alerts: AdminAlerts | None = None, wake: Callable[[], None] | None = None,
                 vault: Vault | None = None, supply: SupplyDesk | None = None) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.policies = dict(policies or {})
        self.default = default or ReissuePolicy()
        self.alerts = alerts
        self.wake = wake
        self.vault = vault
        self.supply = supply  # core.supply.SupplyDesk: offer_for / supplier_for (the code check)

    def policy(self, sku: str) -> ReissuePolicy:
        return self.policies.get(sku, self.default)

    async def check_with_supplier(self, buyer: Buyer, order_id: str) -> str:
        """What the product's supplier says of the order's codes: valid (every code unused) | used | invalid |
        unknown (it cannot tell) | error (it did not answer) | "" (no supplier check for this product)."""
        if self.supply is None or self.vault is None:
            return ""
        async with self.uow() as uow:
            order = await uow.orders.get(order_id)
            if order is None or order.buyer != buyer or order.status is not OrderStatus.DELIVERED:
                return ""  # refused with the reason inside report()
            product = await uow.products.get(order.product_id)
            stored = (await load_stored(uow, [order])).get(order.id, [])
        offer = self.supply.offer_for(product) if product else None
        supplier = self.supply.supplier_for(product) if product else None
        if offer is None or supplier is None or not stored:
            return ""
        try:
            codes = decrypt_codes(self.vault, stored)
        except VaultError:
            return "error"
        verdicts = []
        try:
            for code in codes:
                verdicts.append(await supplier.check_code(offer.supplier_sku, code))
        except Exception as exc:  # noqa: BLE001 - a supplier that cannot answer leaves the ordinary policy
            log.warning("supplier check of order %s failed: %s", order.id, type(exc).__name__)
            return "error"
        for bad in ("used", "invalid"):
            if bad in verdicts:
                return bad
        if verdicts and all(v == "valid" for v in verdicts):
            return "valid"
        return "unknown"

    async def report(self, buyer: Buyer, order_id: str, problem: str, note: str = "", *,
                     ticket: bool = False) -> ProblemOutcome:
        """The buyer says the order's code does not work (or another problem): checked, reissued or a ticket.
        `ticket=True`: straight to the merchants (the buyer insists after the supplier said "unused")."""
        if problem not in PROBLEMS:
            raise StoreError(ErrorCode.NOT_FOUND, problem=problem[:20])
        note = clean_note(note)
        check = await self.check_with_supplier(buyer, order_id) if problem in AUTO_PROBLEMS and not ticket else ""
        now = self.clock.now()
        queued = False
        new_ticket = False
        ticket_id: int | None = None
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("report", buyer.key)  # two reports at once cannot both be reissued
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.buyer != buyer:
                raise StoreError(ErrorCode.NOT_YOUR_ORDER)
            if order.status is not OrderStatus.DELIVERED:
                raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
            product = await uow.products.get(order.product_id)
            assert product is not None
            if problem not in problems_for(product.kind):  # e.g. "top-up not received" about a code
                raise StoreError(ErrorCode.NOT_FOUND, problem=problem[:20])
            policy = self.policy(product.sku)
            trail = await uow.audit.for_order(order.id)
            reissues = sum(1 for e in trail
                           if e.action in ("report", "reissue") and e.detail.get("outcome") == "reissued")
            reports = await uow.audit.count("report", buyer.key, since=now - HISTORY)
            why = ""
            unused = check == "valid"
            if unused:
                pass  # the supplier vouches for the code: nothing is reissued, nobody is bothered
            elif ticket:
                why = "checked"
            elif not policy.auto:
                why = "off"
            elif problem not in AUTO_PROBLEMS:
                why = "reason"
            elif product.kind is not Kind.CODE:
                why = "kind"
            elif order.delivered_at is None or now - order.delivered_at > timedelta(hours=policy.window_hours):
                why = "window"
            elif reissues >= policy.reissues_per_order:
                why = "limit"
            elif reports >= policy.max_reports:
                why = "history"
            detail: dict[str, Any] = {"problem": problem, "reissues_before": reissues, "reports_30d": reports}
            if check:
                detail["check"] = check
            if note:
                detail["note"] = note[:200]
            outbox: list[OutboxItem] = []
            if unused:
                detail.update(outcome="unused")
            elif not why:
                old = [c.id for c in (await uow.codes.for_orders([order.id])).get(order.id, [])
                       if c.status is CodeStatus.SOLD]
                fresh = await uow.codes.pick_available(product.id, len(old), now)
                if not old or len(fresh) < len(old):
                    why = "no_stock"
                else:
                    burned = await uow.codes.burn([order.id])
                    if await uow.codes.hold([(c, order.id) for c in fresh]) != len(fresh):
                        raise StoreError(ErrorCode.SOLD_OUT, sku=product.sku, available=0)
                    await uow.codes.sell_held([order.id])
                    outbox.append(OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, order.id, {
                        "code_ids": fresh, "recalled": burned, "language": order.language,
                        "notice": "aftersales.replaced"}))
                    detail.update(outcome="reissued", burned=old, code_ids=fresh)
            if why:
                detail.update(outcome="ticket", why=why)
                existing = await uow.tickets.open_for_order(order.id)
                if existing is not None:  # one open ticket per order: a new report adds to it, no new alert
                    ticket_id = existing.id
                else:
                    ticket_id = await uow.tickets.add(Ticket(None, order.id, buyer, problem, why, note, "open", now))
                    new_ticket = True
                detail["ticket"] = ticket_id
            await uow.audit.add_many([AuditEntry("report", buyer.key, buyer.channel, now, order.id, product.id,
                                                 detail=detail)])
            if outbox:
                await uow.outbox.add_many(outbox)
                queued = True
            await uow.commit()
        if queued and self.wake is not None:
            self.wake()
        if self.alerts is not None and not unused:
            params = {"order": order.id, "sku": product.sku, "buyer": buyer.key, "problem": problem,
                      "why": why or "-"}
            if ticket_id is not None and new_ticket:
                ref = f"T{ticket_id}"
                commands = [("aftersales.button.refund", f"/refund {order.id}"),
                            ("aftersales.button.reject", f"/reject {ref}")]
                if product.kind is Kind.CODE:
                    commands.insert(0, ("aftersales.button.reissue", f"/reissue {ref}"))
                await self.alerts.alert("aftersales.alert.ticket_open", {**params, "ticket": ref,
                                                                         "note": note or "-"}, commands)
            elif ticket_id is None:
                key = "aftersales.alert.ticket" if why else "aftersales.alert.reissued"
                await self.alerts.alert(key, params)
        outcome = "unused" if unused else "ticket" if why else "reissued"
        return ProblemOutcome(order, outcome, why, ticket_id)

    # -- the merchant answers a ticket ---------------------------------------------------------------------
    async def order_of(self, ref: str) -> tuple[str, int | None]:
        """(order id, ticket id) for "T12"; (the text, None) for anything else. Refused (TICKET_NOT_FOUND) when
        there is no such ticket."""
        tid = ticket_id_of(ref)
        if tid is None:
            return ref, None
        async with self.uow() as uow:
            found = await uow.tickets.get(tid)
        if found is None:
            raise AftersalesError(AftersalesCode.TICKET_NOT_FOUND, ticket=f"T{tid}")
        return found.order_id, tid

    async def _close(self, uow: UnitOfWork, order_id: str, ticket_id: int | None, status: str, actor: str,
                     answer: str, now: datetime) -> list[int]:
        """Close the named ticket (it must still be open: refused TICKET_CLOSED, with the state it is in, when it
        was decided meanwhile) or, for a bare order id, its open tickets."""
        if ticket_id is not None:
            if not await uow.tickets.decide(ticket_id, status, actor, answer, now):
                found = await uow.tickets.get(ticket_id)
                raise AftersalesError(AftersalesCode.TICKET_CLOSED, ticket=f"T{ticket_id}",
                                      state=found.status if found else "")
            return [ticket_id]
        return await uow.tickets.decide_order(order_id, status, actor, answer, now)

    async def reissue(self, actor: str, channel: str, order_id: str, ticket_id: int | None = None
                      ) -> tuple[Order, int] | None:
        """A merchant replaces a delivered pool order's codes (a ticket's answer): None when the order cannot be
        reissued (not delivered, not a pool product); (order, 0) when the pool has no replacement. The ticket
        (or the order's open tickets) is closed as reissued in the same transaction."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            product = await uow.products.get(order.product_id)
            if order.status is not OrderStatus.DELIVERED or product is None or product.kind is not Kind.CODE:
                return None
            old = [c.id for c in (await uow.codes.for_orders([order.id])).get(order.id, [])
                   if c.status is CodeStatus.SOLD]
            fresh = await uow.codes.pick_available(product.id, len(old), now)
            if not old or len(fresh) < len(old):
                return order, 0
            closed = await self._close(uow, order.id, ticket_id, "reissued", actor, "", now)
            burned = await uow.codes.burn([order.id])
            if await uow.codes.hold([(c, order.id) for c in fresh]) != len(fresh):
                return order, 0
            await uow.codes.sell_held([order.id])
            await uow.outbox.add_many([OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, order.id, {
                "code_ids": fresh, "recalled": burned, "language": order.language, "notice": "aftersales.replaced"})])
            detail: dict[str, Any] = {"outcome": "reissued", "burned": old, "code_ids": fresh}
            if closed:
                detail["tickets"] = closed
            await uow.audit.add_many([AuditEntry("reissue", actor, channel, now, order.id, product.id,
                                                 detail=detail)])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order, len(fresh)

    async def reject(self, actor: str, channel: str, order_id: str, reason: str, ticket_id: int | None = None
                     ) -> Order:
        """A merchant turns a report down: the buyer gets the reason in the chat; the ticket is closed."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            closed = await self._close(uow, order.id, ticket_id, "rejected", actor, reason, now)
            await uow.outbox.add_many([OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                "key": "aftersales.rejected", "language": order.language,
                "params": {"order": order.id, "answer": reason}})])
            detail: dict[str, Any] = {"outcome": "rejected", "answer": reason}
            if closed:
                detail["tickets"] = closed
            await uow.audit.add_many([AuditEntry("report", actor, channel, now, order.id, order.product_id,
                                                 detail=detail)])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order

    async def close_refunded(self, uow: UnitOfWork, order_id: str, actor: str, now: datetime) -> list[int]:
        """A merchant's refund of the order (core/admin.py, in its transaction) answers its open tickets."""
        return await uow.tickets.decide_order(order_id, "refunded", actor, "", now)

    # -- what the buyer and the merchants see --------------------------------------------------------------
    async def tickets_for(self, order_ids: Sequence[str]) -> dict[str, list[Ticket]]:
        if not order_ids:
            return {}
        async with self.uow() as uow:
            return await uow.tickets.for_orders(order_ids)

    async def open_tickets(self, limit: int, offset: int = 0) -> list[Ticket]:
        async with self.uow() as uow:
            return await uow.tickets.open_list(limit, offset)

    async def history(self, buyer: Buyer, limit: int, offset: int = 0) -> list[HistoryItem]:
        """The buyer's own purchases, reveals (when and in which chat the codes were shown) and tickets."""
        async with self.uow() as uow:
            return await uow.tickets.history(buyer, limit, offset)
