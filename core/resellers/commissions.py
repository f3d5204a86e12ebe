"""Commissions (分销) on the paid orders of customers a reseller referred (`/start ref_<id>`): accrued by a hook in
the transaction that pays the orders (`OrderBook.on_paid`), reversed by one in the transaction that refunds them
(`OutboxDispatcher.on_refunded`), each once (the row's unique `ref`: `accrue:<order>`, `reverse:<order>`), and paid
out by a merchant, never beyond the balance (the sum of the rows)."""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.models import AuditEntry, Order
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, REF_PREFIX, CommissionEntry, ResellerPolicy, commission_of

if TYPE_CHECKING:
    from core.clock import Clock


class CommissionBook:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: ResellerPolicy) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy  # its rates (config `resellers`)

    async def accrue(self, uow: UnitOfWork, orders: Sequence[Order]) -> None:
        """In a payment batch's transaction: a commission row for each paid order of a referred customer (at most
        one per order: the ref is unique). A reseller's own identities earn nothing on their own orders."""
        rates = self.policy.commission
        chat = [o for o in orders if o.buyer.channel != CHANNEL and o.amount > 0]
        if not chat or not (rates.default_bp or any(rates.by_reseller.values())):
            return  # no commissions configured: not even the customers' read
        buyers = sorted({o.buyer for o in chat}, key=lambda b: b.key)
        payloads = await uow.resellers.referrals(buyers)
        ref_of = {k: int(v[len(REF_PREFIX):]) for k, v in payloads.items()
                  if v.startswith(REF_PREFIX) and v[len(REF_PREFIX):].isdigit() and len(v) < 20}
        if not ref_of:
            return
        own = await uow.resellers.owned([b for b in buyers if b.key in ref_of])
        resellers = {rid: await uow.resellers.get(rid) for rid in sorted(set(ref_of.values()))}
        now = self.clock.now()
        rows: list[CommissionEntry] = []
        for o in chat:
            r = resellers.get(ref_of.get(o.buyer.key, -1))
            if r is None or r.status != "active" or o.buyer.key in own:
                continue
            amount = commission_of(o.amount, rates.rate(r))
            if amount > 0:
                rows.append(CommissionEntry(None, r.id, "accrual", amount, o.currency, f"accrue:{o.id}", now, o.id,
                                            actor=o.buyer.key))
        if rows:
            known = await uow.resellers.commission_refs([e.ref for e in rows])
            await uow.resellers.add_commissions([e for e in rows if e.ref not in known])

    async def reverse(self, uow: UnitOfWork, order_ids: Sequence[str]) -> None:
        """In the refund's transaction: the commission of each refunded order is taken back (once)."""
        if not order_ids:
            return
        accrued = await uow.resellers.commission_refs([f"accrue:{oid}" for oid in order_ids])
        if not accrued:
            return
        done = await uow.resellers.commission_refs([f"reverse:{e.order_id}" for e in accrued.values()])
        now = self.clock.now()
        await uow.resellers.add_commissions([
            CommissionEntry(None, e.reseller_id, "reversal", -e.amount, e.currency, f"reverse:{e.order_id}", now,
                            e.order_id, actor="system", note="order refunded")
            for e in accrued.values() if f"reverse:{e.order_id}" not in done])

    async def payout(self, reseller_id: int, amount: int, *, actor: str, note: str = "") -> CommissionEntry:
        """A merchant records a commission paid out to a reseller: never more than its commission balance (the
        reseller's row is locked meanwhile, so two payouts cannot both spend the same balance)."""
        if amount <= 0:
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            r = (await uow.resellers.lock([reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            have = await uow.resellers.commission_sum(reseller_id)
            if amount > have:
                raise ResellerError(ResellerCode.INSUFFICIENT_COMMISSION, needed=amount, available=have)
            e = CommissionEntry(None, reseller_id, "payout", -amount, r.currency,
                                f"payout:{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}", now, actor=actor, note=note[:200])
            await uow.resellers.add_commissions([e])
            await uow.audit.add_many([AuditEntry("reseller", actor, CHANNEL, now, detail={
                "reseller": reseller_id, "op": "payout", "amount": amount})])
            await uow.commit()
        return e

    async def commissions(self, reseller_id: int, *, limit: int = 20) -> tuple[int, list[CommissionEntry]]:
        """The commission balance (accrued - reversed - paid out) and the newest entries."""
        async with self.uow() as uow:
            return (await uow.resellers.commission_sum(reseller_id),
                    await uow.resellers.commission_entries(reseller_id, max(1, min(limit, 500))))
