"""After-sales queries (core/aftersales `RecallRepo`, `TicketRepo`): codes found by fingerprint, burned by id,
the fingerprints the audit export shows in place of codes; tickets and the buyer's history. Repositories of the
unit of work (`uow.recalls`, `uow.tickets`, built by storage/db.py on the transaction's connection)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from core.aftersales import HistoryItem, Ticket
from core.models import Buyer, CodeStatus, StoredCode
from storage import tables as t
from storage.base import SqlRepo
from storage.catalog import stored_code

CHUNK = 500  # ids / fingerprints per IN (...) list


class SqlRecallRepo(SqlRepo):
    """Implements core.aftersales.RecallRepo over the codes table."""

    async def by_fingerprints(self, product_id: int, fingerprints: Sequence[bytes]) -> list[tuple[StoredCode, bytes]]:
        """The stored codes of a product with these fingerprints (locked for this transaction on PostgreSQL)."""
        out: list[tuple[StoredCode, bytes]] = []
        fps = sorted(set(fingerprints))
        for i in range(0, len(fps), CHUNK):
            q = (select(t.codes).where(t.codes.c.product_id == product_id,
                                       t.codes.c.fingerprint.in_(fps[i:i + CHUNK])).order_by(t.codes.c.id))
            if self.pg:
                q = q.with_for_update()
            for r in await self.c.execute(q):
                out.append((stored_code(r), bytes(r.fingerprint)))
        return out

    async def burn_ids(self, ids: Sequence[int], statuses: Sequence[CodeStatus]) -> int:
        """Mark these codes burned if they still have one of `statuses`; returns rows changed."""
        n = 0
        ids = sorted(set(ids))
        for i in range(0, len(ids), CHUNK):
            res = await self.c.execute(
                update(t.codes).where(t.codes.c.id.in_(ids[i:i + CHUNK]),
                                      t.codes.c.status.in_([s.value for s in statuses]))
                .values(status=CodeStatus.BURNED.value))
            n += res.rowcount
        return n

    async def fingerprints(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Fingerprints (keyed HMACs, not the codes) of code rows."""
        out: dict[int, bytes] = {}
        ids = sorted(set(ids))
        for i in range(0, len(ids), CHUNK):
            rows = await self.c.execute(select(t.codes.c.id, t.codes.c.fingerprint)
                                        .where(t.codes.c.id.in_(ids[i:i + CHUNK])))
            out.update({r.id: bytes(r.fingerprint) for r in rows})
        return out


def _ticket(r: Any) -> Ticket:
    return Ticket(r.id, r.order_id, Buyer(r.buyer_channel, r.buyer_id), r.problem, r.why, r.note, r.status,
                  r.created_at, r.answer, r.decided_at, r.decided_by)


class SqlTicketRepo(SqlRepo):
    """Implements core.aftersales.TicketRepo over the tickets table (migration 0007_aftersales_more)."""

    async def add(self, ticket: Ticket) -> int:
        res = await self.c.execute(insert(t.tickets).values(
            order_id=ticket.order_id, buyer_channel=ticket.buyer.channel, buyer_id=ticket.buyer.external_id,
            problem=ticket.problem, why=ticket.why, note=ticket.note, status=ticket.status, answer=ticket.answer,
            created_at=ticket.created_at).returning(t.tickets.c.id))
        ticket.id = int(res.scalar_one())
        return ticket.id

    async def get(self, ticket_id: int) -> Ticket | None:
        row = (await self.c.execute(select(t.tickets).where(t.tickets.c.id == ticket_id))).first()
        return _ticket(row) if row is not None else None

    async def open_for_order(self, order_id: str) -> Ticket | None:
        c = t.tickets.c
        row = (await self.c.execute(select(t.tickets).where(c.order_id == order_id, c.status == "open")
                                    .order_by(c.id).limit(1))).first()
        return _ticket(row) if row is not None else None

    async def decide(self, ticket_id: int, status: str, actor: str, answer: str, at: datetime) -> bool:
        c = t.tickets.c
        res = await self.c.execute(update(t.tickets).where(c.id == ticket_id, c.status == "open")
                                   .values(status=status, decided_by=actor, answer=answer, decided_at=at))
        return res.rowcount == 1

    async def decide_order(self, order_id: str, status: str, actor: str, answer: str, at: datetime) -> list[int]:
        c = t.tickets.c
        res = await self.c.execute(update(t.tickets).where(c.order_id == order_id, c.status == "open")
                                   .values(status=status, decided_by=actor, answer=answer, decided_at=at)
                                   .returning(c.id))
        return sorted(int(i) for i in res.scalars())

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[Ticket]]:
        out: dict[str, list[Ticket]] = {}
        ids = sorted(set(order_ids))
        for i in range(0, len(ids), CHUNK):
            rows = await self.c.execute(select(t.tickets).where(t.tickets.c.order_id.in_(ids[i:i + CHUNK]))
                                        .order_by(t.tickets.c.id))
            for r in rows:
                out.setdefault(r.order_id, []).append(_ticket(r))
        return out

    async def open_list(self, limit: int, offset: int) -> list[Ticket]:
        c = t.tickets.c
        rows = await self.c.execute(select(t.tickets).where(c.status == "open").order_by(c.id)
                                    .limit(limit).offset(offset))
        return [_ticket(r) for r in rows]

    async def history(self, buyer: Buyer, limit: int, offset: int) -> list[HistoryItem]:
        """Newest first over three sources, each read only as deep as the page needs (offset + limit)."""
        depth = offset + limit
        conn = self.c
        o, a, k = t.orders.c, t.audit.c, t.tickets.c
        items: list[HistoryItem] = []
        rows = await conn.execute(select(t.orders).where(o.buyer_channel == buyer.channel,
                                                         o.buyer_id == buyer.external_id, o.paid_at.is_not(None))
                                  .order_by(o.created_at.desc(), o.id.desc()).limit(depth))
        items += [HistoryItem("purchase", r.paid_at, r.id, r.product_id, r.qty, r.status, r.chat_id,
                              r.buyer_channel) for r in rows]
        rows = await conn.execute(select(t.audit).where(a.action == "reveal", a.actor == buyer.key)
                                  .order_by(a.at.desc(), a.id.desc()).limit(depth))
        items += [HistoryItem("reveal", r.at, r.order_id or "", r.product_id, int((r.detail or {}).get("codes", 0)),
                              "", str((r.detail or {}).get("chat", "")), r.channel) for r in rows]
        rows = await conn.execute(select(t.tickets).where(k.buyer_channel == buyer.channel,
                                                          k.buyer_id == buyer.external_id)
                                  .order_by(k.created_at.desc(), k.id.desc()).limit(depth))
        for r in rows:
            tk = _ticket(r)
            items.append(HistoryItem("ticket", tk.created_at, tk.order_id, status=tk.status, ticket=tk))
        rank = {"purchase": 0, "reveal": 1, "ticket": 2}
        items.sort(key=lambda i: (i.at, rank[i.kind]), reverse=True)
        return items[offset:depth]
