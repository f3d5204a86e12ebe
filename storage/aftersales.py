"""After-sales queries (core/aftersales.py `RecallRepo`): codes found by fingerprint, burned by id, and the
fingerprints the audit export shows in place of codes. Runs on the connection of the unit of work it is given,
so it shares that transaction. Wired by run.py (the composition root)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from core.models import CodeStatus, StoredCode
from storage import tables as t
from storage.repos import _code

CHUNK = 500  # ids / fingerprints per IN (...) list


class SqlRecallRepo:
    """Implements core.aftersales.RecallRepo over the codes table."""

    @staticmethod
    def _conn(uow: Any) -> Any:
        return uow.codes.c

    @staticmethod
    def _pg(uow: Any) -> bool:
        return bool(uow.codes.pg)

    async def by_fingerprints(self, uow: Any, product_id: int, fingerprints: Sequence[bytes]
                              ) -> list[tuple[StoredCode, bytes]]:
        """The stored codes of a product with these fingerprints (locked for this transaction on PostgreSQL)."""
        out: list[tuple[StoredCode, bytes]] = []
        fps = sorted(set(fingerprints))
        for i in range(0, len(fps), CHUNK):
            q = (select(t.codes).where(t.codes.c.product_id == product_id,
                                       t.codes.c.fingerprint.in_(fps[i:i + CHUNK])).order_by(t.codes.c.id))
            if self._pg(uow):
                q = q.with_for_update()
            for r in await self._conn(uow).execute(q):
                out.append((_code(r), bytes(r.fingerprint)))
        return out

    async def burn_ids(self, uow: Any, ids: Sequence[int], statuses: Sequence[CodeStatus]) -> int:
        """Mark these codes burned if they still have one of `statuses`; returns rows changed."""
        n = 0
        ids = sorted(set(ids))
        for i in range(0, len(ids), CHUNK):
            res = await self._conn(uow).execute(
                update(t.codes).where(t.codes.c.id.in_(ids[i:i + CHUNK]),
                                      t.codes.c.status.in_([s.value for s in statuses]))
                .values(status=CodeStatus.BURNED.value))
            n += res.rowcount
        return n

    async def fingerprints(self, uow: Any, ids: Sequence[int]) -> dict[int, bytes]:
        """Fingerprints (keyed HMACs, not the codes) of code rows."""
        out: dict[int, bytes] = {}
        ids = sorted(set(ids))
        for i in range(0, len(ids), CHUNK):
            rows = await self._conn(uow).execute(select(t.codes.c.id, t.codes.c.fingerprint)
                                                 .where(t.codes.c.id.in_(ids[i:i + CHUNK])))
            out.update({r.id: bytes(r.fingerprint) for r in rows})
        return out
