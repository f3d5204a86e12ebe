"""Top-ups the reseller pays itself: a Telegram Stars invoice or a WeChat Pay QR code for a `wallet_topups` row,
whose id (`W...`) is the invoice payload / out_trade_no. The one payment entry (core/payments.py) hands a payment
with such an id to `topup_wallet`, which records it once by (provider, transaction id) and credits one ledger row;
any other payment (another payer, another amount, a top-up paid already, an unknown one, a banned payer) is
recorded and refunded through the outbox. A merchant may give a paid top-up back (`refund_topup`)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from core.errors import ConflictError
from core.models import AuditEntry, Buyer, OutboxItem, Payment, new_order_id
from core.payments import BANNED_PAYER, TOPUP_PREFIX, banned_audit, banned_payers
from core.ports import UnitOfWorkFactory
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, Reseller, ResellerPolicy, Topup, TopupResult, WalletEntry

if TYPE_CHECKING:
    from core.clock import Clock


class Topups:
    """Wallet top-ups paid through a provider (core/payments.py TopupLedger)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: ResellerPolicy, wake: Callable[[], None]
                 ) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.wake = wake  # the outbox dispatcher: a refund to send

    async def start_topup(self, reseller: Reseller, payer: Buyer, amount: int, provider: str,
                          stars: int | None = None) -> Topup:
        """A top-up to be paid: its id goes into the Stars invoice (payload) or the WeChat Pay order
        (out_trade_no); paying it credits `amount` once."""
        if amount <= 0 or (stars is not None and stars <= 0):
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        if reseller.status != "active":
            raise ResellerError(ResellerCode.ACCOUNT_SUSPENDED)
        now = self.clock.now()
        t = Topup(TOPUP_PREFIX + new_order_id(now), reseller.id, amount, reseller.currency, stars, provider,
                  payer.key, "open", now, now + timedelta(minutes=self.policy.topup_minutes))
        async with self.uow(write=True) as uow:
            await uow.resellers.add_topup(t)
            await uow.commit()
        return t

    async def topup(self, topup_id: str) -> Topup | None:
        async with self.uow() as uow:
            return await uow.resellers.topup(topup_id)

    async def topup_payable(self, topup_id: str, payer: Buyer, amount: int, currency: str) -> str | None:
        """Before a provider takes the money (Telegram's pre-checkout): None when this payer may pay this amount
        for this open top-up now, else why not (unknown | not_yours | expired | not_payable | amount)."""
        t = await self.topup(topup_id)
        if t is None:
            return "unknown"
        if t.payer != payer.key:
            return "not_yours"
        if t.status != "open":
            return "not_payable"
        if t.expires_at <= self.clock.now():
            return "expired"
        if (amount, currency) != price_of(t):
            return "amount"
        return None

    async def topup_wallet(self, topup_id: str, provider: str, txn_id: str, amount: int, currency: str,
                           payer: Buyer | None = None, *, any_payer: bool = False) -> TopupResult:
        """A provider says a top-up was paid: recorded once by (provider, txn id); the first payment of an open
        top-up credits the wallet (one ledger row); a repeat of the notice does nothing; any other payment (another
        payer, another amount, a top-up paid already, an unknown one) is refunded through the outbox."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            t = await uow.resellers.topup(topup_id)
            # The reseller's row is locked before the payment is looked for: a concurrent notice of the same
            # payment (another process) waits here and then finds it recorded.
            r = (await uow.resellers.lock([t.reseller_id])).get(t.reseller_id) if t is not None else None
            if await uow.payments.existing([(provider, txn_id)]):
                return TopupResult("duplicate", await uow.resellers.topup(topup_id))
            reason = ""
            banned = await banned_payers(uow, [payer])
            if payer is not None and payer.key in banned:
                reason = BANNED_PAYER
            elif t is None or r is None:
                reason = "unknown_order"
            elif payer is not None and payer.key != t.payer and not any_payer:
                reason = "wrong_payer"
            elif t.provider != provider or (amount, currency) != price_of(t):
                reason = "amount_mismatch"
            elif t.status != "open":
                reason = "paid_twice"
            who = payer.key if payer is not None else (t.payer if t is not None else "")
            [pay] = await uow.payments.insert_many([Payment(None, None, provider, txn_id, amount, currency, who,
                                                            "refund_pending" if reason else "captured", now)])
            balance = None
            if reason:
                channel, _, recipient = who.partition(":")
                await uow.outbox.add_many([OutboxItem(None, "refund", channel, recipient, None, {
                    "payment_id": pay.id, "reason": reason, "language": ""})])
            else:
                assert t is not None and r is not None
                if not await uow.resellers.move_topup(t.id, "open", "paid", {"payment_id": pay.id, "paid_at": now}):
                    raise ConflictError("top-up changed under its payment")
                balance = r.balance + t.amount
                if not await uow.resellers.set_balance(r.id, r.balance, balance):
                    raise ConflictError("wallet balance changed")
                await uow.resellers.add_entries([WalletEntry(None, r.id, "topup", t.amount, balance, f"topup:{t.id}",
                                                             now, actor=who, note=f"{provider} {txn_id}"[:200])])
                t.status, t.payment_id, t.paid_at = "paid", pay.id, now
            await uow.audit.add_many([AuditEntry("topup" if not reason else "refund", who or "system", CHANNEL, now,
                                                 detail={"topup": topup_id, "provider": provider,
                                                         "payment_id": pay.id, "reason": reason})])
            if reason == BANNED_PAYER and payer is not None:
                await uow.audit.add_many([banned_audit(payer, banned[payer.key], provider, txn_id, pay.id, now,
                                                       topup=topup_id)])
            await uow.commit()
        if reason:
            self.wake()
            return TopupResult("refunding", t, reason)
        return TopupResult("credited", t, balance=balance)

    async def refund_topup(self, topup_id: str, *, actor: str) -> WalletEntry:
        """A merchant gives a paid top-up back: the wallet is debited by it (never below the credit limit) and the
        payment refunded through its provider (the outbox retries until the provider takes it)."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            t = await uow.resellers.topup(topup_id)
            if t is None or t.payment_id is None:
                raise ResellerError(ResellerCode.UNKNOWN_TOPUP, topup=topup_id)
            r = (await uow.resellers.lock([t.reseller_id]))[t.reseller_id]
            if t.status != "paid":
                raise ResellerError(ResellerCode.TOPUP_NOT_PAID, topup=topup_id, status=t.status)
            if r.balance + r.credit_limit < t.amount:
                raise ResellerError(ResellerCode.INSUFFICIENT_FUNDS, needed=t.amount,
                                    available=r.balance + r.credit_limit)
            entry = WalletEntry(None, r.id, "topup_back", -t.amount, r.balance - t.amount, f"topup_back:{t.id}", now,
                                actor=actor, note="top-up refunded")
            if not await uow.resellers.move_topup(t.id, "paid", "refunded", {}) or \
                    not await uow.resellers.set_balance(r.id, r.balance, entry.balance_after):
                raise ConflictError("top-up or wallet changed")
            await uow.resellers.add_entries([entry])
            await uow.payments.set_status(t.payment_id, "refund_pending")
            channel, _, recipient = t.payer.partition(":")
            await uow.outbox.add_many([OutboxItem(None, "refund", channel, recipient, None, {
                "payment_id": t.payment_id, "reason": "topup_refund", "language": ""})])
            await uow.audit.add_many([AuditEntry("refund", actor, CHANNEL, now, detail={
                "topup": t.id, "reseller": r.id, "amount": t.amount})])
            await uow.commit()
        self.wake()
        return entry


def price_of(t: Topup) -> tuple[int | None, str]:
    """What the provider charges for a top-up: its Stars (XTR) on Telegram, else its amount in its currency."""
    return (t.stars, "XTR") if t.stars else (t.amount, t.currency)
