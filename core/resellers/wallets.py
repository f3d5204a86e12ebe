"""The wallet ledger: every movement is a `wallet_ledger` row (top-up by a merchant, debit for an order, refund
credited back) and the reseller's `balance` column is always the sum of its rows, because both change in the same
transaction and the balance only ever changes by a compare-and-set (`UPDATE ... WHERE balance = <read>`) whose
row count is checked, after the reseller row was locked (`FOR UPDATE` on PostgreSQL).

Here: a merchant's credit of money received, the statement, and `wallet` as a payment provider like Telegram Stars
or WeChat Pay, whose refund credits the wallet back once per payment (the ledger row's `ref` is unique). Debits
for orders are the order batch's (core/resellers/batch.py); top-ups a reseller pays are core/resellers/topups.py."""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from core.errors import ConflictError
from core.models import Payment
from core.ports import UnitOfWorkFactory
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, PROVIDER, WalletEntry

if TYPE_CHECKING:
    from core.clock import Clock


class Wallets:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def top_up(self, reseller_id: int, amount: int, *, actor: str, ref: str = "", note: str = ""
                     ) -> WalletEntry:
        """A merchant credits money received (bank transfer, cash) to the wallet. With `ref` (the payment's
        reference) a repeat of the same top-up is the same ledger row, never a second credit."""
        if amount <= 0:
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        now = self.clock.now()
        ref = f"topup:{ref}" if ref else f"topup:{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        async with self.uow(write=True) as uow:
            r = (await uow.resellers.lock([reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            if await uow.resellers.refs([ref]):
                raise ResellerError(ResellerCode.DUPLICATE_TOPUP, ref=ref)
            entry = WalletEntry(None, reseller_id, "topup", amount, r.balance + amount, ref, now, actor=actor,
                                note=note)
            if not await uow.resellers.set_balance(reseller_id, r.balance, entry.balance_after):
                raise ConflictError("wallet balance changed")
            await uow.resellers.add_entries([entry])
            await uow.commit()
        return entry

    async def statement(self, reseller_id: int, *, limit: int = 50, before_id: int | None = None
                        ) -> list[WalletEntry]:
        """The wallet's movements, newest first (page with before_id = the last row's id)."""
        async with self.uow() as uow:
            return await uow.resellers.entries(reseller_id, max(1, min(limit, 500)), before_id)

    async def ledger_sum(self, reseller_id: int) -> int:
        async with self.uow() as uow:
            return await uow.resellers.ledger_sum(reseller_id)

    async def refund_to_wallet(self, payment: Payment, reason: str) -> None:
        """The wallet gateway's refund: the payment's amount back to the wallet, once (ledger ref per payment)."""
        channel, _, rid = payment.payer.partition(":")
        if channel != CHANNEL or not rid.isdigit():
            raise ResellerError(ResellerCode.NOT_A_WALLET_PAYMENT, payment=payment.id)
        ref = f"refund:{payment.id}"
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            r = (await uow.resellers.lock([int(rid)])).get(int(rid))
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=rid)
            if await uow.resellers.refs([ref]):
                return  # refunded already (a retry of the outbox row)
            entry = WalletEntry(None, r.id, "refund", payment.amount, r.balance + payment.amount, ref, now,
                                payment.order_id, actor="system", note=reason)
            if not await uow.resellers.set_balance(r.id, r.balance, entry.balance_after):
                raise ConflictError("wallet balance changed")
            await uow.resellers.add_entries([entry])
            await uow.commit()


class WalletGateway:
    """The `wallet` payment provider: a refund credits the reseller's wallet back (once per payment)."""

    name = PROVIDER

    def __init__(self, wallets: Wallets) -> None:
        self.wallets = wallets

    async def refund(self, payment: Payment, reason: str) -> None:
        await self.wallets.refund_to_wallet(payment, reason)
