"""The state the fake unit of work holds (the committed one, or one transaction's copy): the rows, as the SQL
tables hold them, and `FakeRepo`, the base of every fake repository, which fails loudly on a method it lacks.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.aftersales import Ticket
from core.cardfaces import CardFace
from core.clock import Clock
from core.models import AuditEntry, Buyer, Order, OrderStatus, OutboxItem, Payment, Product, StoredCode
from core.risk import Ban, BuyerFacts, Challenge, OrderRisk
from core.stock_alerts import StockAlert

LIVE = (OrderStatus.HELD, OrderStatus.PENDING, OrderStatus.DELIVERED)  # orders that count against quotas
REFUNDED = (OrderStatus.REFUNDING, OrderStatus.REFUNDED)
LONG_AGO = timedelta(days=365)  # a customer added without a first-contact time has been one for this long


class Missing(NotImplementedError):
    """A repository method or repository the fake does not have."""


@dataclass(slots=True)
class CustomerRow:
    """A customers row as the rules and the risk check read it (storage/tables.py customers)."""

    buyer: Buyer
    created_at: datetime
    phone: str = ""
    level: int = 0
    reseller: bool = False
    person: str = ""
    link_set: str = ""

    def facts(self) -> BuyerFacts:
        return BuyerFacts(self.phone, self.level, self.reseller, self.created_at, self.person, self.link_set)


@dataclass(slots=True)
class OutboxRow:
    item: OutboxItem
    due_at: datetime


@dataclass(slots=True)
class ChallengeRow:
    challenge: Challenge
    status: str = "open"  # open | passed | failed
    valid_until: datetime | None = None


@dataclass
class State:
    """Everything the store holds, as the committed state or one transaction's copy of it."""

    products: dict[int, Product] = field(default_factory=dict)
    codes: dict[int, StoredCode] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    payments: dict[int, Payment] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    customers: dict[str, CustomerRow] = field(default_factory=dict)
    bans: dict[tuple[str, str], Ban] = field(default_factory=dict)
    order_risk: dict[str, OrderRisk] = field(default_factory=dict)
    challenges: dict[str, ChallengeRow] = field(default_factory=dict)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    reseller_names: dict[int, str] = field(default_factory=dict)  # the resellers table, as card faces read it
    card_faces: dict[int, CardFace] = field(default_factory=dict)
    reseller_users: dict[Buyer, int] = field(default_factory=dict)
    nonce_pairs: dict[str, datetime] = field(default_factory=dict)
    report_events: dict[tuple[date, int, str, str], int] = field(default_factory=dict)  # (day, product, channel, kind)
    stock_alerts: dict[int, tuple[StockAlert, datetime | None]] = field(default_factory=dict)  # id -> alert, told
    last_id: int = 0  # one sequence for every table's ids (ids are only compared within a table)

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id


class FakeRepo:
    """A fake repository over one transaction's state. A method it lacks fails loudly."""

    def __init__(self, state: State, clock: Clock) -> None:
        self.s = state
        self.clock = clock

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise Missing(f"{type(self).__name__}.{name} is not in the fake unit of work (tests/unit/fakes/)")


def copied(x: Any) -> Any:
    return copy.deepcopy(x)
