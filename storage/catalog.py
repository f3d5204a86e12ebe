"""The catalogue's storage: products (`uow.products`) and their codes (`uow.codes`: the pool, claims by a
conditional update whose row count is checked, ciphertext for the vault's rekey, stock counts). Set-based methods
keep a batch's statement count fixed."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, literal_column, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.models import BundlePart, CodeStatus, Kind, NewCode, Product, ProductSpec, StockLine, StoredCode
from storage import tables as t
from storage.base import OFF_LOOP, SqlRepo

PRODUCT_EDITABLE = {"price", "stars", "title", "active", "rules", "bundle"}  # rules: a merchant command; bundle:
# a bundle's parts resolved to their ids and titles (Shop.sync_catalog)

# Run on every screen, built once: SQLAlchemy then skips building the statement and its cache key.
_c = t.codes.c
_AVAILABLE_CAPPED = select(func.count()).select_from(
    select(literal_column("1")).select_from(t.codes)
    .where(_c.product_id == bindparam("pid"), _c.status == CodeStatus.AVAILABLE.value,
           or_(_c.expires_at.is_(None), _c.expires_at > bindparam("now")))
    .limit(bindparam("cap")).subquery())


def _product(r: Row[Any]) -> Product:
    return Product(r.id, r.sku, Kind(r.kind), r.title, r.description, r.category, r.price, r.currency, r.stars,
                   r.min_qty, r.max_qty, r.hold_minutes, r.active, r.rules or {}, r.source, r.image,
                   [BundlePart.from_json(x) for x in r.bundle or ()])


class ProductRepo(SqlRepo):
    async def get(self, product_id: int) -> Product | None:
        r = (await self.c.execute(select(t.products).where(t.products.c.id == product_id))).first()
        return _product(r) if r else None

    async def get_many(self, ids: Sequence[int]) -> dict[int, Product]:
        if not ids:
            return {}
        rows = await self.c.execute(select(t.products).where(self.among(t.products.c.id, ids)))
        return {r.id: _product(r) for r in rows}

    async def by_sku(self, sku: str) -> Product | None:
        r = (await self.c.execute(select(t.products).where(t.products.c.sku == sku))).first()
        return _product(r) if r else None

    async def list(self, active_only: bool = True) -> list[Product]:
        q = select(t.products).order_by(t.products.c.position, t.products.c.id)
        if active_only:
            q = q.where(t.products.c.active.is_(True))
        return [_product(r) for r in await self.c.execute(q)]

    async def upsert(self, spec: ProductSpec, source: str = "config") -> Product:
        now = self._now()
        values = {
            "kind": spec.kind.value, "title": spec.title, "description": spec.description,
            "category": spec.category, "price": spec.price, "currency": spec.currency, "stars": spec.stars,
            "min_qty": spec.min_qty, "max_qty": spec.max_qty, "hold_minutes": spec.hold_minutes,
            "active": spec.active, "rules": spec.rules, "updated_at": now, "position": spec.position,
            "source": source, "bundle": [p.to_json() for p in spec.parts] or None,
        }
        existing = await self.by_sku(spec.sku)
        if existing is None:
            await self.c.execute(t.products.insert().values(sku=spec.sku, created_at=now, **values))
        else:
            await self.c.execute(t.products.update().where(t.products.c.id == existing.id).values(**values))
        got = await self.by_sku(spec.sku)
        assert got is not None
        return got

    async def deactivate_except(self, skus: Sequence[str]) -> None:
        """Take config products no longer listed off sale; products a merchant made by command stay."""
        p = t.products.c
        await self.c.execute(update(t.products).where(p.sku.not_in(list(skus)), p.source == "config",
                                                      p.active.is_(True)).values(active=False))

    async def update(self, product_id: int, values: Mapping[str, Any]) -> None:
        unknown = set(values) - PRODUCT_EDITABLE
        if unknown:
            raise ValueError(f"product fields not editable: {sorted(unknown)}")
        await self.c.execute(update(t.products).where(t.products.c.id == product_id)
                             .values(**values, updated_at=self._now()))


# Rows of `select(t.codes)` are read by position (a Row's attributes cost ten times its unpacking; a payment batch
# reads hundreds of codes), in the table's column order, checked here.
assert tuple(t.codes.c.keys()) == ("id", "product_id", "status", "order_id", "key_id", "nonce", "ciphertext",
                                   "fingerprint", "expires_at")


def stored_code(r: Row[Any]) -> StoredCode:
    cid, product_id, status, order_id, key_id, nonce, ciphertext, _fingerprint, expires_at = r
    return StoredCode(cid, product_id, CodeStatus(status), order_id, key_id, nonce, ciphertext, expires_at)


class CodeRepo(SqlRepo):
    async def next_ids(self, n: int) -> list[int]:
        if self.pg:
            rows = await self.c.execute(text("SELECT nextval('codes_id_seq') FROM generate_series(1, :n)"), {"n": n})
            return [r[0] for r in rows]
        # SQLite: the write transaction (BEGIN IMMEDIATE) makes us the only writer.
        top = (await self.c.execute(select(func.max(t.codes.c.id)))).scalar() or 0
        return list(range(top + 1, top + 1 + n))

    async def insert_ignore(self, codes: Sequence[NewCode]) -> int:
        if not codes:
            return 0
        rows = [
            {"id": c.id, "product_id": c.product_id, "status": c.status.value, "order_id": c.order_id,
             "key_id": c.key_id, "nonce": c.nonce, "ciphertext": c.ciphertext, "fingerprint": c.fingerprint,
             "expires_at": c.expires_at}
            for c in codes
        ]
        if self.pg:
            stmt = pg_insert(t.codes).on_conflict_do_nothing(constraint="uq_codes_fingerprint").returning(t.codes.c.id)
            res = await self.c.execute(stmt, rows)
            return len(res.all())
        res = await self.c.execute(sqlite_insert(t.codes).on_conflict_do_nothing(), rows)
        return res.rowcount

    async def pick_available(self, product_id: int, n: int, now: datetime) -> list[int]:
        if n <= 0:
            return []
        c = t.codes.c
        q = (select(c.id).where(c.product_id == product_id, c.status == CodeStatus.AVAILABLE.value,
                                or_(c.expires_at.is_(None), c.expires_at > now))
             .order_by(c.id).limit(n))
        if self.pg:
            q = q.with_for_update(skip_locked=True)
        return list((await self.c.execute(q)).scalars())

    async def hold(self, assignments: Sequence[tuple[int, str]]) -> int:
        if not assignments:
            return 0
        ordered = sorted(assignments)
        if self.pg:
            res = await self.c.execute(text(
                "UPDATE codes SET status='held', order_id=v.o FROM "
                "(SELECT unnest(CAST(:ids AS bigint[])) AS id, unnest(CAST(:oids AS text[])) AS o) v "
                "WHERE codes.id = v.id AND codes.status = 'available' RETURNING codes.id"),
                {"ids": [a for a, _ in ordered], "oids": [b for _, b in ordered]})
            return len(res.all())
        stmt = (update(t.codes).where(t.codes.c.id == bindparam("cid"),
                                      t.codes.c.status == CodeStatus.AVAILABLE.value)
                .values(status=CodeStatus.HELD.value, order_id=bindparam("oid")))
        res = await self.c.execute(stmt, [{"cid": a, "oid": b} for a, b in ordered])
        return res.rowcount

    async def sell_held(self, order_ids: Sequence[str]) -> int:
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(self.among(c.order_id, order_ids),
                                                         c.status == CodeStatus.HELD.value)
                                   .values(status=CodeStatus.SOLD.value))
        return res.rowcount

    async def burn(self, order_ids: Sequence[str]) -> int:
        """The codes of refunded orders: never sold again (the buyer has seen them)."""
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(
            c.order_id.in_(list(order_ids)), c.status.in_([CodeStatus.SOLD.value, CodeStatus.HELD.value]))
            .values(status=CodeStatus.BURNED.value))
        return res.rowcount

    async def release(self, order_ids: Sequence[str]) -> int:
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(c.order_id.in_(list(order_ids)),
                                                         c.status == CodeStatus.HELD.value)
                                   .values(status=CodeStatus.AVAILABLE.value, order_id=None))
        return res.rowcount

    async def reusable_for(self, product_ids: Sequence[int]) -> dict[int, int]:
        if not product_ids:
            return {}
        c = t.codes.c
        rows = await self.c.execute(select(c.product_id, func.max(c.id)).where(
            c.product_id.in_(list(product_ids)), c.status == CodeStatus.REUSABLE.value).group_by(c.product_id))
        return dict(rows.tuples().all())  # a list: dict() would take a result (it has keys()) for a mapping

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[StoredCode]]:
        if not order_ids:
            return {}
        rows = await self.c.execute(select(t.codes).where(self.among(t.codes.c.order_id, order_ids))
                                    .order_by(t.codes.c.id))
        out: dict[str, list[StoredCode]] = {}
        for code in map(stored_code, rows):
            out.setdefault(code.order_id or "", []).append(code)
        return out

    async def get_many(self, ids: Sequence[int]) -> list[StoredCode]:
        if not ids:
            return []
        rows = await self.c.execute(select(t.codes).where(t.codes.c.id.in_(list(ids))).order_by(t.codes.c.id))
        return [stored_code(r) for r in rows]

    async def not_under_key(self, key_id: str, after_id: int, limit: int) -> list[StoredCode]:
        c = t.codes.c
        rows = await self.c.execute(select(t.codes).where(c.key_id != key_id, c.id > after_id)
                                    .order_by(c.id).limit(limit).prefix_with(OFF_LOOP))
        return [stored_code(r) for r in rows]

    async def update_cipher(self, rows: Sequence[tuple[int, str, bytes, bytes]]) -> None:
        if not rows:
            return
        stmt = (update(t.codes).where(t.codes.c.id == bindparam("cid"))
                .values(key_id=bindparam("kid"), nonce=bindparam("n"), ciphertext=bindparam("ct")))
        await self.c.execute(stmt, [{"cid": a, "kid": b, "n": n, "ct": ct} for a, b, n, ct in rows])

    async def count_not_under_key(self, key_id: str) -> int:
        return (await self.c.execute(select(func.count()).select_from(t.codes).prefix_with(OFF_LOOP)
                                     .where(t.codes.c.key_id != key_id))).scalar() or 0

    async def sample_under_key(self, key_id: str) -> tuple[StoredCode, bytes] | None:
        r = (await self.c.execute(select(t.codes).where(t.codes.c.key_id == key_id).limit(1))).first()
        return (stored_code(r), bytes(r.fingerprint)) if r else None

    async def key_ids(self) -> set[str]:
        return set((await self.c.execute(select(t.codes.c.key_id).distinct().prefix_with(OFF_LOOP))).scalars())

    async def stock(self, now: datetime) -> list[StockLine]:
        c = t.codes.c
        counts: dict[int, dict[str, int]] = {}
        for pid, status, n in await self.c.execute(
                select(c.product_id, c.status, func.count()).group_by(c.product_id, c.status).prefix_with(OFF_LOOP)):
            counts.setdefault(pid, {})[status] = n
        expired: dict[int, int] = dict((await self.c.execute(
            select(c.product_id, func.count()).where(c.status == CodeStatus.AVAILABLE.value, c.expires_at <= now)
            .group_by(c.product_id).prefix_with(OFF_LOOP))).tuples().all())
        prods = await self.c.execute(select(t.products.c.id, t.products.c.sku)
                                     .order_by(t.products.c.position, t.products.c.id))
        out = []
        for pid, sku in prods:
            n = counts.get(pid, {})
            gone = expired.get(pid, 0)
            out.append(StockLine(pid, sku, n.get("available", 0) - gone + n.get("reusable", 0), n.get("held", 0),
                                 n.get("sold", 0), gone, n.get("withdrawn", 0), n.get("burned", 0)))
        return out

    async def available_counts(self, product_ids: Sequence[int], cap: int, now: datetime) -> dict[int, int]:
        out = {}
        for pid in product_ids:
            row = await self.c.execute(_AVAILABLE_CAPPED, {"pid": pid, "now": now, "cap": cap})
            out[pid] = row.scalar() or 0
        return out
