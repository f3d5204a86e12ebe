"""Problems and tickets: what a buyer can report, a ticket and its states, the reissue policy that decides when a
report is answered by a new code at once, the buyer's history, and the storage port for them (`TicketRepo`).
The use cases are `ProblemDesk`'s (problems.py)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.models import Buyer, Kind, Order

PROBLEMS = ("not_working", "used", "wrong_product", "topup_missing", "other")  # aftersales.problem.*
TOPUP_PROBLEMS = ("topup_missing", "other")  # a top-up has no code: only these make sense for it


def problems_for(kind: Kind) -> tuple[str, ...]:
    """What a buyer can report about an order of a product of this kind."""
    return TOPUP_PROBLEMS if kind is Kind.TOPUP else tuple(p for p in PROBLEMS if p != "topup_missing")


AUTO_PROBLEMS = frozenset({"not_working", "used"})  # what an automatic reissue can answer
HISTORY = timedelta(days=30)
MAX_NOTE = 500  # characters of the buyer's own description kept with a ticket
TICKET_STATUSES = ("open", "reissued", "refunded", "rejected")
TICKET_REF = re.compile(r"^[Tt](\d{1,9})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_note(text: str) -> str:
    """The buyer's words as stored: control characters dropped, at most MAX_NOTE characters. Kept as plain text
    (every channel escapes it when shown; nothing ever runs it)."""
    return _CONTROL.sub("", text).strip()[:MAX_NOTE]


def ticket_id_of(ref: str) -> int | None:
    """12 for "T12" (or "t12"); None for anything else (an order id starts with a digit)."""
    m = TICKET_REF.match(ref.strip())
    return int(m.group(1)) if m else None


@dataclass(slots=True)
class Ticket:
    id: int | None
    order_id: str
    buyer: Buyer
    problem: str
    why: str
    note: str
    status: str  # open | reissued | refunded | rejected
    created_at: datetime
    answer: str = ""
    decided_at: datetime | None = None
    decided_by: str = ""

    @property
    def ref(self) -> str:
        return f"T{self.id}"


@dataclass(slots=True)
class HistoryItem:
    """One line of a buyer's history: a purchase (a paid order), a reveal of its codes, or a ticket."""

    kind: str  # purchase | reveal | ticket
    at: datetime
    order_id: str
    product_id: int | None = None
    qty: int = 0
    status: str = ""  # the order's or the ticket's status
    chat: str = ""  # reveal: where the codes were shown
    channel: str = ""
    ticket: Ticket | None = None


class TicketRepo(Protocol):
    """Tickets and a buyer's history in storage (storage/aftersales.py SqlTicketRepo, on the unit of work as
    `uow.tickets`)."""

    async def add(self, ticket: Ticket) -> int: ...
    async def get(self, ticket_id: int) -> Ticket | None: ...
    async def open_for_order(self, order_id: str) -> Ticket | None: ...
    async def decide(self, ticket_id: int, status: str, actor: str, answer: str, at: datetime) -> bool:
        """Close one ticket if it is still open; False when it was not (decided already)."""
    async def decide_order(self, order_id: str, status: str, actor: str, answer: str, at: datetime) -> list[int]:
        """Close every open ticket of an order; their ids."""
    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[Ticket]]: ...
    async def open_list(self, limit: int, offset: int) -> list[Ticket]:
        """Open tickets, oldest first (the merchant's queue)."""
    async def history(self, buyer: Buyer, limit: int, offset: int) -> list[HistoryItem]:
        """The buyer's paid orders, reveals and tickets, newest first."""


@dataclass(frozen=True, slots=True)
class ReissuePolicy:
    """When a buyer's report is answered by a new code at once (per product: `catalog[].aftersales`).

    auto: reissue automatically at all; reissues_per_order: how many times one order may be reissued;
    window_hours: how long after delivery; max_reports: a clean history is fewer than this many reports by the
    buyer in the last 30 days (this one not counted)."""

    auto: bool = True
    reissues_per_order: int = 1
    window_hours: int = 24
    max_reports: int = 2


@dataclass(slots=True)
class ProblemOutcome:
    order: Order
    outcome: str  # reissued | ticket | unused (the supplier says the code is valid and unused: nothing reissued)
    why: str = ""  # for a ticket: reason | kind | window | limit | history | no_stock | off | checked
    ticket: int | None = None

