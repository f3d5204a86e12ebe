"""core.resellers.ResellerRepo over the reseller tables (storage/resellers.py): the unit of work's `resellers`,
bound to its transaction's connection like every repository (storage/db.py builds it)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update

from core.models import Buyer
from core.resellers import ApiKey, CommissionEntry, Reseller, Topup, Waiting, WalletEntry
from storage.base import SqlRepo
from storage.groups import reseller_owners as ro
from storage.resellers import (
    _commission,
    _entry,
    _key,
    _reseller,
    _topup,
    _waiting,
    api_idempotency,
    api_keys,
    api_nonces,
    b2b_waiting,
    commissions,
    resellers,
    wallet_ledger,
    wallet_topups,
)
from storage.tables import customers


class SqlResellerRepo(SqlRepo):
    """Implements core.resellers.ResellerRepo."""

    async def add(self, r: Reseller) -> int:
        res = await self.c.execute(resellers.insert().returning(resellers.c.id).values(
            name=r.name, status=r.status, discount_percent=r.discount_percent, prices=r.prices,
            credit_limit=r.credit_limit, balance=r.balance, currency=r.currency, created_at=r.created_at))
        return int(res.scalar_one())

    async def get(self, reseller_id: int) -> Reseller | None:
        r = (await self.c.execute(select(resellers).where(resellers.c.id == reseller_id))).first()
        return _reseller(r) if r else None

    async def by_name(self, name: str) -> Reseller | None:
        r = (await self.c.execute(select(resellers).where(resellers.c.name == name))).first()
        return _reseller(r) if r else None

    async def lock(self, ids: Sequence[int]) -> dict[int, Reseller]:
        if not ids:
            return {}
        q = select(resellers).where(resellers.c.id.in_(sorted(set(ids)))).order_by(resellers.c.id)
        if self.pg:
            q = q.with_for_update()
        return {r.id: _reseller(r) for r in await self.c.execute(q)}

    async def update(self, reseller_id: int, values: dict[str, Any]) -> None:
        if values:
            await self.c.execute(update(resellers).where(resellers.c.id == reseller_id).values(**values))

    async def set_balance(self, reseller_id: int, old: int, new: int) -> bool:
        res = await self.c.execute(update(resellers).where(
            resellers.c.id == reseller_id, resellers.c.balance == old,
            # never below the credit limit, whatever the caller computed
            resellers.c.credit_limit + new >= 0).values(balance=new))
        return res.rowcount == 1

    async def add_entries(self, entries: Sequence[WalletEntry]) -> None:
        if entries:
            await self.c.execute(wallet_ledger.insert(), [
                {"reseller_id": e.reseller_id, "kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
                 "ref": e.ref, "order_id": e.order_id, "actor": e.actor, "note": e.note, "created_at": e.created_at}
                for e in entries])

    async def refs(self, refs: Sequence[str]) -> set[str]:
        if not refs:
            return set()
        rows = await self.c.execute(select(wallet_ledger.c.ref).where(wallet_ledger.c.ref.in_(list(refs))))
        return {r.ref for r in rows}

    async def entries(self, reseller_id: int, limit: int, before_id: int | None) -> list[WalletEntry]:
        q = select(wallet_ledger).where(wallet_ledger.c.reseller_id == reseller_id)
        if before_id is not None:
            q = q.where(wallet_ledger.c.id < before_id)
        q = q.order_by(wallet_ledger.c.id.desc()).limit(limit)
        return [_entry(r) for r in await self.c.execute(q)]

    async def ledger_sum(self, reseller_id: int) -> int:
        q = select(func.coalesce(func.sum(wallet_ledger.c.amount), 0)).where(wallet_ledger.c.reseller_id == reseller_id)
        return int((await self.c.execute(q)).scalar_one())

    async def idempotent(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], tuple[str, str]]:
        if not keys:
            return {}
        c = api_idempotency.c
        rows = await self.c.execute(select(api_idempotency).where(tuple_(c.reseller_id, c.key).in_(list(keys))))
        return {(r.reseller_id, r.key): (r.order_id, r.fingerprint) for r in rows}

    async def add_idempotent(self, rows: Sequence[tuple[int, str, str, str]], at: datetime) -> None:
        if rows:
            await self.c.execute(api_idempotency.insert(), [
                {"reseller_id": rid, "key": key, "order_id": oid, "fingerprint": fp, "created_at": at}
                for rid, key, oid, fp in rows])

    async def next_key_row(self) -> int:
        # Inside the write transaction (SQLite: one writer; PostgreSQL: the unique id refuses a race).
        return int((await self.c.execute(select(func.coalesce(func.max(api_keys.c.id), 0)))).scalar_one()) + 1

    async def add_key(self, key: ApiKey, key_id_vault: str, nonce: bytes, ciphertext: bytes) -> int:
        await self.c.execute(api_keys.insert().values(
            id=key.row_id, key_id=key.key_id, reseller_id=key.reseller_id, status=key.status,
            rate_per_second=key.rate_per_second, vault_key=key_id_vault, nonce=nonce, ciphertext=ciphertext,
            created_at=key.created_at))
        return key.row_id

    async def key(self, key_id: str) -> tuple[ApiKey, str, bytes, bytes] | None:
        r = (await self.c.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        if r is None:
            return None
        return _key(r), r.vault_key, bytes(r.nonce), bytes(r.ciphertext)

    async def set_key_status(self, key_id: str, status: str) -> bool:
        res = await self.c.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(status=status))
        return res.rowcount == 1

    async def keys(self, reseller_id: int) -> list[ApiKey]:
        c = api_keys.c
        q = (select(c.id, c.key_id, c.reseller_id, c.status, c.rate_per_second, c.created_at)
             .where(c.reseller_id == reseller_id).order_by(c.id.desc()))
        return [_key(r) for r in await self.c.execute(q)]

    async def seen_nonces(self, pairs: Sequence[tuple[str, str]], at: datetime, forget_before: datetime | None
                          ) -> set[tuple[str, str]]:
        if forget_before is not None:
            await self.c.execute(delete(api_nonces).where(api_nonces.c.seen_at < forget_before))
        keys = list(set(pairs))
        rows = await self.c.execute(select(api_nonces.c.key_id, api_nonces.c.nonce)
                                    .where(tuple_(api_nonces.c.key_id, api_nonces.c.nonce).in_(keys)))
        seen = {(r.key_id, r.nonce) for r in rows}
        new = [p for p in keys if p not in seen]
        if new:  # another process inserting the same pair meanwhile: the unique key fails this batch, retried
            await self.c.execute(api_nonces.insert(), [{"key_id": k, "nonce": n, "seen_at": at} for k, n in new])
        return seen

    # -- who acts for a reseller, top-ups, referrals, commissions, waiting orders -----------------------------------
    # The chat identity that acts for a reseller is its owner (storage/groups.py `reseller_owners`, one a reseller).
    async def owner_of(self, buyer: Buyer) -> int | None:
        r = (await self.c.execute(select(ro.c.reseller_id).where(ro.c.owner == buyer.key))).first()
        return int(r.reseller_id) if r else None

    async def set_owner(self, buyer: Buyer, reseller_id: int | None, at: datetime) -> None:
        if reseller_id is None:
            await self.c.execute(delete(ro).where(ro.c.owner == buyer.key))
            return
        await self.c.execute(delete(ro).where((ro.c.owner == buyer.key) | (ro.c.reseller_id == reseller_id)))
        await self.c.execute(ro.insert().values(reseller_id=reseller_id, owner=buyer.key))

    async def owned(self, buyers: Sequence[Buyer]) -> set[str]:
        if not buyers:
            return set()
        rows = await self.c.execute(select(ro.c.owner).where(ro.c.owner.in_([b.key for b in buyers])))
        return {r.owner for r in rows}

    async def add_topup(self, t: Topup) -> None:
        await self.c.execute(wallet_topups.insert().values(
            id=t.id, reseller_id=t.reseller_id, amount=t.amount, currency=t.currency, stars=t.stars,
            provider=t.provider, payer=t.payer, status=t.status, payment_id=t.payment_id, created_at=t.created_at,
            expires_at=t.expires_at, paid_at=t.paid_at))

    async def topup(self, topup_id: str) -> Topup | None:
        r = (await self.c.execute(select(wallet_topups).where(wallet_topups.c.id == topup_id))).first()
        return _topup(r) if r else None

    async def move_topup(self, topup_id: str, old: str, new: str, values: dict[str, Any]) -> bool:
        res = await self.c.execute(update(wallet_topups).where(
            wallet_topups.c.id == topup_id, wallet_topups.c.status == old).values(status=new, **values))
        return res.rowcount == 1

    async def referrals(self, buyers: Sequence[Buyer]) -> dict[str, str]:
        if not buyers:
            return {}
        c = customers.c
        rows = await self.c.execute(select(c.channel, c.external_id, c.state).where(
            tuple_(c.channel, c.external_id).in_([(b.channel, b.external_id) for b in buyers])))
        out: dict[str, str] = {}
        for r in rows:
            payload = (r.state or {}).get("start_payload")
            if isinstance(payload, str) and payload:
                out[f"{r.channel}:{r.external_id}"] = payload
        return out

    async def add_commissions(self, rows: Sequence[CommissionEntry]) -> None:
        if rows:
            await self.c.execute(commissions.insert(), [
                {"reseller_id": e.reseller_id, "kind": e.kind, "amount": e.amount, "currency": e.currency,
                 "order_id": e.order_id, "ref": e.ref, "actor": e.actor, "note": e.note, "created_at": e.created_at}
                for e in rows])

    async def commission_refs(self, refs: Sequence[str]) -> dict[str, CommissionEntry]:
        if not refs:
            return {}
        rows = await self.c.execute(select(commissions).where(commissions.c.ref.in_(list(refs))))
        return {r.ref: _commission(r) for r in rows}

    async def commission_sum(self, reseller_id: int) -> int:
        q = select(func.coalesce(func.sum(commissions.c.amount), 0)).where(commissions.c.reseller_id == reseller_id)
        return int((await self.c.execute(q)).scalar_one())

    async def commission_entries(self, reseller_id: int, limit: int) -> list[CommissionEntry]:
        q = (select(commissions).where(commissions.c.reseller_id == reseller_id)
             .order_by(commissions.c.id.desc()).limit(limit))
        return [_commission(r) for r in await self.c.execute(q)]

    async def add_waiting(self, rows: Sequence[Waiting]) -> None:
        if rows:
            await self.c.execute(b2b_waiting.insert(), [
                {"order_id": w.order_id, "reseller_id": w.reseller_id, "product_id": w.product_id, "qty": w.qty,
                 "created_at": w.created_at, "deadline": w.deadline, "deliver": w.deliver} for w in rows])

    async def waiting(self, product_ids: Sequence[int] | None) -> list[Waiting]:
        c = b2b_waiting.c
        q = select(b2b_waiting).order_by(c.id)
        if product_ids is not None:
            if not product_ids:
                return []
            q = q.where(c.product_id.in_(list(product_ids)))
        return [_waiting(r) for r in await self.c.execute(q)]

    async def drop_waiting(self, order_ids: Sequence[str]) -> None:
        if order_ids:
            await self.c.execute(delete(b2b_waiting).where(b2b_waiting.c.order_id.in_(list(order_ids))))
