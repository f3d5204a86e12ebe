"""Resellers: business buyers with their own price tier, a credit limit and a prepaid wallet.

The wallet is a ledger: every movement is a `wallet_ledger` row (top-up by a merchant, debit for an order, refund
credited back) and the reseller's `balance` column is always the sum of its rows, because both change in the same
transaction and the balance only ever changes by a compare-and-set (`UPDATE ... WHERE balance = <read>`) whose
row count is checked. B2B orders are made, paid from the wallet and sold in one group-commit batch
(`b2b_order`): stock is checked, then the wallet, in arrival order, so a batch of racing orders never spends
more than the balance plus the credit limit, and a refused order holds and debits nothing. Across processes
(PostgreSQL) the reseller rows are locked `FOR UPDATE` and the compare-and-set refuses a lost update anyway.

`wallet` is a payment provider like Telegram Stars or WeChat Pay: its refund credits the wallet back, once per
payment (the ledger row's `ref` is unique).

Second part: the reseller tops the wallet up itself (a Telegram Stars invoice or a WeChat Pay QR code
for a `wallet_topups` row; `topup_wallet` records the provider's payment once, keyed by its transaction id, and
credits one ledger row; `refund_topup` debits it back and refunds through the provider); the merchant's policy
for B2B orders larger than the stock (`partial` rule: refuse | partial | wait); and commissions (分销) on the paid
orders of customers a reseller referred (`/start ref_<id>`), reversed on refund, paid out by a merchant.
"""
from __future__ import annotations

from enum import StrEnum

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ConflictError, ErrorCode, Refused, StoreError
from core.models import (
    AuditEntry,
    Buyer,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    StoredCode,
    new_order_id,
)
from core.outbox import decrypt_codes, load_stored
from core.payments import BANNED_PAYER, TOPUP_PREFIX, banned_audit, banned_payers, is_topup_id  # noqa: F401
from core.ports import Catalog, UnitOfWork, UnitOfWorkFactory
from core.risk import Assessment, Intent
from core.rules import exemptions, rules_of

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock
    from core.risk import Guard
    from core.supply import SupplyDesk
    from core.vault import Vault

PROVIDER = "wallet"
CHANNEL = "api"  # the buyer channel of reseller orders: Buyer("api", "<reseller id>")
MAX_QTY = 1000  # codes in one B2B order (bulk), whatever the product's max_qty for chat buyers
KEY_CACHE_SECONDS = 5.0  # API keys and their resellers read from memory this long (suspensions show within it)
SUPPLIED = frozenset({Kind.SUPPLIER, Kind.TOPUP})  # bought from a supplier after the wallet paid
API_KEY_AAD_BASE = 1 << 63  # vault associated data of an API secret: distinct from every code row id
REF_PREFIX = "ref_"  # the deep-link payload of a reseller's referral link: /start ref_<reseller id>
PARTIAL_POLICIES = ("refuse", "partial", "wait")
# What API orders skip of the rules-and-risk check unless configured otherwise (resellers.api_exempt): the risk
# score. Its signals describe a person in a chat (orders in ten minutes, a new account, a large order); a
# reseller's system places hundreds of large orders an hour from a prepaid wallet, and could not answer a
# challenge. Bans still apply.
DEFAULT_API_EXEMPT = ("risk",)


def commission_of(amount: int, rate_bp: int) -> int:
    """The commission on an order amount at rate_bp basis points (1/100 of a percent), rounded down to the
    minor unit: the merchant never pays a fraction of a cent more than the rate."""
    return max(0, amount) * rate_bp // 10_000


class ResellerCode(StrEnum):
    """Why a reseller use case refused (the B2B API returns the value as its error code)."""

    ACCOUNT_SUSPENDED = "account_suspended"
    BAD_AMOUNT = "bad_amount"
    BAD_CREDIT_LIMIT = "bad_credit_limit"
    BAD_DISCOUNT = "bad_discount"
    BAD_IDENTITY = "bad_identity"
    BAD_NAME = "bad_name"
    BAD_PRICE = "bad_price"
    BAD_RATE = "bad_rate"
    BAD_REQUEST = "bad_request"
    BAD_STATUS = "bad_status"
    DUPLICATE_TOPUP = "duplicate_topup"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INSUFFICIENT_COMMISSION = "insufficient_commission"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NAME_TAKEN = "name_taken"
    NOT_A_WALLET_PAYMENT = "not_a_wallet_payment"
    TOPUP_NOT_PAID = "topup_not_paid"
    UNKNOWN_RESELLER = "unknown_reseller"
    UNKNOWN_TOPUP = "unknown_topup"


class ResellerError(Refused):
    """A reseller use case refused; `code` is stable (the B2B API returns it as is)."""

    codes = ResellerCode


@dataclass(slots=True)
class Reseller:
    id: int
    name: str
    status: str  # active | suspended
    discount_percent: int  # off the list price of every SKU not in `prices`
    prices: dict[str, int]  # the tier's price list: SKU -> price in minor units of the product's currency
    credit_limit: int  # how far below zero the wallet may go (minor units); 0 = prepaid only
    balance: int
    currency: str
    created_at: datetime

    def price_for(self, product: Product) -> int:
        """The price this reseller pays for one of the product: its price list, else the discounted list price
        (rounded half up to the minor unit)."""
        if product.sku in self.prices:
            return self.prices[product.sku]
        return (product.price * (100 - self.discount_percent) + 50) // 100

    @property
    def spendable(self) -> int:
        return self.balance + self.credit_limit

    @property
    def buyer(self) -> Buyer:
        return Buyer(CHANNEL, str(self.id))


@dataclass(slots=True)
class WalletEntry:
    """One movement of a wallet: + credit (topup, refund), - debit (order)."""

    id: int | None
    reseller_id: int
    kind: str  # topup | debit | refund
    amount: int
    balance_after: int
    ref: str  # unique: order:<id>, refund:<payment id>, topup:<merchant's reference>
    created_at: datetime
    order_id: str | None = None
    actor: str = ""
    note: str = ""


@dataclass(slots=True)
class Topup:
    """A wallet top-up the reseller is paying with a provider (open -> paid -> refunded)."""

    id: str
    reseller_id: int
    amount: int  # credited to the wallet (minor units of its currency)
    currency: str
    stars: int | None  # the Stars price (Telegram), else None
    provider: str
    payer: str  # channel:id the invoice was made for
    status: str  # open | paid | refunded
    created_at: datetime
    expires_at: datetime
    payment_id: int | None = None
    paid_at: datetime | None = None


@dataclass(slots=True)
class TopupResult:
    outcome: str  # credited | duplicate | refunding
    topup: Topup | None
    reason: str = ""
    balance: int | None = None


@dataclass(slots=True)
class CommissionEntry:
    """+ accrual (a referred customer's paid order), - reversal (that order refunded), - payout (merchant)."""

    id: int | None
    reseller_id: int
    kind: str
    amount: int
    currency: str
    ref: str
    created_at: datetime
    order_id: str | None = None
    actor: str = ""
    note: str = ""


@dataclass(slots=True)
class CommissionPolicy:
    """Commission rates in basis points: per reseller name, else the default (config `resellers`)."""

    default_bp: int = 0
    by_reseller: dict[str, int] = field(default_factory=dict)

    def rate(self, reseller: Reseller) -> int:
        return self.by_reseller.get(reseller.name, self.default_bp)


@dataclass(slots=True)
class ApiKey:
    key_id: str
    reseller_id: int
    status: str  # active | revoked
    rate_per_second: int
    created_at: datetime
    row_id: int = 0
    secret: str = field(default="", repr=False)  # plain only in memory


@dataclass(slots=True)
class B2BOrder:
    """An order made through the API, with its codes (plain: only in memory, never in a repr)."""

    order: Order
    product: Product
    codes: list[str] = field(repr=False)
    created: bool  # False: the Idempotency-Key had made it already (a retry)
    balance: int | None = None
    # rule deliver_on_effective: the codes are the reseller's from then on (none before; the order is scheduled)
    due: datetime | None = None


@dataclass(slots=True)
class _OrderRequest:
    reseller_id: int
    product_id: int
    qty: int
    key: str  # the Idempotency-Key
    fingerprint: str  # what was asked (sku, qty): the same key with another request is refused
    order_id: str
    account: str = ""  # topup products: the account the supplier recharges
    # A group-chat order (core/groups.py): the member is the order's buyer (their "My orders"), paid from the
    # reseller's wallet, and the codes go out through the outbox on channel `deliver` to `chat_id`.
    buyer: Buyer | None = None
    chat_id: str = ""
    language: str = "en"
    deliver: str | None = None
    group: str = ""  # the group chat it was ordered in (the risk check's per-chat velocity)


@dataclass(slots=True)
class _Made:
    order: Order
    product: Product
    stored: list[StoredCode] = field(repr=False)
    balance: int
    due: datetime | None = None


@dataclass(slots=True)
class _Existing:
    order_id: str


# A B2B order waiting for stock: (order id, reseller id, product id, qty, created, deadline, deliver channel ("":
# read over the API; else a group order's codes go to the member through the outbox on that channel)).
Waiting = tuple[str, int, int, int, datetime, datetime, str]


@dataclass(frozen=True, slots=True)
class NonceUse:
    """A signed request's nonce, recorded once per API key (a replay finds it taken)."""

    key_id: str
    nonce: str
    window_seconds: float


@dataclass(frozen=True, slots=True)
class FillWaiting:
    """Serve B2B orders waiting for stock (of these products; None: all)."""

    product_ids: tuple[int, ...] | None


class ResellerRepo(Protocol):
    """Reseller tables, on the connection of the unit of work given (storage/resellers.py)."""

    async def add(self, uow: UnitOfWork, r: Reseller) -> int: ...
    async def get(self, uow: UnitOfWork, reseller_id: int) -> Reseller | None: ...
    async def by_name(self, uow: UnitOfWork, name: str) -> Reseller | None: ...
    async def lock(self, uow: UnitOfWork, ids: Sequence[int]) -> dict[int, Reseller]:
        """Resellers by id, locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
    async def update(self, uow: UnitOfWork, reseller_id: int, values: dict[str, Any]) -> None: ...
    async def set_balance(self, uow: UnitOfWork, reseller_id: int, old: int, new: int) -> bool:
        """Compare-and-set of the balance column; False when it was not `old`."""
    async def add_entries(self, uow: UnitOfWork, entries: Sequence[WalletEntry]) -> None: ...
    async def refs(self, uow: UnitOfWork, refs: Sequence[str]) -> set[str]: ...
    async def entries(self, uow: UnitOfWork, reseller_id: int, limit: int, before_id: int | None
                      ) -> list[WalletEntry]: ...
    async def ledger_sum(self, uow: UnitOfWork, reseller_id: int) -> int: ...
    async def idempotent(self, uow: UnitOfWork, keys: Sequence[tuple[int, str]]
                         ) -> dict[tuple[int, str], tuple[str, str]]:
        """(reseller id, Idempotency-Key) -> (order id, request fingerprint) of keys already used."""
    async def add_idempotent(self, uow: UnitOfWork, rows: Sequence[tuple[int, str, str, str]], at: datetime
                             ) -> None: ...
    async def add_key(self, uow: UnitOfWork, key: ApiKey, key_id_vault: str, nonce: bytes, ciphertext: bytes
                      ) -> int: ...
    async def next_key_row(self, uow: UnitOfWork) -> int: ...
    async def key(self, uow: UnitOfWork, key_id: str) -> tuple[ApiKey, str, bytes, bytes] | None: ...
    async def set_key_status(self, uow: UnitOfWork, key_id: str, status: str) -> bool: ...
    async def seen_nonces(self, uow: UnitOfWork, pairs: Sequence[tuple[str, str]], at: datetime,
                          forget_before: datetime | None) -> set[tuple[str, str]]:
        """Records (key id, nonce) pairs; returns those already recorded (replays). Drops ones older than
        forget_before now and then."""
    # -- second part: owners, top-ups, commissions, waiting orders
    async def owner_of(self, uow: UnitOfWork, buyer: Buyer) -> int | None: ...
    async def set_owner(self, uow: UnitOfWork, buyer: Buyer, reseller_id: int | None, at: datetime) -> None: ...
    async def owned(self, uow: UnitOfWork, buyers: Sequence[Buyer]) -> set[str]:
        """Keys (channel:id) of the given buyers that act for some reseller."""
    async def add_topup(self, uow: UnitOfWork, t: Topup) -> None: ...
    async def topup(self, uow: UnitOfWork, topup_id: str) -> Topup | None: ...
    async def move_topup(self, uow: UnitOfWork, topup_id: str, old: str, new: str, values: dict[str, Any]
                         ) -> bool: ...
    async def referrals(self, uow: UnitOfWork, buyers: Sequence[Buyer]) -> dict[str, str]:
        """Buyer key -> the start payload kept on first contact (customers.state), for those that have one."""
    async def add_commissions(self, uow: UnitOfWork, rows: Sequence[CommissionEntry]) -> None: ...
    async def commission_refs(self, uow: UnitOfWork, refs: Sequence[str]) -> dict[str, CommissionEntry]: ...
    async def commission_sum(self, uow: UnitOfWork, reseller_id: int) -> int: ...
    async def commission_entries(self, uow: UnitOfWork, reseller_id: int, limit: int) -> list[CommissionEntry]: ...
    async def add_waiting(self, uow: UnitOfWork, rows: Sequence[Waiting]) -> None: ...
    async def waiting(self, uow: UnitOfWork, product_ids: Sequence[int] | None) -> list[Waiting]:
        """Waiting B2B orders, oldest first."""
    async def drop_waiting(self, uow: UnitOfWork, order_ids: Sequence[str]) -> None: ...


def request_fingerprint(sku: str, qty: int, account: str = "") -> str:
    """What an Idempotency-Key was first used for (a top-up's account included)."""
    return hashlib.sha256(json.dumps([sku, qty, account] if account else [sku, qty]).encode()).hexdigest()[:32]


class WalletGateway:
    """The `wallet` payment provider: a refund credits the reseller's wallet back (once per payment)."""

    name = PROVIDER

    def __init__(self, desk: ResellerDesk) -> None:
        self.desk = desk

    async def refund(self, payment: Payment, reason: str) -> None:
        await self.desk.refund_to_wallet(payment, reason)


class ApiNotifier:
    """The `api` channel's notifier: resellers' systems are not written to; they read their orders over the
    signed API (`GET /api/v1/orders/{id}`). So a replacement code the outbox "sends" for a B2B order (a recalled
    code reissued, core/aftersales.py) is simply there on the next read, and no row waits forever for a channel
    that does not exist."""

    async def deliver(self, recipient: str, delivery: Any) -> None:
        return None

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        return None


class ResellerDesk:
    """Reseller use cases. Built by the composition root (app/bootstrap.py) with what it needs; its batch kinds
    (`b2b_order`, `api_nonce`, `b2b_fill`) go on the committer it is given. What it offers the rest of the shop
    (the `wallet` gateway, the `api` notifier, the commission hooks, the top-up ledger) the root registers."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, vault: Vault, repo: ResellerRepo, *,
                 committer: GroupCommitter, listing: Catalog, guard: Guard, supply: SupplyDesk,
                 wake: Callable[[], None], currency: str | None = None) -> None:
        self.repo = repo
        self.uow = uow
        self.clock = clock
        self.vault = vault
        self.committer = committer
        self.listing = listing  # the shop's catalogue (core.ports.Catalog)
        self.guard = guard
        self.supply = supply
        self.wake = wake  # the outbox dispatcher: something new to send
        self.currency = currency  # a new reseller's wallet currency, when the store has one
        self._keys: dict[str, tuple[float, ApiKey | None, Reseller | None]] = {}
        self._nonce_sweep = 0.0
        self.commission = CommissionPolicy()  # rates (config `resellers`, configure)
        self.wait = timedelta(hours=24)  # partial policy `wait`: refunded when no stock came within this
        self.topup_minutes = 15  # how long a top-up invoice / QR code may be paid
        self.topup_choices: list[tuple[int, int | None]] = []  # (amount, Stars price) offered in the chat
        # What API and group orders are exempt from in the one rules-and-risk check (config resellers.api_exempt
        # / group_exempt; core/rules.py EXEMPTIBLE). The defaults are the settings' defaults.
        self.api_exempt = exemptions(DEFAULT_API_EXEMPT)
        self.group_exempt: frozenset[str] = frozenset()
        committer.register(_OrderRequest, self._order_batch)
        committer.register(NonceUse, self._nonce_batch)
        committer.register(FillWaiting, self._fill_batch)
        self.gateway = WalletGateway(self)  # the `wallet` payment provider
        self.notifier = ApiNotifier()  # the `api` channel

    def configure(self, cfg: Any) -> ResellerDesk:
        """Rates, the wait and the top-up time from the `resellers` config section (config/settings.py)."""
        self.commission = CommissionPolicy(cfg.commission_bp, dict(cfg.commissions))
        self.wait = timedelta(hours=cfg.wait_hours)
        self.topup_minutes = cfg.topup_minutes
        self.topup_choices = [(c.amount, c.stars) for c in cfg.topup_choices]
        self.api_exempt = exemptions(cfg.api_exempt)
        self.group_exempt = exemptions(cfg.group_exempt)
        return self

    # -- accounts (merchant use cases) ------------------------------------------------------------------------
    async def create(self, name: str, *, discount_percent: int = 0, prices: dict[str, int] | None = None,
                     credit_limit: int = 0, currency: str | None = None) -> Reseller:
        """A merchant onboards a reseller: a tier (price list and/or discount), a credit limit, an empty wallet."""
        name = name.strip()
        if not name or len(name) > 64:
            raise ResellerError(ResellerCode.BAD_NAME)
        _check_tier(discount_percent, prices or {}, credit_limit)
        r = Reseller(0, name, "active", discount_percent, dict(prices or {}), credit_limit, 0,
                     currency or self.currency or "CNY", self.clock.now())
        async with self.uow(write=True) as uow:
            if await self.repo.by_name(uow, name) is not None:
                raise ResellerError(ResellerCode.NAME_TAKEN, name=name)
            r.id = await self.repo.add(uow, r)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, r.created_at,
                                                 detail={"reseller": r.id, "op": "create", "name": name})])
            await uow.commit()
        return r

    async def update(self, reseller_id: int, *, discount_percent: int | None = None,
                     prices: dict[str, int] | None = None, credit_limit: int | None = None,
                     status: str | None = None) -> Reseller:
        """A merchant changes a reseller's tier, credit limit or status (active / suspended)."""
        if status is not None and status not in ("active", "suspended"):
            raise ResellerError(ResellerCode.BAD_STATUS, status=status)
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            values: dict[str, Any] = {}
            if discount_percent is not None:
                values["discount_percent"] = discount_percent
            if prices is not None:
                values["prices"] = dict(prices)
            if credit_limit is not None:
                values["credit_limit"] = credit_limit
            if status is not None:
                values["status"] = status
            _check_tier(values.get("discount_percent", r.discount_percent), values.get("prices", r.prices),
                        values.get("credit_limit", r.credit_limit))
            await self.repo.update(uow, reseller_id, values)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, self.clock.now(), detail={
                "reseller": reseller_id, "op": "update", **{k: v for k, v in values.items() if k != "prices"}})])
            await uow.commit()
        self._keys.clear()
        return await self.get(reseller_id)

    async def get(self, reseller_id: int) -> Reseller:
        async with self.uow() as uow:
            r = await self.repo.get(uow, reseller_id)
        if r is None:
            raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
        return r

    async def top_up(self, reseller_id: int, amount: int, *, actor: str, ref: str = "", note: str = ""
                     ) -> WalletEntry:
        """A merchant credits money received (bank transfer, cash) to the wallet. With `ref` (the payment's
        reference) a repeat of the same top-up is the same ledger row, never a second credit."""
        if amount <= 0:
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        now = self.clock.now()
        ref = f"topup:{ref}" if ref else f"topup:{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            if await self.repo.refs(uow, [ref]):
                raise ResellerError(ResellerCode.DUPLICATE_TOPUP, ref=ref)
            entry = WalletEntry(None, reseller_id, "topup", amount, r.balance + amount, ref, now, actor=actor,
                                note=note)
            if not await self.repo.set_balance(uow, reseller_id, r.balance, entry.balance_after):
                raise ConflictError("wallet balance changed")
            await self.repo.add_entries(uow, [entry])
            await uow.commit()
        return entry

    async def statement(self, reseller_id: int, *, limit: int = 50, before_id: int | None = None
                        ) -> list[WalletEntry]:
        """The wallet's movements, newest first (page with before_id = the last row's id)."""
        async with self.uow() as uow:
            return await self.repo.entries(uow, reseller_id, max(1, min(limit, 500)), before_id)

    async def ledger_sum(self, reseller_id: int) -> int:
        async with self.uow() as uow:
            return await self.repo.ledger_sum(uow, reseller_id)

    # -- API keys ---------------------------------------------------------------------------------------------
    async def create_api_key(self, reseller_id: int, *, rate_per_second: int = 20) -> tuple[str, str]:
        """A new API key for a reseller: (key id, secret). The secret is shown once; it is stored encrypted
        by the vault (AES-256-GCM, like codes)."""
        if not 1 <= rate_per_second <= 10_000:
            raise ResellerError(ResellerCode.BAD_RATE, rate=rate_per_second)
        key_id = "rk_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await self.repo.get(uow, reseller_id) is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            row = await self.repo.next_key_row(uow)
            vk, nonce, ct = self.vault.encrypt(API_KEY_AAD_BASE + row, secret)
            await self.repo.add_key(uow, ApiKey(key_id, reseller_id, "active", rate_per_second, now, row), vk,
                                    nonce, ct)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, now, detail={
                "reseller": reseller_id, "op": "api_key", "key_id": key_id})])
            await uow.commit()
        return key_id, secret

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self.uow(write=True) as uow:
            done = await self.repo.set_key_status(uow, key_id, "revoked")
            await uow.commit()
        self._keys.pop(key_id, None)
        return done

    async def api_key(self, key_id: str) -> tuple[ApiKey, Reseller] | None:
        """An active key and its reseller (from a short cache), or None."""
        hit = self._keys.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            return (hit[1], hit[2]) if hit[1] is not None and hit[2] is not None else None
        async with self.uow() as uow:
            found = await self.repo.key(uow, key_id)
            reseller = await self.repo.get(uow, found[0].reseller_id) if found else None
        key: ApiKey | None = None
        if found is not None and found[0].status == "active" and reseller is not None:
            key, vk, nonce, ct = found
            key.secret = self.vault.decrypt(API_KEY_AAD_BASE + key.row_id, vk, nonce, ct)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[key_id] = (time.monotonic(), key, reseller if key else None)
        return (key, reseller) if key is not None and reseller is not None else None

    async def replayed(self, key_id: str, nonce: str, window_seconds: float) -> bool:
        """Records a request's nonce; True when this key used it before (a replay)."""
        return await self.committer.submit(NonceUse(key_id, nonce, window_seconds))

    async def _nonce_batch(self, uow: UnitOfWork, uses: Sequence[NonceUse]) -> list[Any]:
        items = [(u.key_id, u.nonce, u.window_seconds) for u in uses]
        now = self.clock.now()
        window = max(w for _, _, w in items)
        sweep = time.monotonic() - self._nonce_sweep > 60
        if sweep:
            self._nonce_sweep = time.monotonic()
        pairs = [(k, n) for k, n, _ in items]
        forget = now - timedelta(seconds=2 * window) if sweep else None
        seen = await self.repo.seen_nonces(uow, pairs, now, forget)
        out: list[Any] = []
        first: set[tuple[str, str]] = set()
        for p in pairs:
            out.append(p in seen or p in first)
            first.add(p)
        return out

    # -- catalogue and orders (the B2B API's use cases) ---------------------------------------------------------
    async def catalog(self, reseller: Reseller) -> list[tuple[Product, int, int | None]]:
        """Products on sale that the API sells, with this reseller's price and the stock available (None:
        unlimited; supplier and top-up products while their supplier is configured)."""
        supply = self.supply
        products = [p for p in await self.listing.products()
                    if p.kind in (Kind.CODE, Kind.REUSABLE) or supply.supplier_for(p) is not None]
        async with self.uow() as uow:
            counts = await uow.codes.available_counts([p.id for p in products if p.kind is Kind.CODE], MAX_QTY,
                                                      self.clock.now())
            live = await uow.codes.reusable_for([p.id for p in products if p.kind is Kind.REUSABLE])
        return [(p, reseller.price_for(p), counts.get(p.id, 0) if p.kind is Kind.CODE else
                 (None if p.id in live or p.kind in SUPPLIED else 0)) for p in products]

    async def order(self, reseller: Reseller, sku: str, qty: int, idempotency_key: str, account: str = ""
                    ) -> B2BOrder:
        """Buy qty codes of sku, paid from the wallet, delivered at once. The same Idempotency-Key returns the
        same order (never a second one or a second debit); reused for another request it is refused.
        Supplier products are bought upstream after the debit and top-ups recharge `account` (checked against
        the product's pattern): both are `pending` until the supplier finishes (core/suppliers.py), and a
        supplier's failure refunds the wallet."""
        product = await self.listing.product_by_sku(sku)
        if product is None:
            raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
        if product.kind is Kind.TOPUP:
            checked = self.listing.check_account(product, account)
            if checked is None:
                raise StoreError(ErrorCode.BAD_ACCOUNT, sku=sku)
            account = checked
        elif account:
            raise ResellerError(ResellerCode.BAD_REQUEST, field="account")
        req = _OrderRequest(reseller.id, product.id, qty, idempotency_key, request_fingerprint(sku, qty, account),
                            new_order_id(self.clock.now()), account)
        res = await self.committer.submit(req)
        if isinstance(res, _Existing):
            out = await self.get_order(reseller, res.order_id, early=True)
            out.created = False
            return out
        if res.due is not None:  # paid now, the codes are handed over from the effective date (GET the order)
            return B2BOrder(res.order, res.product, [], True, res.balance, due=res.due)
        return B2BOrder(res.order, res.product, decrypt_codes(self.vault, res.stored), True, res.balance)

    async def order_by_key(self, reseller: Reseller, idempotency_key: str) -> B2BOrder:
        """The order an Idempotency-Key made (a caller that lost the answer, or polls a pending top-up)."""
        async with self.uow() as uow:
            found = await self.repo.idempotent(uow, [(reseller.id, idempotency_key)])
        hit = found.get((reseller.id, idempotency_key))
        if hit is None:
            raise StoreError(ErrorCode.NOT_FOUND, idempotency_key=idempotency_key[:64])
        return await self.get_order(reseller, hit[0])

    async def order_for_member(self, reseller_id: int, product: Product, qty: int, key: str, *, buyer: Buyer,
                               chat_id: str, language: str, deliver: str, group: str = ""
                               ) -> tuple[Order, bool, int | None]:
        """A group-chat order (core/groups.py): paid from the reseller's wallet, bought by a member (`buyer`),
        whose codes go out through the outbox on channel `deliver`. The same `key` is the same order, never a
        second debit. Returns (order, made now, the wallet balance after when made now). The product's rules and
        risk are checked for the member like any chat order of theirs (resellers.group_exempt aside)."""
        req = _OrderRequest(reseller_id, product.id, qty, key, request_fingerprint(product.sku, qty),
                            new_order_id(self.clock.now()), buyer=buyer, chat_id=chat_id, language=language,
                            deliver=deliver, group=group)
        res = await self.committer.submit(req)
        if isinstance(res, _Existing):
            async with self.uow() as uow:
                order = await uow.orders.get(res.order_id)
            assert order is not None
            return order, False, None
        return res.order, True, res.balance

    async def check_member_order(self, reseller: Reseller, product: Product, qty: int, *, buyer: Buyer,
                                 group: str) -> None:
        """Raises the refusal (RULE_REFUSED, RISK_REFUSED, ...) a group order would get from the rules-and-risk
        check now, so a quote is not shown for an order that cannot be made. Locks and writes nothing: the
        order's own batch decides again when the member confirms."""
        intent = self._intent(_OrderRequest(reseller.id, product.id, qty, "", "", "", buyer=buyer, group=group),
                              reseller, product)
        async with self.uow() as uow:
            [verdict] = await self.guard.screen(uow, [intent], {product.id: product}, self.clock.now(),
                                                     preview=True)
        if isinstance(verdict, StoreError):
            raise verdict

    async def get_order(self, reseller: Reseller, order_id: str, *, early: bool = False) -> B2BOrder:
        """A reseller's order with its codes (each read is audited as a reveal). Codes of a product delivered on
        its effective date (rule deliver_on_effective) are refused until then (NOT_YET_DUE, as "show codes" in
        the chat); `early`: the order without them instead (a repeated POST answers as the first did)."""
        async with self.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None or order.buyer != reseller.buyer:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            product = await uow.products.get(order.product_id)
            due = self._due(order, product)
            if due is not None:
                if not early:
                    raise StoreError(ErrorCode.NOT_YET_DUE, date=due.strftime("%Y-%m-%d %H:%M UTC"))
                return B2BOrder(order, product, [], False, due=due)
            stored = (await load_stored(uow, [order]))[order.id] if order.status is OrderStatus.DELIVERED else []
            await uow.audit.add_many([AuditEntry("reveal", reseller.buyer.key, CHANNEL, self.clock.now(), order.id,
                                                 order.product_id, detail={"codes": len(stored), "via": "api"})])
            await uow.commit()
        product = await self.listing.product(order.product_id)
        assert product is not None
        return B2BOrder(order, product, decrypt_codes(self.vault, stored), False)

    async def _order_batch(self, uow: UnitOfWork, reqs: Sequence[_OrderRequest]) -> list[Any]:
        """Make, pay (wallet) and sell each B2B order; a refused one holds and debits nothing. Orders waiting for
        stock (policy `wait`) are served first, oldest first, so a newer order never takes their codes."""
        now = self.clock.now()
        results: list[Any] = [None] * len(reqs)
        landed = await self.repo.idempotent(uow, sorted({(r.reseller_id, r.key) for r in reqs}))
        products = await uow.products.get_many(sorted({r.product_id for r in reqs}))
        waiting = await self.repo.waiting(uow, sorted(products))
        resellers = await self.repo.lock(uow, sorted({r.reseller_id for r in reqs} | {w[1] for w in waiting}))
        first: dict[tuple[int, str], int] = {}
        todo: list[int] = []
        for i, r in enumerate(reqs):
            k = (r.reseller_id, r.key)
            if k in landed:
                oid, fp = landed[k]
                results[i] = _Existing(oid) if fp == r.fingerprint else ResellerError(ResellerCode.IDEMPOTENCY_KEY_REUSED)
            elif k in first:
                continue  # settled below, like the first request with this key
            else:
                first[k] = i
                todo.append(i)
        supplied = {pid for pid, p in products.items() if p.kind in SUPPLIED and self.supply.supplier_for(p)}
        # The account, the product and the quantity; then the product's rules and risk, decided by the same
        # function as for every chat order (core/risk.py Guard.screen), with the member as the buyer of a group
        # order and the reseller (api:<id>) of an API order; then the stock and the wallet.
        checked: list[int] = []
        for i in todo:
            err = self._refusal(reqs[i], resellers.get(reqs[i].reseller_id), products.get(reqs[i].product_id),
                                supplied)
            if err is not None:
                results[i] = err
            else:
                checked.append(i)
        verdicts = await self.guard.screen(uow, [self._intent(reqs[i], resellers[reqs[i].reseller_id],
                                                                   products[reqs[i].product_id]) for i in checked],
                                                products, now)
        assessed: dict[int, Assessment] = {}
        for i, verdict in zip(checked, verdicts, strict=True):
            if isinstance(verdict, Assessment):
                assessed[i] = verdict
            else:
                results[i] = verdict
        todo = [i for i in checked if i in assessed]
        wanted: dict[int, int] = {}
        for pid, qty in [(w[2], w[3]) for w in waiting] + [(reqs[i].product_id, reqs[i].qty) for i in todo]:
            p = products.get(pid)
            if p is not None and p.kind is Kind.CODE and 1 <= qty <= MAX_QTY:
                wanted[p.id] = wanted.get(p.id, 0) + qty
        pools = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        await self._serve_waiting(uow, waiting, pools, now)
        live = await uow.codes.reusable_for(sorted({p.id for p in products.values() if p.kind is Kind.REUSABLE}))
        balance = {rid: r.balance for rid, r in resellers.items()}
        made: list[tuple[int, Order, Product]] = []
        assignments: list[tuple[int, str]] = []
        entries: list[WalletEntry] = []
        waits: list[Waiting] = []
        supply: list[OutboxItem] = []
        for i in todo:
            r = reqs[i]
            reseller, p = resellers[r.reseller_id], products[r.product_id]
            policy = partial_policy(p)
            err = self._short(r, p, pools, live, policy)
            if err is None:
                unit = reseller.price_for(p)
                amount = unit * r.qty
                if balance[reseller.id] + reseller.credit_limit < amount:
                    err = ResellerError(ResellerCode.INSUFFICIENT_FUNDS, needed=amount,
                                        available=balance[reseller.id] + reseller.credit_limit)
            if err is not None:
                results[i] = err
                continue
            pending = p.kind in SUPPLIED  # bought upstream after this commit (outbox buy / topup)
            short = p.kind is Kind.CODE and len(pools[p.id]) < r.qty  # only with policy partial or wait
            waits_for_stock = short and policy == "wait"
            later = pending or waits_for_stock
            order = Order(r.order_id, r.buyer or reseller.buyer, r.chat_id, p.id, r.qty, unit, amount, p.currency,
                          None, OrderStatus.PENDING if later else OrderStatus.DELIVERED, r.language, now, now,
                          paid_at=now, delivered_at=None if later else now, account=r.account)
            balance[reseller.id] -= amount
            entries.append(WalletEntry(None, reseller.id, "debit", -amount, balance[reseller.id],
                                       f"order:{order.id}", now, order.id, actor=order.buyer.key))
            if pending:  # a group order's codes then go to the member like its pool codes would (r.deliver)
                supply.append(OutboxItem(None, "topup" if p.kind is Kind.TOPUP else "buy", r.deliver or CHANNEL,
                                         r.chat_id, order.id, {"language": r.language}))
            elif waits_for_stock:
                pools[p.id] = []  # first come first served: later orders of this product queue behind it
                waits.append((order.id, reseller.id, p.id, r.qty, now, now + self.wait, r.deliver or ""))
            elif p.kind is Kind.CODE:
                if short:  # policy partial: what there is, the rest credited back at once
                    got = len(pools[p.id])
                    back = unit * (r.qty - got)
                    order.qty, order.amount, order.note = got, unit * got, f"partial {got}/{r.qty}"
                    balance[reseller.id] += back
                    entries.append(WalletEntry(None, reseller.id, "refund", back, balance[reseller.id],
                                               f"partial:{order.id}", now, order.id, actor="system",
                                               note=f"{r.qty - got} of {r.qty} not in stock"))
                take, pools[p.id] = pools[p.id][: order.qty], pools[p.id][order.qty :]
                assignments.extend((cid, order.id) for cid in take)
            else:
                order.reusable_code_id = live[p.id]
            made.append((i, order, p))
        if made:
            orders = [o for _, o, _ in made]
            await uow.orders.insert_many(orders)
            if assignments:
                if await uow.codes.hold(assignments) != len(assignments):
                    raise ConflictError("codes were claimed by another process")
                pool_ids = [o.id for o in orders if o.reusable_code_id is None and o.status is OrderStatus.DELIVERED]
                if await uow.codes.sell_held(pool_ids) != len(assignments):
                    raise ConflictError("held codes changed under a B2B order")
            payer = {reqs[i].order_id: Buyer(CHANNEL, str(reqs[i].reseller_id)).key for i, _, _ in made}
            # The payer is always the reseller (api:<id>): a refund credits the wallet back, whoever the buyer.
            await uow.payments.insert_many([
                Payment(None, o.id, PROVIDER, f"W{o.id}", o.amount, o.currency, payer[o.id], "captured", now)
                for o in orders])
            for rid in sorted({reqs[i].reseller_id for i, _, _ in made}):
                if not await self.repo.set_balance(uow, rid, resellers[rid].balance, balance[rid]):
                    raise ConflictError("wallet balance changed under a B2B order")
            await self.repo.add_entries(uow, entries)
            await self.repo.add_waiting(uow, waits)
            await self.repo.add_idempotent(uow, [(reqs[i].reseller_id, reqs[i].key, o.id, reqs[i].fingerprint)
                                                 for i, o, _ in made], now)
            await self.guard.settle(uow, [(assessed[i], o) for i, o, _ in made], now)  # scores, as for chat
            due = {o.id: d for _, o, p in made if (d := self._due(o, p)) is not None}
            delivered = [AuditEntry("deliver", o.buyer.key, CHANNEL, now, o.id, p.id,
                                    detail={"codes": o.qty, "via": reqs[i].deliver or "api"})
                         for i, o, p in made if o.status is OrderStatus.DELIVERED and o.id not in due]
            if delivered:
                await uow.audit.add_many(delivered)
            sends = [OutboxItem(None, "deliver", reqs[i].deliver, reqs[i].chat_id, o.id,
                                {"language": o.language})
                     for i, o, _ in made if reqs[i].deliver and o.status is OrderStatus.DELIVERED]
            # group-chat orders: the codes go to the member through the outbox, after commit; goods that start
            # later on their date (deliver_on_effective), the member told now, as a chat buyer is at payment
            await self._send(uow, sends, {o.id: o for o in orders}, due)
            if supply:
                await uow.outbox.add_many(supply)
            if sends or supply:
                self.committer.after_this_commit(self.wake)
            stored = await load_stored(uow, [o for o in orders if o.status is OrderStatus.DELIVERED
                                             and o.id not in due])
            for i, o, p in made:
                results[i] = _Made(o, p, stored.get(o.id, []), balance[reqs[i].reseller_id], due.get(o.id))
        for i, r in enumerate(reqs):  # a key repeated within this batch: the first request's outcome
            k = (r.reseller_id, r.key)
            if results[i] is None:
                j = first[k]
                res = results[j]
                if reqs[j].fingerprint != r.fingerprint:
                    results[i] = ResellerError(ResellerCode.IDEMPOTENCY_KEY_REUSED)
                elif isinstance(res, _Made):
                    results[i] = _Existing(res.order.id)
                else:
                    results[i] = res
        return results

    def _intent(self, r: _OrderRequest, reseller: Reseller, p: Product) -> Intent:
        """A B2B order as the rules-and-risk check sees it: paid at once by a reseller (nothing held), worth what
        the wallet pays; a group order is its member's (and exempt from resellers.group_exempt), an API order
        the reseller's (resellers.api_exempt)."""
        return Intent(r.buyer or reseller.buyer, p.id, r.qty, reseller.price_for(p) * r.qty, group=r.group,
                      holds=False, reseller=True, exempt=self.group_exempt if r.buyer else self.api_exempt)

    async def _send(self, uow: UnitOfWork, sends: Sequence[OutboxItem], orders: dict[str, Order],
                    due: dict[str, datetime]) -> None:
        """Outbox deliveries of group orders: now, or (deliver_on_effective) on their date with a notice now."""
        if not sends:
            return
        now_items = [x for x in sends if x.order_id not in due]
        if now_items:
            await uow.outbox.add_many(now_items)
        for x in sends:
            when = due.get(x.order_id or "")
            if when is None:
                continue
            o = orders[x.order_id or ""]
            await uow.outbox.add_many([x], due_at=when)
            await uow.outbox.add_many([OutboxItem(None, "notify", x.channel, x.recipient, o.id, {
                "key": "rules.scheduled", "language": o.language,
                "params": {"order": o.id, "date": when.strftime("%Y-%m-%d %H:%M UTC")}})])
        self.committer.after_this_commit(self.wake)

    def _due(self, order: Order, product: Product | None) -> datetime | None:
        """When a delivered order's codes become the buyer's, if that is still to come (deliver_on_effective)."""
        if order.status is not OrderStatus.DELIVERED or order.paid_at is None or product is None:
            return None
        due = rules_of(product.rules).delivery_due(order.paid_at)
        return due if due is not None and due > self.clock.now() else None

    @staticmethod
    def _refusal(r: _OrderRequest, reseller: Reseller | None, p: Product | None, supplied: set[int]
                 ) -> Exception | None:
        """What refuses an order before the rules: the account, the product, the quantity."""
        if reseller is None:
            return ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=r.reseller_id)
        if reseller.status != "active":
            return ResellerError(ResellerCode.ACCOUNT_SUSPENDED)
        if p is None:
            return StoreError(ErrorCode.NOT_FOUND, product_id=r.product_id)
        if not p.active:
            return StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
        if p.kind in SUPPLIED and p.id not in supplied:
            return StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
        if p.kind is Kind.TOPUP and not r.account:
            return StoreError(ErrorCode.BAD_ACCOUNT, sku=p.sku)
        top = MAX_QTY if p.kind in (Kind.CODE, Kind.SUPPLIER) else 1
        if not 1 <= r.qty <= top:
            return StoreError(ErrorCode.BAD_QUANTITY, min=1, max=top)
        return None

    @staticmethod
    def _short(r: _OrderRequest, p: Product, pools: dict[int, list[int]], live: dict[int, int], policy: str
               ) -> Exception | None:
        """SOLD_OUT when the stock cannot serve the order under the product's partial policy."""
        have = len(pools.get(p.id, []))
        if p.kind is Kind.CODE and have < r.qty and (policy == "refuse" or (policy == "partial" and have == 0)):
            return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=have)
        if p.kind is Kind.REUSABLE and p.id not in live:
            return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=0)
        return None

    # -- orders waiting for stock (partial policy `wait`) ------------------------------------------------------
    async def fill_waiting(self, product_ids: Sequence[int] | None = None) -> tuple[int, int]:
        """Complete B2B orders waiting for stock, oldest first, now that codes came in (import, restock job); those
        waiting longer than the configured wait are refunded to the wallet. Returns (completed, refunded)."""
        out: tuple[int, int] = await self.committer.submit(
            FillWaiting(None if product_ids is None else tuple(sorted(set(product_ids)))))
        return out

    async def _fill_batch(self, uow: UnitOfWork, fills: Sequence[FillWaiting]) -> list[Any]:
        items = [f.product_ids for f in fills]
        now = self.clock.now()
        scope = None if any(i is None for i in items) else sorted({pid for i in items if i for pid in i})
        waiting = await self.repo.waiting(uow, scope)
        if not waiting:
            return [(0, 0)] * len(items)
        resellers = await self.repo.lock(uow, sorted({w[1] for w in waiting}))
        wanted: dict[int, int] = {}
        for w in waiting:
            wanted[w[2]] = wanted.get(w[2], 0) + w[3]
        pools = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        served = await self._serve_waiting(uow, waiting, pools, now)
        late = [w for w in waiting if w[0] not in served and w[5] <= now]
        if late:
            orders = await uow.orders.get_many([w[0] for w in late], for_update=True)
            late = [w for w in late if w[0] in orders and orders[w[0]].status is OrderStatus.PENDING]
            balance = {rid: r.balance for rid, r in resellers.items()}
            entries: list[WalletEntry] = []
            for w in late:
                o = orders[w[0]]
                balance[w[1]] += o.amount
                entries.append(WalletEntry(None, w[1], "refund", o.amount, balance[w[1]], f"waited:{o.id}", now, o.id,
                                           actor="system", note="no stock within the wait"))
            for rid in sorted({w[1] for w in late}):
                if not await self.repo.set_balance(uow, rid, resellers[rid].balance, balance[rid]):
                    raise ConflictError("wallet balance changed under a refund")
            await self.repo.add_entries(uow, entries)
            await uow.orders.set_status([w[0] for w in late], OrderStatus.REFUNDED, now)
            await self.repo.drop_waiting(uow, [w[0] for w in late])
            await uow.audit.add_many([AuditEntry("refund", "system", CHANNEL, now, w[0], w[2],
                                                 detail={"reason": "waited", "amount": orders[w[0]].amount})
                                      for w in late])
        return [(len(served), len(late))] * len(items)

    async def _serve_waiting(self, uow: UnitOfWork, waiting: Sequence[Waiting], pools: dict[int, list[int]],
                             now: datetime) -> set[str]:
        """Waiting orders served from the pools, oldest first, all of an order's codes or none; the first one that
        cannot be served stops its product (its pool is emptied: nobody overtakes it). A group order's codes go to
        its member through the outbox, like when it was made."""
        assignments: list[tuple[int, str]] = []
        served: list[Waiting] = []
        for w in waiting:
            pool = pools.get(w[2], [])
            if len(pool) < w[3]:
                pools[w[2]] = []
                continue
            assignments.extend((cid, w[0]) for cid in pool[: w[3]])
            pools[w[2]] = pool[w[3] :]
            served.append(w)
        if not served:
            return set()
        ids = [w[0] for w in served]
        if await uow.codes.hold(assignments) != len(assignments) or \
                await uow.codes.sell_held(ids) != len(assignments):
            raise ConflictError("codes were claimed by another process")
        await uow.orders.set_status(ids, OrderStatus.DELIVERED, now, delivered=True)
        await self.repo.drop_waiting(uow, ids)
        await uow.audit.add_many([AuditEntry("deliver", "system", CHANNEL, now, w[0], w[2],
                                             detail={"codes": w[3], "via": w[6] or "api", "waited": True})
                                  for w in served])
        to_send = [w for w in served if w[6]]
        if to_send:
            orders = await uow.orders.get_many([w[0] for w in to_send])
            products = await uow.products.get_many(sorted({w[2] for w in to_send}))
            due = {w[0]: d for w in to_send if (d := self._due(orders[w[0]], products.get(w[2]))) is not None}
            await self._send(uow, [OutboxItem(None, "deliver", w[6], orders[w[0]].chat_id, w[0],
                                              {"language": orders[w[0]].language}) for w in to_send], orders, due)
        return set(ids)

    # -- refunds ----------------------------------------------------------------------------------------------
    async def refund_to_wallet(self, payment: Payment, reason: str) -> None:
        """The wallet gateway's refund: the payment's amount back to the wallet, once (ledger ref per payment)."""
        channel, _, rid = payment.payer.partition(":")
        if channel != CHANNEL or not rid.isdigit():
            raise ResellerError(ResellerCode.NOT_A_WALLET_PAYMENT, payment=payment.id)
        ref = f"refund:{payment.id}"
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [int(rid)])).get(int(rid))
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=rid)
            if await self.repo.refs(uow, [ref]):
                return  # refunded already (a retry of the outbox row)
            entry = WalletEntry(None, r.id, "refund", payment.amount, r.balance + payment.amount, ref, now,
                                payment.order_id, actor="system", note=reason)
            if not await self.repo.set_balance(uow, r.id, r.balance, entry.balance_after):
                raise ConflictError("wallet balance changed")
            await self.repo.add_entries(uow, [entry])
            await uow.commit()

    # -- who acts for a reseller in the chat --------------------------------------------------------------------
    async def bind_owner(self, reseller_id: int, buyer: Buyer | None, *, unbind: Buyer | None = None) -> None:
        """A merchant lets a chat identity (telegram:<id>, wechat:<openid>) act for a reseller (its wallet top-ups
        and commission view), or takes that away (`unbind`). Audited."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await self.repo.get(uow, reseller_id) is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            who = buyer or unbind
            assert who is not None
            await self.repo.set_owner(uow, who, reseller_id if buyer is not None else None, now)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, now, detail={
                "reseller": reseller_id, "op": "owner" if buyer is not None else "unowner", "who": who.key})])
            await uow.commit()

    async def reseller_of(self, buyer: Buyer) -> Reseller | None:
        """The reseller this chat identity acts for (active or not), or None."""
        async with self.uow() as uow:
            rid = await self.repo.owner_of(uow, buyer)
            return await self.repo.get(uow, rid) if rid is not None else None

    # -- top-ups paid by the reseller (Telegram Stars, WeChat Pay) ----------------------------------------------
    async def start_topup(self, reseller: Reseller, payer: Buyer, amount: int, provider: str,
                          stars: int | None = None) -> Topup:
        """A top-up to be paid: its id goes into the Stars invoice (payload) or the WeChat Pay order
        (out_trade_no); paying it credits `amount` once."""
        if amount <= 0 or (stars is not None and stars <= 0):
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        if reseller.status != "active":
            raise ResellerError(ResellerCode.ACCOUNT_SUSPENDED)
        now = self.clock.now()
        t = Topup(TOPUP_PREFIX + new_order_id(now), reseller.id, amount, reseller.currency, stars, provider,
                  payer.key, "open", now, now + timedelta(minutes=self.topup_minutes))
        async with self.uow(write=True) as uow:
            await self.repo.add_topup(uow, t)
            await uow.commit()
        return t

    async def topup(self, topup_id: str) -> Topup | None:
        async with self.uow() as uow:
            return await self.repo.topup(uow, topup_id)

    async def topup_payable(self, topup_id: str, payer: Buyer, amount: int, currency: str) -> str | None:
        """Before a provider takes the money (Telegram's pre-checkout): None when this payer may pay this amount
        for this open top-up now, else why not (unknown | not_yours | expired | not_payable | amount)."""
        t = await self.topup(topup_id)
        if t is None:
            return "unknown"
        if t.payer != payer.key:
            return "not_yours"
        if t.status != "open":
            return "not_payable"
        if t.expires_at <= self.clock.now():
            return "expired"
        if (amount, currency) != _price_of(t):
            return "amount"
        return None

    async def topup_wallet(self, topup_id: str, provider: str, txn_id: str, amount: int, currency: str,
                           payer: Buyer | None = None, *, any_payer: bool = False) -> TopupResult:
        """A provider says a top-up was paid: recorded once by (provider, txn id); the first payment of an open
        top-up credits the wallet (one ledger row); a repeat of the notice does nothing; any other payment (another
        payer, another amount, a top-up paid already, an unknown one) is refunded through the outbox."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            t = await self.repo.topup(uow, topup_id)
            # The reseller's row is locked before the payment is looked for: a concurrent notice of the same
            # payment (another process) waits here and then finds it recorded.
            r = (await self.repo.lock(uow, [t.reseller_id])).get(t.reseller_id) if t is not None else None
            if await uow.payments.existing([(provider, txn_id)]):
                return TopupResult("duplicate", await self.repo.topup(uow, topup_id))
            reason = ""
            banned = await banned_payers(uow, [payer])
            if payer is not None and payer.key in banned:
                reason = BANNED_PAYER
            elif t is None or r is None:
                reason = "unknown_order"
            elif payer is not None and payer.key != t.payer and not any_payer:
                reason = "wrong_payer"
            elif t.provider != provider or (amount, currency) != _price_of(t):
                reason = "amount_mismatch"
            elif t.status != "open":
                reason = "paid_twice"
            who = payer.key if payer is not None else (t.payer if t is not None else "")
            [pay] = await uow.payments.insert_many([Payment(None, None, provider, txn_id, amount, currency, who,
                                                            "refund_pending" if reason else "captured", now)])
            balance = None
            if reason:
                channel, _, recipient = who.partition(":")
                await uow.outbox.add_many([OutboxItem(None, "refund", channel, recipient, None, {
                    "payment_id": pay.id, "reason": reason, "language": ""})])
            else:
                assert t is not None and r is not None
                if not await self.repo.move_topup(uow, t.id, "open", "paid", {"payment_id": pay.id, "paid_at": now}):
                    raise ConflictError("top-up changed under its payment")
                balance = r.balance + t.amount
                if not await self.repo.set_balance(uow, r.id, r.balance, balance):
                    raise ConflictError("wallet balance changed")
                await self.repo.add_entries(uow, [WalletEntry(None, r.id, "topup", t.amount, balance, f"topup:{t.id}",
                                                              now, actor=who, note=f"{provider} {txn_id}"[:200])])
                t.status, t.payment_id, t.paid_at = "paid", pay.id, now
            await uow.audit.add_many([AuditEntry("topup" if not reason else "refund", who or "system", CHANNEL, now,
                                                 detail={"topup": topup_id, "provider": provider,
                                                         "payment_id": pay.id, "reason": reason})])
            if reason == BANNED_PAYER and payer is not None:
                await uow.audit.add_many([banned_audit(payer, banned[payer.key], provider, txn_id, pay.id, now,
                                                       topup=topup_id)])
            await uow.commit()
        if reason:
            self.wake()
            return TopupResult("refunding", t, reason)
        return TopupResult("credited", t, balance=balance)

    async def refund_topup(self, topup_id: str, *, actor: str) -> WalletEntry:
        """A merchant gives a paid top-up back: the wallet is debited by it (never below the credit limit) and the
        payment refunded through its provider (the outbox retries until the provider takes it)."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            t = await self.repo.topup(uow, topup_id)
            if t is None or t.payment_id is None:
                raise ResellerError(ResellerCode.UNKNOWN_TOPUP, topup=topup_id)
            r = (await self.repo.lock(uow, [t.reseller_id]))[t.reseller_id]
            if t.status != "paid":
                raise ResellerError(ResellerCode.TOPUP_NOT_PAID, topup=topup_id, status=t.status)
            if r.balance + r.credit_limit < t.amount:
                raise ResellerError(ResellerCode.INSUFFICIENT_FUNDS, needed=t.amount, available=r.balance + r.credit_limit)
            entry = WalletEntry(None, r.id, "topup_back", -t.amount, r.balance - t.amount, f"topup_back:{t.id}", now,
                                actor=actor, note="top-up refunded")
            if not await self.repo.move_topup(uow, t.id, "paid", "refunded", {}) or \
                    not await self.repo.set_balance(uow, r.id, r.balance, entry.balance_after):
                raise ConflictError("top-up or wallet changed")
            await self.repo.add_entries(uow, [entry])
            await uow.payments.set_status(t.payment_id, "refund_pending")
            channel, _, recipient = t.payer.partition(":")
            await uow.outbox.add_many([OutboxItem(None, "refund", channel, recipient, None, {
                "payment_id": t.payment_id, "reason": "topup_refund", "language": ""})])
            await uow.audit.add_many([AuditEntry("refund", actor, CHANNEL, now, detail={
                "topup": t.id, "reseller": r.id, "amount": t.amount})])
            await uow.commit()
        self.wake()
        return entry

    # -- commissions (分销) ----------------------------------------------------------------------------------------
    async def accrue(self, uow: UnitOfWork, orders: Sequence[Order]) -> None:
        """In a payment batch's transaction: a commission row for each paid order of a referred customer (at most
        one per order: the ref is unique). A reseller's own identities earn nothing on their own orders."""
        chat = [o for o in orders if o.buyer.channel != CHANNEL and o.amount > 0]
        if not chat or not (self.commission.default_bp or any(self.commission.by_reseller.values())):
            return  # no commissions configured: not even the customers' read
        buyers = sorted({o.buyer for o in chat}, key=lambda b: b.key)
        payloads = await self.repo.referrals(uow, buyers)
        ref_of = {k: int(v[len(REF_PREFIX):]) for k, v in payloads.items()
                  if v.startswith(REF_PREFIX) and v[len(REF_PREFIX):].isdigit() and len(v) < 20}
        if not ref_of:
            return
        own = await self.repo.owned(uow, [b for b in buyers if b.key in ref_of])
        resellers = {rid: await self.repo.get(uow, rid) for rid in sorted(set(ref_of.values()))}
        now = self.clock.now()
        rows: list[CommissionEntry] = []
        for o in chat:
            r = resellers.get(ref_of.get(o.buyer.key, -1))
            if r is None or r.status != "active" or o.buyer.key in own:
                continue
            amount = commission_of(o.amount, self.commission.rate(r))
            if amount > 0:
                rows.append(CommissionEntry(None, r.id, "accrual", amount, o.currency, f"accrue:{o.id}", now, o.id,
                                            actor=o.buyer.key))
        if rows:
            known = await self.repo.commission_refs(uow, [e.ref for e in rows])
            await self.repo.add_commissions(uow, [e for e in rows if e.ref not in known])

    async def reverse(self, uow: UnitOfWork, order_ids: Sequence[str]) -> None:
        """In the refund's transaction: the commission of each refunded order is taken back (once)."""
        if not order_ids:
            return
        accrued = await self.repo.commission_refs(uow, [f"accrue:{oid}" for oid in order_ids])
        if not accrued:
            return
        done = await self.repo.commission_refs(uow, [f"reverse:{e.order_id}" for e in accrued.values()])
        now = self.clock.now()
        await self.repo.add_commissions(uow, [
            CommissionEntry(None, e.reseller_id, "reversal", -e.amount, e.currency, f"reverse:{e.order_id}", now,
                            e.order_id, actor="system", note="order refunded")
            for e in accrued.values() if f"reverse:{e.order_id}" not in done])

    async def payout(self, reseller_id: int, amount: int, *, actor: str, note: str = "") -> CommissionEntry:
        """A merchant records a commission paid out to a reseller: never more than its commission balance (the
        reseller's row is locked meanwhile, so two payouts cannot both spend the same balance)."""
        if amount <= 0:
            raise ResellerError(ResellerCode.BAD_AMOUNT, amount=amount)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            have = await self.repo.commission_sum(uow, reseller_id)
            if amount > have:
                raise ResellerError(ResellerCode.INSUFFICIENT_COMMISSION, needed=amount, available=have)
            e = CommissionEntry(None, reseller_id, "payout", -amount, r.currency,
                                f"payout:{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}", now, actor=actor, note=note[:200])
            await self.repo.add_commissions(uow, [e])
            await uow.audit.add_many([AuditEntry("reseller", actor, CHANNEL, now, detail={
                "reseller": reseller_id, "op": "payout", "amount": amount})])
            await uow.commit()
        return e

    async def commissions(self, reseller_id: int, *, limit: int = 20) -> tuple[int, list[CommissionEntry]]:
        """The commission balance (accrued - reversed - paid out) and the newest entries."""
        async with self.uow() as uow:
            return (await self.repo.commission_sum(uow, reseller_id),
                    await self.repo.commission_entries(uow, reseller_id, max(1, min(limit, 500))))


def _price_of(t: Topup) -> tuple[int | None, str]:
    """What the provider charges for a top-up: its Stars (XTR) on Telegram, else its amount in its currency."""
    return (t.stars, "XTR") if t.stars else (t.amount, t.currency)


def partial_policy(product: Product) -> str:
    """What a B2B order larger than the stock does for this product: refuse (default), partial, wait."""
    from core.rules import rules_of

    return rules_of(product.rules).partial


def _check_tier(discount_percent: int, prices: dict[str, int], credit_limit: int) -> None:
    if not 0 <= discount_percent <= 100:
        raise ResellerError(ResellerCode.BAD_DISCOUNT, discount=discount_percent)
    if credit_limit < 0:
        raise ResellerError(ResellerCode.BAD_CREDIT_LIMIT, credit_limit=credit_limit)
    for sku, price in prices.items():
        if not isinstance(price, int) or price < 0:
            raise ResellerError(ResellerCode.BAD_PRICE, sku=sku)
