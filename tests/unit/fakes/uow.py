"""The fake unit of work: one transaction over a copy of the committed state, which repository each of its
attributes is (`REPOS`, the attributes of core.ports.UnitOfWork), write transactions one at a time; and the factory
a test hands to a desk, with the givens (rows put straight into the committed state) and the thens (what was
committed). See the package docstring.
"""
from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from core.clock import Clock, FakeClock
from core.models import AuditEntry, Buyer, CodeStatus, Kind, Order, OrderStatus, OutboxItem, Product, StoredCode
from core.risk import Ban
from tests.unit.fakes.aftersales import FakeTicketRepo
from tests.unit.fakes.cardfaces import FakeCardFaceRepo
from tests.unit.fakes.catalog import FakeCodeRepo, FakeProductRepo
from tests.unit.fakes.orders import FakeAuditRepo, FakeOrderRepo, FakeOutboxRepo, FakePaymentRepo
from tests.unit.fakes.reports import FakeReportRepo
from tests.unit.fakes.risk import FakeRiskRepo
from tests.unit.fakes.state import LONG_AGO, CustomerRow, FakeRepo, Missing, State, copied
from tests.unit.fakes.stock_alerts import FakeStockAlertRepo
from tests.unit.fakes.wechat import FakeNoncePairRepo

REPOS: dict[str, type[FakeRepo]] = {
    "products": FakeProductRepo, "codes": FakeCodeRepo, "orders": FakeOrderRepo, "payments": FakePaymentRepo,
    "outbox": FakeOutboxRepo, "audit": FakeAuditRepo, "risk": FakeRiskRepo, "tickets": FakeTicketRepo,
    "card_faces": FakeCardFaceRepo, "wechat": FakeNoncePairRepo, "reports": FakeReportRepo,
    "stock_alerts": FakeStockAlertRepo,
}


class FakeUnitOfWork:
    """One transaction over a copy of the committed state (core.ports.UnitOfWork). Rolls back unless committed."""

    products: FakeProductRepo
    codes: FakeCodeRepo
    orders: FakeOrderRepo
    payments: FakePaymentRepo
    outbox: FakeOutboxRepo
    audit: FakeAuditRepo
    risk: FakeRiskRepo
    tickets: FakeTicketRepo
    card_faces: FakeCardFaceRepo
    wechat: FakeNoncePairRepo
    reports: FakeReportRepo
    stock_alerts: FakeStockAlertRepo

    def __init__(self, factory: FakeUnitOfWorkFactory, write: bool) -> None:
        self._factory = factory
        self._write = write
        self._state: State | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in REPOS:
            raise RuntimeError(f"uow.{name} used outside `async with`")
        raise Missing(f"uow.{name}: the fake unit of work has no such repository (tests/unit/fakes/)")

    async def __aenter__(self) -> FakeUnitOfWork:
        if self._write:
            if self._factory.writer_task is asyncio.current_task():
                raise RuntimeError("a write transaction inside another one would wait for itself")
            await self._factory.writer.acquire()
            self._factory.writer_task = asyncio.current_task()
        self._state = copy.deepcopy(self._factory.state)
        for name, repo in REPOS.items():
            setattr(self, name, repo(self._state, self._factory.clock))
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        for name in REPOS:
            self.__dict__.pop(name, None)
        self._state = None  # not committed: gone
        if self._write:
            self._factory.writer_task = None
            self._factory.writer.release()

    async def commit(self) -> None:
        assert self._state is not None, "commit outside `async with`"
        self._factory.state = copy.deepcopy(self._state)
        self._factory.commits += 1


class FakeUnitOfWorkFactory:
    """core.ports.UnitOfWorkFactory in memory; `state` is what is committed. The add_* methods put rows straight
    into it (the "given" of a test); the properties read it back."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.state = State()
        self.writer = asyncio.Lock()  # write transactions one at a time, like SQLite's one writer
        self.writer_task: asyncio.Task[Any] | None = None
        self.commits = 0

    def __call__(self, write: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, write)

    # -- given ----------------------------------------------------------------------------------------------
    def add_product(self, sku: str = "CARD", price: int = 1000, *, kind: Kind = Kind.CODE, stars: int | None = None,
                    min_qty: int = 1, max_qty: int = 10, rules: Mapping[str, Any] | None = None,
                    currency: str = "CNY", active: bool = True) -> Product:
        p = Product(self.state.next_id(), sku, kind, {"en": sku}, {}, {}, price, currency, stars, min_qty, max_qty,
                    None, active, dict(rules or {}))
        self.state.products[p.id] = p
        return copied(p)

    def add_codes(self, product: Product, n: int, *, expires_at: datetime | None = None) -> list[int]:
        """n codes in the pool (their ciphertext is a stand-in: the fast tier does not decrypt)."""
        ids = [self.state.next_id() for _ in range(n)]
        status = CodeStatus.REUSABLE if product.kind is Kind.REUSABLE else CodeStatus.AVAILABLE
        for i in ids:
            self.state.codes[i] = StoredCode(i, product.id, status, None, "k1", b"n" * 12, b"c" * 16, expires_at)
        return ids

    def add_customer(self, buyer: Buyer, *, created_at: datetime | None = None, phone: str = "", level: int = 0,
                     reseller: bool = False, person: str = "", link_set: str = "") -> None:
        """A customer the store has known since `created_at` (default: a year ago, not a new account)."""
        self.state.customers[buyer.key] = CustomerRow(buyer, created_at or self.clock.now() - LONG_AGO, phone, level,
                                                      reseller, person, link_set)

    def add_order(self, buyer: Buyer, product: Product, qty: int = 1, *,
                  status: OrderStatus = OrderStatus.DELIVERED, created_at: datetime | None = None,
                  chat_id: str = "") -> Order:
        """An order made earlier. A delivered (or held) pool order takes its codes from the pool, sold (held)."""
        at = created_at or self.clock.now()
        paid = status in (OrderStatus.DELIVERED, OrderStatus.PENDING, OrderStatus.REFUNDING, OrderStatus.REFUNDED)
        o = Order(f"O{self.state.next_id():07d}", buyer, chat_id or buyer.external_id, product.id, qty,
                  product.price, product.price * qty, product.currency, product.stars, status, "en", at,
                  at + timedelta(minutes=15), paid_at=at if paid else None,
                  delivered_at=at if status is OrderStatus.DELIVERED else None)
        if product.kind is Kind.CODE and status in (OrderStatus.DELIVERED, OrderStatus.HELD):
            pool = sorted(i for i, c in self.state.codes.items()
                          if c.product_id == product.id and c.status is CodeStatus.AVAILABLE)[:qty]
            assert len(pool) == qty, "add_codes first"
            for i in pool:
                c = self.state.codes[i]
                c.status = CodeStatus.SOLD if status is OrderStatus.DELIVERED else CodeStatus.HELD
                c.order_id = o.id
        self.state.orders[o.id] = o
        return copied(o)

    def ban(self, kind: str, value: str) -> None:
        self.state.bans[(kind, value)] = Ban(kind, value, "", "merchant", self.clock.now())

    def add_reseller(self, reseller_id: int, name: str) -> None:
        self.state.reseller_names[reseller_id] = name

    # -- then: what is committed -----------------------------------------------------------------------------
    @property
    def orders(self) -> dict[str, Order]:
        return self.state.orders

    @property
    def codes(self) -> dict[int, StoredCode]:
        return self.state.codes

    @property
    def outbox(self) -> list[OutboxItem]:
        return [r.item for r in self.state.outbox]

    @property
    def audit(self) -> list[AuditEntry]:
        return self.state.audit

    def codes_of(self, order_id: str, status: CodeStatus | None = None) -> list[int]:
        return sorted(i for i, c in self.state.codes.items()
                      if c.order_id == order_id and (status is None or c.status is status))

    def pool(self, product: Product) -> list[int]:
        """Codes of the product still for sale."""
        return sorted(i for i, c in self.state.codes.items()
                      if c.product_id == product.id and c.status is CodeStatus.AVAILABLE)
