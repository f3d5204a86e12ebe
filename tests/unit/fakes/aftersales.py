"""After-sales tickets in memory: one open ticket per order at most, decided once."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.aftersales import Ticket
from tests.unit.fakes.state import FakeRepo, copied


class FakeTicketRepo(FakeRepo):
    """After-sales tickets (core/aftersales/tickets.py TicketRepo), bound to the transaction like every repository."""

    async def add(self, ticket: Ticket) -> int:
        ticket.id = self.s.next_id()
        self.s.tickets[ticket.id] = copied(ticket)
        return ticket.id

    async def get(self, ticket_id: int) -> Ticket | None:
        return copied(self.s.tickets.get(ticket_id))

    async def open_for_order(self, order_id: str) -> Ticket | None:
        return next((copied(t) for _, t in sorted(self.s.tickets.items())
                     if t.order_id == order_id and t.status == "open"), None)

    def _decide(self, t: Ticket, status: str, actor: str, answer: str, at: datetime) -> None:
        t.status, t.decided_by, t.answer, t.decided_at = status, actor, answer, at

    async def decide(self, ticket_id: int, status: str, actor: str, answer: str, at: datetime) -> bool:
        t = self.s.tickets.get(ticket_id)
        if t is None or t.status != "open":
            return False
        self._decide(t, status, actor, answer, at)
        return True

    async def decide_order(self, order_id: str, status: str, actor: str, answer: str, at: datetime) -> list[int]:
        open_ = [t for _, t in sorted(self.s.tickets.items()) if t.order_id == order_id and t.status == "open"]
        for t in open_:
            self._decide(t, status, actor, answer, at)
        return [t.id for t in open_ if t.id is not None]

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[Ticket]]:
        out: dict[str, list[Ticket]] = {}
        for _, t in sorted(self.s.tickets.items()):
            if t.order_id in order_ids:
                out.setdefault(t.order_id, []).append(copied(t))
        return out
