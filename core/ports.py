"""Ports: what the core needs from the outside world. storage/ and bots/ implement them."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.models import (
    AuditEntry,
    Buyer,
    Customer,
    NewCode,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    ProductSpec,
    StockLine,
    StoredCode,
    SupplyRequest,
)

if TYPE_CHECKING:
    from core.aftersales import RecallRepo, TicketRepo
    from core.alerts import AdminAlerts
    from core.broadcast import BroadcastRepo
    from core.cardfaces import CardFaceRepo
    from core.console import ConsoleRepo
    from core.coupons import CouponRepo
    from core.flash_sales import FlashSaleRepo
    from core.group_buy import GroupBuyRepo
    from core.groups import GroupRepo
    from core.images import ImageRepo
    from core.members.coupons import MemberCouponRepo
    from core.members.ports import MemberRepo
    from core.privacy import PrivacyRepo
    from core.reports import ReportRepo
    from core.resellers.ports import ResellerRepo
    from core.risk import RiskRepo
    from core.stock_alerts import StockAlertRepo


class ProductRepo(Protocol):
    async def get(self, product_id: int) -> Product | None: ...
    async def get_many(self, ids: Sequence[int]) -> dict[int, Product]: ...
    async def by_sku(self, sku: str) -> Product | None: ...
    async def list(self, active_only: bool = True) -> list[Product]: ...
    async def upsert(self, spec: ProductSpec, source: str = "config") -> Product: ...
    async def deactivate_except(self, skus: Sequence[str]) -> None:
        """Take products from the config (source 'config') not in skus off sale; merchant-made ones stay."""
    async def update(self, product_id: int, values: Mapping[str, Any]) -> None:
        """Set some of price, stars (None: no Stars price), title, active, rules (normalized, core/risk/rules.py)."""


class CodeRepo(Protocol):
    async def next_ids(self, n: int) -> list[int]: ...
    async def insert_ignore(self, codes: Sequence[NewCode]) -> int:
        """Insert, skipping duplicates by (product, fingerprint); returns rows inserted."""
    async def pick_available(self, product_id: int, n: int, now: datetime) -> list[int]:
        """Ids of up to n available codes (locked against other claimers where the database can)."""
    async def hold(self, assignments: Sequence[tuple[int, str]]) -> int:
        """Conditionally mark (code id, order id) held if still available; returns rows changed."""
    async def sell_held(self, order_ids: Sequence[str]) -> int: ...
    async def release(self, order_ids: Sequence[str]) -> int: ...
    async def burn(self, order_ids: Sequence[str]) -> int:
        """Mark the sold or held codes of (refunded) orders burned: never sold again; returns rows changed."""
    async def reusable_for(self, product_ids: Sequence[int]) -> dict[int, int]: ...
    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[StoredCode]]: ...
    async def get_many(self, ids: Sequence[int]) -> list[StoredCode]: ...
    async def not_under_key(self, key_id: str, after_id: int, limit: int) -> list[StoredCode]: ...
    async def update_cipher(self, rows: Sequence[tuple[int, str, bytes, bytes]]) -> None: ...
    async def count_not_under_key(self, key_id: str) -> int: ...
    async def key_ids(self) -> set[str]: ...
    async def sample_under_key(self, key_id: str) -> tuple[StoredCode, bytes] | None:
        """One stored code under a key, with its fingerprint (to check a key whose canary is gone)."""
    async def stock(self, now: datetime) -> list[StockLine]: ...
    async def available_counts(self, product_ids: Sequence[int], cap: int, now: datetime) -> dict[int, int]:
        """Sellable (unexpired) codes per product, counted up to cap (bounded cost on a huge pool)."""


class OrderRepo(Protocol):
    async def get(self, order_id: str) -> Order | None: ...
    async def get_many(self, ids: Sequence[str], for_update: bool = False, skip_locked: bool = False
                       ) -> dict[str, Order]:
        """Orders by id; for_update locks them in id order (PostgreSQL), skip_locked leaves out locked ones."""
    async def insert_many(self, orders: Sequence[Order]) -> None: ...
    async def set_status(
        self, ids: Sequence[str], status: OrderStatus, at: datetime, *, paid: bool = False,
        delivered: bool = False,
    ) -> None: ...
    async def set_reusable(self, pairs: Sequence[tuple[str, int]]) -> None: ...
    async def settle_currency(self, orders: Sequence[Order]) -> None:
        """Store each order's currency, unit price and amount as paid (an order paid in Telegram Stars)."""
    async def open_holds(self, buyers: Sequence[Buyer], now: datetime) -> dict[str, int]:
        """Unexpired held orders per buyer key; the buyers stay locked against other counting transactions
        until this one ends, so the hold cap cannot be overrun by concurrent processes."""
    async def expired_holds(self, now: datetime, limit: int) -> list[Order]: ...
    async def for_buyer(self, buyer: Buyer, limit: int, offset: int) -> list[Order]: ...
    async def for_buyers(self, buyers: Sequence[Buyer], limit: int, offset: int) -> list[Order]: ...
    async def recent(self, status: OrderStatus | None, limit: int, offset: int) -> list[Order]:
        """Newest first, optionally only one status (the merchant's order list)."""
    async def search(self, *, order_id: str | None, channel: str | None, buyer_id: str | None,
                     status: OrderStatus | None, since: datetime | None, until: datetime | None, limit: int,
                     offset: int) -> list[Order]:
        """The merchant's order search (core/order_search.py), newest first: each filter given narrows it; a buyer
        id without a channel matches it on any channel; created_at in [since, until). One indexed query."""
    async def move(self, order_id: str, expected: OrderStatus, status: OrderStatus, at: datetime, *,
                   delivered: bool = False) -> bool:
        """Set an order's status only if it is still `expected` (a callback and a poll may race); True if it was."""


class PaymentRepo(Protocol):
    async def existing(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Payment]: ...
    async def insert_many(self, payments: Sequence[Payment]) -> list[Payment]: ...
    async def get(self, payment_id: int) -> Payment | None: ...
    async def set_status(self, payment_id: int, status: str) -> None: ...
    async def for_order(self, order_id: str) -> list[Payment]: ...


class OutboxRepo(Protocol):
    async def add_many(self, items: Sequence[OutboxItem], lease_until: datetime | None = None,
                       due_at: datetime | None = None) -> None:
        """Insert rows (due now, or leased until lease_until); sets the ids of rows unique by (kind, order)."""
    async def claim(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxItem]:
        """Due pending rows, leased until lease_until so no other dispatcher takes them."""
    async def mark_sent(self, rows: Sequence[tuple[int, str | None]], at: datetime) -> None:
        """(id, lease): only rows still leased by this claimer change."""
    async def mark_failed(self, failures: Sequence[tuple[int, str | None, str, datetime, bool, bool]]) -> None:
        """(id, lease, error, next attempt, give up, count the attempt)."""
    async def save_payloads(self, rows: Sequence[tuple[int, str | None, dict[str, Any]]]) -> list[bool]:
        """(id, lease, payload): replace the payload of rows still leased by this claimer; True where it did
        (the parts of a delivery that went out, core/ports.py Parts)."""
    async def broadcast_counts(self, broadcast_id: int) -> dict[str, int]:
        """The messages of one broadcast by status (pending, sent, failed)."""
    async def pending_count(self) -> int: ...
    async def release_leases(self) -> None: ...
    async def due_now(self, kind: str, order_id: str) -> None:
        """Pending, unleased rows of this kind for this order are due at once (not after their backoff)."""


class AuditRepo(Protocol):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None: ...
    async def for_order(self, order_id: str) -> list[AuditEntry]: ...
    async def latest(self, action: str, actor: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
    async def count(self, action: str, actor: str | None = None, since: datetime | None = None) -> int: ...
    async def counts(self, action: str, actors: Sequence[str], since: datetime) -> dict[str, int]:
        """count() of many actors in one query: actor -> entries at or after `since` (actors with none absent)."""
    async def search(self, *, action: str | None, actor: str | None, order_id: str | None, since: datetime | None,
                     until: datetime | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        """Entries matching every filter given (`since` <= at < `until`, id < `before_id`), newest first (highest
        id), each with its id (core/auditlog.py)."""
    async def lock_actor(self, action: str, actor: str) -> None:
        """Until this transaction ends, other transactions wait here for the same (action, actor): a
        count-then-add limit (reveals per hour) cannot be overrun by concurrent requests."""
    async def lock_actors(self, action: str, actors: Sequence[str]) -> None:
        """lock_actor for each of `actors`, at once (a batch of reveals: core/shop.py)."""


class CustomerRepo(Protocol):
    async def get(self, buyer: Buyer, *, for_update: bool = False) -> Customer | None:
        """`for_update`: locked until the transaction ends (PostgreSQL; SQLite writes one at a time)."""
    async def save(self, customer: Customer) -> None: ...
    async def add_new(self, customers: Sequence[Customer]) -> None:
        """Insert customers who are not stored yet; existing rows are left as they are."""


class MetaRepo(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str) -> None: ...
    async def with_prefix(self, prefix: str) -> dict[str, str]: ...


class SupplyRepo(Protocol):
    """The ledger of supplier calls (core/supply/desk.py)."""

    async def get(self, request_id: str) -> SupplyRequest | None: ...
    async def save(self, request: SupplyRequest) -> None:
        """Insert, or update the status, upstream id, cost and detail of an existing request id."""
    async def pending_topups(self, limit: int) -> list[SupplyRequest]:
        """Top-ups the supplier has accepted but not finished, least recently updated first."""
    async def spent_since(self, supplier: str, since: datetime) -> int:
        """What buys and top-ups from a supplier cost since then (minor units; failed ones not counted)."""


class NoncePairRepo(Protocol):
    """(timestamp, nonce) pairs a chat platform's callback took (the WeChat callback, bots/wechat/replays.py): kept
    until their timestamp goes stale, so a replay is refused by every process."""

    async def sweep(self, before: datetime) -> None:
        """Forget the pairs that went stale before then."""
    async def taken(self, pairs: Sequence[str]) -> set[str]:
        """The pairs (their keys) taken already."""
    async def add(self, pairs: Mapping[str, datetime]) -> None:
        """Take the pairs (key -> when it goes stale)."""


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless commit() was called. Every repository is bound to the transaction's
    connection (storage/db.py SqlUnitOfWork; in memory: tests/unit/fakes/)."""

    products: ProductRepo
    codes: CodeRepo
    orders: OrderRepo
    payments: PaymentRepo
    outbox: OutboxRepo
    audit: AuditRepo
    customers: CustomerRepo
    meta: MetaRepo
    supplies: SupplyRepo
    risk: RiskRepo  # rules and risk (core/risk/)
    tickets: TicketRepo  # after-sales tickets and a buyer's history (core/aftersales/)
    recalls: RecallRepo  # codes by fingerprint: recalls and the audit export (core/aftersales/)
    resellers: ResellerRepo  # accounts, wallets, API keys, top-ups, commissions, waiting orders (core/resellers/)
    groups: GroupRepo  # reseller group chats (core/groups.py)
    card_faces: CardFaceRepo  # resellers' card faces and bound users (core/cardfaces.py)
    wechat: NoncePairRepo  # the WeChat callback's (timestamp, nonce) pairs (bots/wechat/replays.py)
    reports: ReportRepo  # a period's sales aggregates (core/reports/)
    console: ConsoleRepo  # the web console's login links and sessions (core/console.py)
    images: ImageRepo  # product pictures and each product's current one (core/images.py)
    stock_alerts: StockAlertRepo  # buyers waiting for a sold-out product (core/stock_alerts.py)
    broadcasts: BroadcastRepo  # merchants' announcements and buyers' opt-outs (core/broadcast.py)
    coupons: CouponRepo  # coupon campaigns, their code fingerprints and uses (core/coupons.py)
    members: MemberRepo  # points, the spend counted for levels, referral codes (core/members/)
    member_coupons: MemberCouponRepo  # coupons issued to buyers as rewards (core/members/coupons.py)
    group_buys: GroupBuyRepo  # group-buy groups and their members (core/group_buy.py)
    flash_sales: FlashSaleRepo  # flash sales and each order's units at their price (core/flash_sales.py)
    privacy: PrivacyRepo  # a person's data: what is kept, forgetting it (core/privacy.py)

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, write: bool = False) -> UnitOfWork: ...


class Catalog(Protocol):
    """The shop's catalogue as the desks read it (core.shop.Shop is one): cached, on sale or not."""

    async def products(self, category: str | None = None, *, include_inactive: bool = False) -> list[Product]: ...
    async def product(self, product_id: int) -> Product | None: ...
    async def product_by_sku(self, sku: str) -> Product | None: ...
    def check_account(self, product: Product, account: str) -> str | None:
        """A top-up account as it will be sent, or None when it does not fit the product's pattern."""


class Parts:
    """The messages of one outbox row that went out, by a stable index (their order in the row), with what the
    platform gave back for each (a message id; None where it gives nothing).

    A notifier sends every message of a delivery through `send`: a part recorded as sent is not sent again (its
    reference is returned as recorded), so a retry after a failure sends only what did not go out. What went out
    is saved (`save`, the outbox row's payload) before the next part is sent; the last part's record needs no
    write of its own: it rides with the row's sent or failed mark. So a crash can repeat at most the one message
    between its send and its record, and the fast path (a delivery in one message) writes nothing extra."""

    __slots__ = ("done", "_save", "_unsaved")

    def __init__(self, done: Mapping[str, Any] | None = None,
                 save: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.done: dict[str, Any] = dict(done or {})
        self._save = save
        self._unsaved = False

    @property
    def unsaved(self) -> bool:
        """Something went out since the last save (the row's mark must record it)."""
        return self._unsaved

    async def send(self, index: int | str, send: Callable[[], Awaitable[Any]]) -> Any:
        key = str(index)
        if key in self.done:
            return self.done[key]
        if self._unsaved and self._save is not None:
            await self._save(dict(self.done))
            self._unsaved = False
        ref = await send()
        self.done[key] = ref
        self._unsaved = True
        return ref


@dataclass(slots=True)
class Delivery:
    """What a buyer receives after payment: plain codes exist only in this object, in memory."""

    order: Order
    product: Product
    codes: list[str] = field(repr=False)  # never in a repr: logs, tracebacks and error reports would keep it
    again: bool = False  # True for "show codes again"
    # Which of its messages went out already (the outbox's record); a delivery outside the outbox starts empty.
    parts: Parts = field(default_factory=Parts, repr=False, compare=False)


class Notifier(Protocol):
    """Sends to a buyer on one channel. Raises on failure; the outbox retries."""

    async def deliver(self, recipient: str, delivery: Delivery) -> list[Any] | None:
        """Send the codes, each message through `delivery.parts.send(index, ...)` with indexes that stay the
        same on a retry (a retry sends only the parts not sent); may return references to all the messages
        of the delivery, earlier attempts' included (for later deletion)."""
    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None: ...


class ForgetfulNotifier(Notifier, Protocol):
    """A notifier whose code messages are deleted after a while (telegram.delete_code_after)."""

    delete_after: timedelta | None

    async def delete(self, recipient: str, refs: list[Any]) -> None: ...


@runtime_checkable
class TemplateNotifier(Notifier, Protocol):
    """A notifier that can also reach a buyer outside its channel's reply window, by a template message the
    merchant set up (WeChat's 模板消息; core/broadcast.py). `templates_ready`: one is configured."""

    templates_ready: bool

    async def notify_template(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None: ...


class PaymentGateway(Protocol):
    """One payment provider (demo, telegram_stars, wechat_pay, wallet)."""

    name: str

    async def refund(self, payment: Payment, reason: str) -> bool | None:
        """Give a whole payment back. True (or None) when the money went back; False when the provider only
        accepted the refund so far (the outbox asks again). "Already refunded" at the provider is done, not
        an error. Raises when the provider refused or could not be reached (the outbox retries)."""


class PaymentReconciler(Protocol):
    """A provider the store can ask what was paid (WeChat Pay's orderquery), so a payment whose notice never
    came is found; the scheduler runs it (jobs/scheduler.py)."""

    async def reconcile(self) -> int:
        """Record the payments found paid without a notice; returns how many."""


@dataclass(slots=True)
class ChannelParts:
    """What a chat channel's adapter provides the shop (bots/telegram/wiring.py, bots/wechat/wiring.py): it hands
    them back, and the composition root registers them (app/bootstrap.py App.plug); no adapter writes into the
    shop's own tables of notifiers and gateways."""

    notifiers: dict[str, Notifier] = field(default_factory=dict)  # channel -> what sends to its buyers
    gateways: list[PaymentGateway] = field(default_factory=list)  # payment providers, each under its name
    alerts: list[AdminAlerts] = field(default_factory=list)  # merchant alerts through this channel


# -- suppliers ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class SupplierProduct:
    """One item a supplier sells: its SKU there, a title, the price in minor units of the supplier's currency,
    and how many it has (None: the supplier does not say)."""

    sku: str
    title: str
    price: int
    stock: int | None = None


@dataclass(slots=True)
class TopupResult:
    """Where a top-up stands at the supplier: pending (finishes by callback or polling), done or failed."""

    request_id: str
    status: str  # pending | done | failed
    upstream_id: str = ""  # the supplier's own order number, when it gives one
    message: str = ""  # the supplier's words on a failure (never shown to buyers as is)


class Supplier(Protocol):
    """An upstream seller the shop buys codes and top-ups from (货源). Raises core.errors.SupplierError.

    request_id is the idempotency key: asking again with the same id never buys twice (a retry after a lost
    answer gets the same codes / the same top-up)."""

    name: str

    async def balance(self) -> int:
        """The shop's balance at the supplier, in minor units of the supplier's currency."""
    async def products(self) -> list[SupplierProduct]: ...
    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
        """Plain codes (secrets: never log them); same request_id -> same codes."""
    async def topup(self, supplier_sku: str, account: str, request_id: str) -> TopupResult: ...
    async def topup_status(self, request_id: str) -> TopupResult: ...
    async def check_code(self, supplier_sku: str, code: str) -> str:
        """valid | used | invalid | unknown (unknown also where the supplier cannot tell)."""
