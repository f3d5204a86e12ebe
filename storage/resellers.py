"""Reseller tables (migration 0006_resellers) and core.resellers.ResellerRepo over them. The repository runs on
the connection of the unit of work it is given, so it shares that transaction. The composition root (app/bootstrap.py)
hands it to the ResellerDesk."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    tuple_,
    update,
)

from core.models import Buyer
from core.resellers import ApiKey, CommissionEntry, Reseller, Topup, WalletEntry, Waiting
from storage.tables import TS, BigId, customers, metadata

resellers = Table(
    "resellers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # active | suspended
    Column("discount_percent", Integer, nullable=False, server_default="0"),
    Column("prices", JSON, nullable=False),  # the tier's price list: {sku: minor units}
    Column("credit_limit", BigInteger, nullable=False, server_default="0"),
    # Always the sum of the reseller's wallet_ledger rows: both change in one transaction, by compare-and-set.
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("created_at", TS, nullable=False),
)

wallet_ledger = Table(
    "wallet_ledger", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # topup | debit | refund
    Column("amount", BigInteger, nullable=False),  # signed: + credit, - debit
    Column("balance_after", BigInteger, nullable=False),
    Column("ref", String(96), nullable=False, unique=True),  # order:<id> | refund:<payment id> | topup:<ref>
    Column("order_id", String(24)),
    Column("actor", String(96), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_wallet_ledger_reseller", "reseller_id", "id"),
)

# Idempotency-Key -> order: the same key never makes a second order.
api_idempotency = Table(
    "api_idempotency", metadata,
    Column("reseller_id", Integer, primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("order_id", String(24), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("created_at", TS, nullable=False),
)

# API keys: the secret is encrypted by the vault (the row id is in its associated data).
api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("status", String(12), nullable=False),  # active | revoked
    Column("rate_per_second", Integer, nullable=False),
    Column("vault_key", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", TS, nullable=False),
)

# Nonces of signed requests seen in the last few minutes (replays are refused in every process).
api_nonces = Table(
    "api_nonces", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", TS, nullable=False),
    Index("ix_api_nonces_seen", "seen_at"),
)


# -- wallets paid by the reseller, commissions, waiting orders (migration 0009_wallet_commissions) ---------------------------------------------------
# A top-up the reseller asked to pay (Telegram Stars invoice / WeChat Pay QR): its id is the invoice payload or
# out_trade_no; paid once (status open -> paid -> refunded), the payment's row in `payments` is unique per txn.
wallet_topups = Table(
    "wallet_topups", metadata,
    Column("id", String(24), primary_key=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units of the wallet's currency credited
    Column("currency", String(3), nullable=False),
    Column("stars", Integer),  # the Telegram Stars price, when paid with Stars
    Column("provider", String(24), nullable=False),
    Column("payer", String(96), nullable=False),  # channel:id of whom the invoice was made for
    Column("status", String(12), nullable=False),  # open | paid | refunded
    Column("payment_id", BigInteger),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("paid_at", TS),
)

# Commissions (分销): + accrual per paid order of a referred customer, - reversal when it is refunded,
# - payout recorded by a merchant. The balance is the sum; `ref` is unique (accrue:<order>, reverse:<order>).
commissions = Table(
    "commissions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # accrual | reversal | payout
    Column("amount", BigInteger, nullable=False),  # signed, minor units
    Column("currency", String(3), nullable=False),
    Column("order_id", String(24)),
    Column("ref", String(96), nullable=False, unique=True),
    Column("actor", String(96), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_commissions_reseller", "reseller_id", "id"),
)

# B2B orders waiting for stock (partial policy `wait`): completed first come first served on restock.
b2b_waiting = Table(
    "b2b_waiting", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),  # arrival order: first come first served
    Column("order_id", String(24), nullable=False, unique=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("qty", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("deadline", TS, nullable=False),
    Column("deliver", String(24), nullable=False, server_default=""),  # "" API; else the group order's channel
    Index("ix_b2b_waiting_product", "product_id", "id"),
)


def _reseller(r: Any) -> Reseller:
    return Reseller(r.id, r.name, r.status, r.discount_percent, dict(r.prices or {}), r.credit_limit, r.balance,
                    r.currency, r.created_at)


def _entry(r: Any) -> WalletEntry:
    return WalletEntry(r.id, r.reseller_id, r.kind, r.amount, r.balance_after, r.ref, r.created_at, r.order_id,
                       r.actor, r.note)


class SqlResellerRepo:
    """Implements core.resellers.ResellerRepo."""

    @staticmethod
    def _c(uow: Any) -> Any:
        return uow.codes.c

    @staticmethod
    def _pg(uow: Any) -> bool:
        return bool(uow.codes.pg)

    async def add(self, uow: Any, r: Reseller) -> int:
        res = await self._c(uow).execute(resellers.insert().returning(resellers.c.id).values(
            name=r.name, status=r.status, discount_percent=r.discount_percent, prices=r.prices,
            credit_limit=r.credit_limit, balance=r.balance, currency=r.currency, created_at=r.created_at))
        return int(res.scalar_one())

    async def get(self, uow: Any, reseller_id: int) -> Reseller | None:
        r = (await self._c(uow).execute(select(resellers).where(resellers.c.id == reseller_id))).first()
        return _reseller(r) if r else None

    async def by_name(self, uow: Any, name: str) -> Reseller | None:
        r = (await self._c(uow).execute(select(resellers).where(resellers.c.name == name))).first()
        return _reseller(r) if r else None

    async def lock(self, uow: Any, ids: Sequence[int]) -> dict[int, Reseller]:
        if not ids:
            return {}
        q = select(resellers).where(resellers.c.id.in_(sorted(set(ids)))).order_by(resellers.c.id)
        if self._pg(uow):
            q = q.with_for_update()
        return {r.id: _reseller(r) for r in await self._c(uow).execute(q)}

    async def update(self, uow: Any, reseller_id: int, values: dict[str, Any]) -> None:
        if values:
            await self._c(uow).execute(update(resellers).where(resellers.c.id == reseller_id).values(**values))

    async def set_balance(self, uow: Any, reseller_id: int, old: int, new: int) -> bool:
        res = await self._c(uow).execute(update(resellers).where(
            resellers.c.id == reseller_id, resellers.c.balance == old,
            # never below the credit limit, whatever the caller computed
            resellers.c.credit_limit + new >= 0).values(balance=new))
        return res.rowcount == 1

    async def add_entries(self, uow: Any, entries: Sequence[WalletEntry]) -> None:
        if entries:
            await self._c(uow).execute(wallet_ledger.insert(), [
                {"reseller_id": e.reseller_id, "kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
                 "ref": e.ref, "order_id": e.order_id, "actor": e.actor, "note": e.note, "created_at": e.created_at}
                for e in entries])

    async def refs(self, uow: Any, refs: Sequence[str]) -> set[str]:
        if not refs:
            return set()
        rows = await self._c(uow).execute(select(wallet_ledger.c.ref).where(wallet_ledger.c.ref.in_(list(refs))))
        return {r.ref for r in rows}

    async def entries(self, uow: Any, reseller_id: int, limit: int, before_id: int | None) -> list[WalletEntry]:
        q = select(wallet_ledger).where(wallet_ledger.c.reseller_id == reseller_id)
        if before_id is not None:
            q = q.where(wallet_ledger.c.id < before_id)
        q = q.order_by(wallet_ledger.c.id.desc()).limit(limit)
        return [_entry(r) for r in await self._c(uow).execute(q)]

    async def ledger_sum(self, uow: Any, reseller_id: int) -> int:
        q = select(func.coalesce(func.sum(wallet_ledger.c.amount), 0)).where(wallet_ledger.c.reseller_id == reseller_id)
        return int((await self._c(uow).execute(q)).scalar_one())

    async def idempotent(self, uow: Any, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], tuple[str, str]]:
        if not keys:
            return {}
        c = api_idempotency.c
        rows = await self._c(uow).execute(select(api_idempotency).where(tuple_(c.reseller_id, c.key).in_(list(keys))))
        return {(r.reseller_id, r.key): (r.order_id, r.fingerprint) for r in rows}

    async def add_idempotent(self, uow: Any, rows: Sequence[tuple[int, str, str, str]], at: datetime) -> None:
        if rows:
            await self._c(uow).execute(api_idempotency.insert(), [
                {"reseller_id": rid, "key": key, "order_id": oid, "fingerprint": fp, "created_at": at}
                for rid, key, oid, fp in rows])

    async def next_key_row(self, uow: Any) -> int:
        # Inside the write transaction (SQLite: one writer; PostgreSQL: the unique id refuses a race).
        return int((await self._c(uow).execute(select(func.coalesce(func.max(api_keys.c.id), 0)))).scalar_one()) + 1

    async def add_key(self, uow: Any, key: ApiKey, key_id_vault: str, nonce: bytes, ciphertext: bytes) -> int:
        await self._c(uow).execute(api_keys.insert().values(
            id=key.row_id, key_id=key.key_id, reseller_id=key.reseller_id, status=key.status,
            rate_per_second=key.rate_per_second, vault_key=key_id_vault, nonce=nonce, ciphertext=ciphertext,
            created_at=key.created_at))
        return key.row_id

    async def key(self, uow: Any, key_id: str) -> tuple[ApiKey, str, bytes, bytes] | None:
        r = (await self._c(uow).execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        if r is None:
            return None
        return (ApiKey(r.key_id, r.reseller_id, r.status, r.rate_per_second, r.created_at, r.id), r.vault_key,
                bytes(r.nonce), bytes(r.ciphertext))

    async def set_key_status(self, uow: Any, key_id: str, status: str) -> bool:
        res = await self._c(uow).execute(update(api_keys).where(api_keys.c.key_id == key_id).values(status=status))
        return res.rowcount == 1

    async def seen_nonces(self, uow: Any, pairs: Sequence[tuple[str, str]], at: datetime,
                          forget_before: datetime | None) -> set[tuple[str, str]]:
        c = self._c(uow)
        if forget_before is not None:
            await c.execute(delete(api_nonces).where(api_nonces.c.seen_at < forget_before))
        keys = list(set(pairs))
        rows = await c.execute(select(api_nonces.c.key_id, api_nonces.c.nonce)
                               .where(tuple_(api_nonces.c.key_id, api_nonces.c.nonce).in_(keys)))
        seen = {(r.key_id, r.nonce) for r in rows}
        new = [p for p in keys if p not in seen]
        if new:  # another process inserting the same pair meanwhile: the unique key fails this batch, retried
            await c.execute(api_nonces.insert(), [{"key_id": k, "nonce": n, "seen_at": at} for k, n in new])
        return seen

    # -- second part: owners, top-ups, referrals, commissions, waiting orders -----------------------------------
    # The chat identity that acts for a reseller is its owner (storage/groups.py `reseller_owners`, one a reseller).
    async def owner_of(self, uow: Any, buyer: Buyer) -> int | None:
        from storage.groups import reseller_owners as ro

        r = (await self._c(uow).execute(select(ro.c.reseller_id).where(ro.c.owner == buyer.key))).first()
        return int(r.reseller_id) if r else None

    async def set_owner(self, uow: Any, buyer: Buyer, reseller_id: int | None, at: datetime) -> None:
        from storage.groups import reseller_owners as ro

        if reseller_id is None:
            await self._c(uow).execute(delete(ro).where(ro.c.owner == buyer.key))
            return
        await self._c(uow).execute(delete(ro).where((ro.c.owner == buyer.key) | (ro.c.reseller_id == reseller_id)))
        await self._c(uow).execute(ro.insert().values(reseller_id=reseller_id, owner=buyer.key))

    async def owned(self, uow: Any, buyers: Sequence[Buyer]) -> set[str]:
        from storage.groups import reseller_owners as ro

        if not buyers:
            return set()
        rows = await self._c(uow).execute(select(ro.c.owner).where(ro.c.owner.in_([b.key for b in buyers])))
        return {r.owner for r in rows}

    async def add_topup(self, uow: Any, t: Topup) -> None:
        await self._c(uow).execute(wallet_topups.insert().values(
            id=t.id, reseller_id=t.reseller_id, amount=t.amount, currency=t.currency, stars=t.stars,
            provider=t.provider, payer=t.payer, status=t.status, payment_id=t.payment_id, created_at=t.created_at,
            expires_at=t.expires_at, paid_at=t.paid_at))

    async def topup(self, uow: Any, topup_id: str) -> Topup | None:
        r = (await self._c(uow).execute(select(wallet_topups).where(wallet_topups.c.id == topup_id))).first()
        return Topup(r.id, r.reseller_id, r.amount, r.currency, r.stars, r.provider, r.payer, r.status, r.created_at,
                     r.expires_at, r.payment_id, r.paid_at) if r else None

    async def move_topup(self, uow: Any, topup_id: str, old: str, new: str, values: dict[str, Any]) -> bool:
        res = await self._c(uow).execute(update(wallet_topups).where(
            wallet_topups.c.id == topup_id, wallet_topups.c.status == old).values(status=new, **values))
        return res.rowcount == 1

    async def referrals(self, uow: Any, buyers: Sequence[Buyer]) -> dict[str, str]:
        if not buyers:
            return {}
        c = customers.c
        rows = await self._c(uow).execute(select(c.channel, c.external_id, c.state).where(
            tuple_(c.channel, c.external_id).in_([(b.channel, b.external_id) for b in buyers])))
        out: dict[str, str] = {}
        for r in rows:
            payload = (r.state or {}).get("start_payload")
            if isinstance(payload, str) and payload:
                out[f"{r.channel}:{r.external_id}"] = payload
        return out

    async def add_commissions(self, uow: Any, rows: Sequence[CommissionEntry]) -> None:
        if rows:
            await self._c(uow).execute(commissions.insert(), [
                {"reseller_id": e.reseller_id, "kind": e.kind, "amount": e.amount, "currency": e.currency,
                 "order_id": e.order_id, "ref": e.ref, "actor": e.actor, "note": e.note, "created_at": e.created_at}
                for e in rows])

    async def commission_refs(self, uow: Any, refs: Sequence[str]) -> dict[str, CommissionEntry]:
        if not refs:
            return {}
        rows = await self._c(uow).execute(select(commissions).where(commissions.c.ref.in_(list(refs))))
        return {r.ref: _commission(r) for r in rows}

    async def commission_sum(self, uow: Any, reseller_id: int) -> int:
        q = select(func.coalesce(func.sum(commissions.c.amount), 0)).where(commissions.c.reseller_id == reseller_id)
        return int((await self._c(uow).execute(q)).scalar_one())

    async def commission_entries(self, uow: Any, reseller_id: int, limit: int) -> list[CommissionEntry]:
        q = (select(commissions).where(commissions.c.reseller_id == reseller_id)
             .order_by(commissions.c.id.desc()).limit(limit))
        return [_commission(r) for r in await self._c(uow).execute(q)]

    async def add_waiting(self, uow: Any, rows: Sequence[Waiting]) -> None:
        if rows:
            await self._c(uow).execute(b2b_waiting.insert(), [
                {"order_id": o, "reseller_id": r, "product_id": p, "qty": q, "created_at": at, "deadline": d,
                 "deliver": dv} for o, r, p, q, at, d, dv in rows])

    async def waiting(self, uow: Any, product_ids: Sequence[int] | None) -> list[Waiting]:
        c = b2b_waiting.c
        q = select(b2b_waiting).order_by(c.id)
        if product_ids is not None:
            if not product_ids:
                return []
            q = q.where(c.product_id.in_(list(product_ids)))
        return [(r.order_id, r.reseller_id, r.product_id, r.qty, r.created_at, r.deadline, r.deliver)
                for r in await self._c(uow).execute(q)]

    async def drop_waiting(self, uow: Any, order_ids: Sequence[str]) -> None:
        if order_ids:
            await self._c(uow).execute(delete(b2b_waiting).where(b2b_waiting.c.order_id.in_(list(order_ids))))


def _commission(r: Any) -> CommissionEntry:
    return CommissionEntry(r.id, r.reseller_id, r.kind, r.amount, r.currency, r.ref, r.created_at, r.order_id,
                           r.actor, r.note)
