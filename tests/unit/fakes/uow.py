"""An in-memory unit of work for the fast tier (tests/unit): the repositories are dicts and lists, the commit
semantics are the real one's (storage/db.py SqlUnitOfWork).

    fake = FakeUnitOfWorkFactory(clock)          # core.ports.UnitOfWorkFactory: hand it to a desk as `uow`
    card = fake.add_product("CARD", price=1000)  # given: rows put straight into the committed state
    fake.add_codes(card, 5)
    async with fake(write=True) as uow:          # when: a use case runs in a transaction
        await book.reserve_batch(uow, [...])
        await uow.commit()
    fake.orders, fake.outbox, fake.codes         # then: what was committed

- Each transaction works on its own copy of the committed state; commit() makes that copy the committed state.
  Without commit (or when the block raises) its changes are gone. Write transactions run one at a time (like
  SQLite's single writer), so a later writer sees what an earlier one committed.
- Repositories hand out copies: changing an object read from them changes nothing until it is written back
  (a use case that forgets the write fails here as it would on the database).
- Only the methods the fast tier's use cases call are here, each with the semantics of its SQL repository
  (storage/repos.py, storage/risk.py, ...). A method or repository the fake lacks raises NotImplementedError
  naming it: add it (with those semantics) when a use case needs it, never a stand-in that pretends.
"""
from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from core.aftersales import Ticket
from core.cardfaces import CardFace
from core.clock import Clock, FakeClock
from core.links import Identity
from core.models import (
    AuditEntry,
    Buyer,
    CodeStatus,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    StoredCode,
)
from core.risk import Activity, Ban, BuyerFacts, Challenge, Counts, OrderRisk

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
    last_id: int = 0  # one sequence for every table's ids (ids are only compared within a table)

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id


class _Repo:
    """A fake repository over one transaction's state. A method it lacks fails loudly."""

    def __init__(self, state: State, clock: Clock) -> None:
        self.s = state
        self.clock = clock

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise Missing(f"{type(self).__name__}.{name} is not in the fake unit of work (tests/unit/fakes.py)")


def _copy(x: Any) -> Any:
    return copy.deepcopy(x)


class FakeProductRepo(_Repo):
    async def get(self, product_id: int) -> Product | None:
        return _copy(self.s.products.get(product_id))

    async def get_many(self, ids: Sequence[int]) -> dict[int, Product]:
        return {i: _copy(self.s.products[i]) for i in ids if i in self.s.products}

    async def by_sku(self, sku: str) -> Product | None:
        return next((_copy(p) for p in self.s.products.values() if p.sku == sku), None)


class FakeCodeRepo(_Repo):
    def _sellable(self, c: StoredCode, product_id: int, now: datetime) -> bool:
        return (c.product_id == product_id and c.status is CodeStatus.AVAILABLE
                and (c.expires_at is None or c.expires_at > now))

    async def pick_available(self, product_id: int, n: int, now: datetime) -> list[int]:
        return sorted(i for i, c in self.s.codes.items() if self._sellable(c, product_id, now))[:max(n, 0)]

    async def available_counts(self, product_ids: Sequence[int], cap: int, now: datetime) -> dict[int, int]:
        return {pid: min(cap, sum(self._sellable(c, pid, now) for c in self.s.codes.values())) for pid in product_ids}

    async def hold(self, assignments: Sequence[tuple[int, str]]) -> int:
        """Conditional, like the SQL: only codes still available are held; returns how many were."""
        done = 0
        for cid, oid in sorted(assignments):
            c = self.s.codes.get(cid)
            if c is not None and c.status is CodeStatus.AVAILABLE:
                c.status, c.order_id = CodeStatus.HELD, oid
                done += 1
        return done

    def _move(self, order_ids: Sequence[str], old: Sequence[CodeStatus], new: CodeStatus, *,
              release: bool = False) -> int:
        ids = set(order_ids)
        moved = [c for c in self.s.codes.values() if c.order_id in ids and c.status in old]
        for c in moved:
            c.status = new
            if release:
                c.order_id = None
        return len(moved)

    async def sell_held(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.HELD], CodeStatus.SOLD)

    async def release(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.HELD], CodeStatus.AVAILABLE, release=True)

    async def burn(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.SOLD, CodeStatus.HELD], CodeStatus.BURNED)

    async def reusable_for(self, product_ids: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for i, c in sorted(self.s.codes.items()):
            if c.product_id in product_ids and c.status is CodeStatus.REUSABLE:
                out[c.product_id] = i
        return out

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[StoredCode]]:
        ids = set(order_ids)
        out: dict[str, list[StoredCode]] = {}
        for _, c in sorted(self.s.codes.items()):
            if c.order_id in ids:
                out.setdefault(c.order_id, []).append(_copy(c))
        return out

    async def get_many(self, ids: Sequence[int]) -> list[StoredCode]:
        return [_copy(self.s.codes[i]) for i in sorted(set(ids)) if i in self.s.codes]


class FakeOrderRepo(_Repo):
    async def get(self, order_id: str) -> Order | None:
        return _copy(self.s.orders.get(order_id))

    async def get_many(self, ids: Sequence[str], for_update: bool = False, skip_locked: bool = False
                       ) -> dict[str, Order]:
        return {i: _copy(self.s.orders[i]) for i in sorted(set(ids)) if i in self.s.orders}

    async def insert_many(self, orders: Sequence[Order]) -> None:
        for o in orders:
            assert o.id not in self.s.orders, f"duplicate order id {o.id}"  # the primary key
            self.s.orders[o.id] = _copy(o)

    async def set_status(self, ids: Sequence[str], status: OrderStatus, at: datetime, *, paid: bool = False,
                         delivered: bool = False) -> None:
        for i in ids:
            o = self.s.orders.get(i)
            if o is not None:
                o.status = status
                if paid:
                    o.paid_at = at
                if delivered:
                    o.delivered_at = at

    async def set_reusable(self, pairs: Sequence[tuple[str, int]]) -> None:
        for oid, cid in pairs:
            if oid in self.s.orders:
                self.s.orders[oid].reusable_code_id = cid

    async def open_holds(self, buyers: Sequence[Buyer], now: datetime) -> dict[str, int]:
        keys = {b.key for b in buyers}
        out: dict[str, int] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.status is OrderStatus.HELD and o.expires_at > now:
                out[o.buyer.key] = out.get(o.buyer.key, 0) + 1
        return out


class FakePaymentRepo(_Repo):
    async def existing(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
        wanted = set(keys)
        return {(p.provider, p.provider_txn_id): _copy(p) for p in self.s.payments.values()
                if (p.provider, p.provider_txn_id) in wanted}

    async def insert_many(self, payments: Sequence[Payment]) -> list[Payment]:
        taken = {(p.provider, p.provider_txn_id) for p in self.s.payments.values()}
        for p in payments:
            assert (p.provider, p.provider_txn_id) not in taken, "unique (provider, provider_txn_id)"
            p.id = self.s.next_id()
            self.s.payments[p.id] = _copy(p)
        return list(payments)

    async def for_order(self, order_id: str) -> list[Payment]:
        return [_copy(p) for _, p in sorted(self.s.payments.items()) if p.order_id == order_id]


class FakeOutboxRepo(_Repo):
    async def add_many(self, items: Sequence[OutboxItem], lease_until: datetime | None = None,
                       due_at: datetime | None = None) -> None:
        """As the SQL: ids come back only for rows unique by (kind, order) in this call; leased rows share one
        lease token."""
        lease = secrets.token_hex(8) if lease_until else None
        ids: dict[tuple[str, str | None], int | None] = {}
        for i in items:
            row = OutboxItem(self.s.next_id(), i.kind, i.channel, i.recipient, i.order_id, _copy(i.payload),
                             lease=lease)
            self.s.outbox.append(OutboxRow(row, lease_until or due_at or self.clock.now()))
            key = (i.kind, i.order_id)
            ids[key] = None if key in ids else row.id
        for i in items:
            i.lease = lease
            i.id = ids.get((i.kind, i.order_id))


class FakeAuditRepo(_Repo):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        self.s.audit.extend(_copy(list(entries)))

    async def for_order(self, order_id: str) -> list[AuditEntry]:
        return [_copy(e) for e in self.s.audit if e.order_id == order_id]

    async def count(self, action: str, actor: str | None = None, since: datetime | None = None) -> int:
        return sum(1 for e in self.s.audit if e.action == action and (actor is None or e.actor == actor)
                   and (since is None or e.at >= since))

    async def lock_actor(self, action: str, actor: str) -> None:
        """Nothing to lock: write transactions of the fake run one at a time."""


class FakeRiskRepo(_Repo):
    """Rules and risk (core/risk/ports.py RiskRepo, storage/risk.py): the reads computed from the fake's orders, audit,
    customers and blacklist as the SQL computes them."""

    async def lock_buyers(self, keys: Sequence[str]) -> None:
        """Nothing to lock: write transactions of the fake run one at a time."""

    def _banned(self, buyers: Sequence[Buyer]) -> set[tuple[str, str]]:
        hits = {(kind, b.key) for b in buyers for kind in ("user", "payer") if (kind, b.key) in self.s.bans}
        phones = {self.s.customers[b.key].phone for b in buyers if b.key in self.s.customers} - {""}
        return hits | {("phone", p) for p in phones if ("phone", p) in self.s.bans}

    async def snapshot(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> tuple[dict[str, BuyerFacts], dict[str, Activity], set[tuple[str, str]]]:
        return (await self.buyer_facts(buyers), await self.activity(buyers, now, window, day, history),
                self._banned(buyers))

    async def buyer_facts(self, buyers: Sequence[Buyer]) -> dict[str, BuyerFacts]:
        return {b.key: self.s.customers[b.key].facts() for b in buyers if b.key in self.s.customers}

    async def activity(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> dict[str, Activity]:
        keys = {b.key for b in buyers}
        since = min(window, day, history)
        out: dict[str, Activity] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.created_at >= since:
                a = out.get(o.buyer.key, Activity())
                out[o.buyer.key] = Activity(
                    a.recent + (o.created_at >= window),
                    a.abandoned + (o.created_at >= day and o.status is OrderStatus.EXPIRED),
                    a.refunds + (o.created_at >= history and o.status in REFUNDED),
                    a.open_holds + (o.status is OrderStatus.HELD and o.expires_at > now))
        for e in self.s.audit:  # problem reports and reissues count like refunds
            if e.actor in keys and e.action in ("report", "reissue") and e.at >= history:
                a = out.get(e.actor, Activity())
                out[e.actor] = Activity(a.recent, a.abandoned, a.refunds + 1, a.open_holds)
        return out

    async def product_counts(self, buyers: Sequence[Buyer], product_ids: Sequence[int], day_start: datetime,
                             now: datetime) -> dict[tuple[str, int], Counts]:
        keys = {b.key for b in buyers}
        out: dict[tuple[str, int], Counts] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.product_id in product_ids:
                k = (o.buyer.key, o.product_id)
                c = out.get(k, Counts())
                live = o.status in LIVE
                out[k] = Counts(c.day_qty + (o.qty if live and o.created_at >= day_start else 0),
                                c.total_qty + (o.qty if live else 0),
                                c.open_holds + (o.status is OrderStatus.HELD and o.expires_at > now))
        return out

    async def chat_orders(self, chats: Sequence[str], since: datetime) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.s.orders.values():
            if o.chat_id in chats and o.created_at >= since:
                out[o.chat_id] = out.get(o.chat_id, 0) + 1
        return out

    async def blacklisted(self, entries: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return {e for e in entries if e in self.s.bans}

    async def bans(self, limit: int) -> list[Ban]:
        return _copy(sorted(self.s.bans.values(), key=lambda b: b.at, reverse=True)[:limit])

    async def identities(self, phones: Sequence[str], persons: Sequence[str]) -> list[Identity]:
        return [Identity(c.buyer, c.phone, c.person, c.link_set) for c in self.s.customers.values()
                if (c.phone and c.phone in phones) or (c.person and c.person in persons)]

    async def passes(self, buyers: Sequence[Buyer], now: datetime) -> set[str]:
        keys = {b.key for b in buyers}
        return {r.challenge.buyer.key for r in self.s.challenges.values()
                if r.challenge.buyer.key in keys and r.valid_until is not None and r.valid_until > now}

    async def add_challenges(self, challenges: Sequence[Challenge], now: datetime) -> None:
        for ch in challenges:
            self.s.challenges[ch.token] = ChallengeRow(_copy(ch))

    async def answer_challenge(self, token: str, buyer: Buyer, answer: str, now: datetime,
                               valid_until: datetime) -> bool:
        row = self.s.challenges.get(token)
        if row is None or row.challenge.buyer != buyer or row.status != "open" or row.challenge.expires_at <= now:
            return False
        if row.challenge.answer == answer:
            row.status, row.valid_until = "passed", valid_until
            return True
        row.status = "failed"
        return False

    async def record(self, rows: Sequence[OrderRisk]) -> None:
        for r in rows:
            self.s.order_risk[r.order_id] = _copy(r)

    async def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRisk]:
        return {i: _copy(self.s.order_risk[i]) for i in set(order_ids) if i in self.s.order_risk}

    async def set_expiry(self, order_ids: Sequence[str], expires_at: datetime) -> None:
        for i in order_ids:
            o = self.s.orders.get(i)
            if o is not None and o.status is OrderStatus.HELD:
                o.expires_at = expires_at


class FakeTicketRepo(_Repo):
    """After-sales tickets (core/aftersales/tickets.py TicketRepo), bound to the transaction like every repository."""

    async def add(self, ticket: Ticket) -> int:
        ticket.id = self.s.next_id()
        self.s.tickets[ticket.id] = _copy(ticket)
        return ticket.id

    async def get(self, ticket_id: int) -> Ticket | None:
        return _copy(self.s.tickets.get(ticket_id))

    async def open_for_order(self, order_id: str) -> Ticket | None:
        return next((_copy(t) for _, t in sorted(self.s.tickets.items())
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
                out.setdefault(t.order_id, []).append(_copy(t))
        return out


class FakeCardFaceRepo(_Repo):
    """Card faces and bound users (core/cardfaces.py CardFaceRepo)."""

    async def reseller_name(self, reseller_id: int) -> str | None:
        return self.s.reseller_names.get(reseller_id)

    async def save_face(self, reseller_id: int, face: CardFace, at: datetime) -> None:
        self.s.card_faces[reseller_id] = face

    async def drop_face(self, reseller_id: int) -> bool:
        return self.s.card_faces.pop(reseller_id, None) is not None

    async def face(self, reseller_id: int) -> CardFace | None:
        return self.s.card_faces.get(reseller_id)

    async def bind(self, reseller_id: int, buyer: Buyer, at: datetime) -> None:
        self.s.reseller_users[buyer] = reseller_id

    async def unbind(self, buyer: Buyer) -> bool:
        return self.s.reseller_users.pop(buyer, None) is not None

    async def bound(self, buyer: Buyer) -> tuple[int, str] | None:
        rid = self.s.reseller_users.get(buyer)
        return (rid, self.s.reseller_names[rid]) if rid is not None and rid in self.s.reseller_names else None

    async def any_face(self) -> bool:
        return bool(self.s.card_faces)


class FakeNoncePairRepo(_Repo):
    """The WeChat callback's (timestamp, nonce) pairs (core/ports.py NoncePairRepo)."""

    async def sweep(self, before: datetime) -> None:
        self.s.nonce_pairs = {k: at for k, at in self.s.nonce_pairs.items() if at >= before}

    async def taken(self, pairs: Sequence[str]) -> set[str]:
        return {p for p in pairs if p in self.s.nonce_pairs}

    async def add(self, pairs: Mapping[str, datetime]) -> None:
        for k, at in pairs.items():
            assert k not in self.s.nonce_pairs, "primary key"
            self.s.nonce_pairs[k] = at


REPOS: dict[str, type[_Repo]] = {
    "products": FakeProductRepo, "codes": FakeCodeRepo, "orders": FakeOrderRepo, "payments": FakePaymentRepo,
    "outbox": FakeOutboxRepo, "audit": FakeAuditRepo, "risk": FakeRiskRepo, "tickets": FakeTicketRepo,
    "card_faces": FakeCardFaceRepo, "wechat": FakeNoncePairRepo,
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

    def __init__(self, factory: FakeUnitOfWorkFactory, write: bool) -> None:
        self._factory = factory
        self._write = write
        self._state: State | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in REPOS:
            raise RuntimeError(f"uow.{name} used outside `async with`")
        raise Missing(f"uow.{name}: the fake unit of work has no such repository (tests/unit/fakes.py)")

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
        return _copy(p)

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
        return _copy(o)

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
