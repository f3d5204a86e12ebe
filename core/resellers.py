"""Resellers (issue 8): business buyers with their own price tier, a credit limit and a prepaid wallet.

The wallet is a ledger: every movement is a `wallet_ledger` row (top-up by a merchant, debit for an order, refund
credited back) and the reseller's `balance` column is always the sum of its rows, because both change in the same
transaction and the balance only ever changes by a compare-and-set (`UPDATE ... WHERE balance = <read>`) whose
row count is checked. B2B orders are made, paid from the wallet and sold in one group-commit batch
(`b2b_order`): stock is checked, then the wallet, in arrival order, so a batch of racing orders never spends
more than the balance plus the credit limit, and a refused order holds and debits nothing. Across processes
(PostgreSQL) the reseller rows are locked `FOR UPDATE` and the compare-and-set refuses a lost update anyway.

`wallet` is a payment provider like Telegram Stars or WeChat Pay: its refund credits the wallet back, once per
payment (the ledger row's `ref` is unique).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.errors import ConflictError, ErrorCode, StoreError
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
from core.ports import UnitOfWork

PROVIDER = "wallet"
CHANNEL = "api"  # the buyer channel of reseller orders: Buyer("api", "<reseller id>")
MAX_QTY = 1000  # codes in one B2B order (bulk), whatever the product's max_qty for chat buyers
KEY_CACHE_SECONDS = 5.0  # API keys and their resellers read from memory this long (suspensions show within it)
SUPPLIED = frozenset({Kind.SUPPLIER, Kind.TOPUP})  # bought from a supplier after the wallet paid
API_KEY_AAD_BASE = 1 << 63  # vault associated data of an API secret: distinct from every code row id


class ResellerError(Exception):
    """A reseller use case refused; `code` is stable (the B2B API returns it as is)."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        detail = ", ".join(f"{k}={v}" for k, v in params.items())
        super().__init__(code + (f" ({detail})" if detail else ""))


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


@dataclass(slots=True)
class _Made:
    order: Order
    product: Product
    stored: list[StoredCode] = field(repr=False)
    balance: int


@dataclass(slots=True)
class _Existing:
    order_id: str


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
    """Reseller use cases. Attached to a Shop (`ResellerDesk.attach`): registers the `wallet` gateway and the
    `b2b_order` / `api_nonce` batch handlers on the shop's group committer."""

    def __init__(self, shop: Any, repo: ResellerRepo) -> None:
        self.shop = shop
        self.repo = repo
        self.uow = shop.uow
        self.clock = shop.clock
        self.vault = shop.vault
        self._keys: dict[str, tuple[float, ApiKey | None, Reseller | None]] = {}
        self._nonce_sweep = 0.0

    @classmethod
    def attach(cls, shop: Any, repo: ResellerRepo) -> ResellerDesk:
        desk = cls(shop, repo)
        shop.gateways[PROVIDER] = WalletGateway(desk)
        shop.notifiers.setdefault(CHANNEL, ApiNotifier())
        shop.committer.register("b2b_order", desk._order_batch)
        shop.committer.register("api_nonce", desk._nonce_batch)
        shop.resellers = desk
        return desk

    # -- accounts (merchant use cases) ------------------------------------------------------------------------
    async def create(self, name: str, *, discount_percent: int = 0, prices: dict[str, int] | None = None,
                     credit_limit: int = 0, currency: str | None = None) -> Reseller:
        """A merchant onboards a reseller: a tier (price list and/or discount), a credit limit, an empty wallet."""
        name = name.strip()
        if not name or len(name) > 64:
            raise ResellerError("bad_name")
        _check_tier(discount_percent, prices or {}, credit_limit)
        r = Reseller(0, name, "active", discount_percent, dict(prices or {}), credit_limit, 0,
                     currency or self.shop.currency or "CNY", self.clock.now())
        async with self.uow(write=True) as uow:
            if await self.repo.by_name(uow, name) is not None:
                raise ResellerError("name_taken", name=name)
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
            raise ResellerError("bad_status", status=status)
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError("unknown_reseller", reseller=reseller_id)
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
            raise ResellerError("unknown_reseller", reseller=reseller_id)
        return r

    async def top_up(self, reseller_id: int, amount: int, *, actor: str, ref: str = "", note: str = ""
                     ) -> WalletEntry:
        """A merchant credits money received (bank transfer, cash) to the wallet. With `ref` (the payment's
        reference) a repeat of the same top-up is the same ledger row, never a second credit."""
        if amount <= 0:
            raise ResellerError("bad_amount", amount=amount)
        now = self.clock.now()
        ref = f"topup:{ref}" if ref else f"topup:{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError("unknown_reseller", reseller=reseller_id)
            if await self.repo.refs(uow, [ref]):
                raise ResellerError("duplicate_topup", ref=ref)
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
            raise ResellerError("bad_rate", rate=rate_per_second)
        key_id = "rk_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await self.repo.get(uow, reseller_id) is None:
                raise ResellerError("unknown_reseller", reseller=reseller_id)
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
        return await self.shop.committer.submit("api_nonce", (key_id, nonce, window_seconds))

    async def _nonce_batch(self, uow: UnitOfWork, items: Sequence[tuple[str, str, float]]) -> list[Any]:
        from datetime import timedelta

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
        supply = self.shop.supply
        products = [p for p in await self.shop.products()
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
        product = await self.shop.product_by_sku(sku)
        if product is None:
            raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
        if product.kind is Kind.TOPUP:
            checked = self.shop.check_account(product, account)
            if checked is None:
                raise StoreError(ErrorCode.BAD_ACCOUNT, sku=sku)
            account = checked
        elif account:
            raise ResellerError("bad_request", field="account")
        req = _OrderRequest(reseller.id, product.id, qty, idempotency_key, request_fingerprint(sku, qty, account),
                            new_order_id(self.clock.now()), account)
        res = await self.shop.committer.submit("b2b_order", req)
        if isinstance(res, _Existing):
            out = await self.get_order(reseller, res.order_id)
            out.created = False
            return out
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
                               chat_id: str, language: str, deliver: str) -> tuple[Order, bool, int | None]:
        """A group-chat order (core/groups.py): paid from the reseller's wallet, bought by a member (`buyer`),
        whose codes go out through the outbox on channel `deliver`. The same `key` is the same order, never a
        second debit. Returns (order, made now, the wallet balance after when made now)."""
        req = _OrderRequest(reseller_id, product.id, qty, key, request_fingerprint(product.sku, qty),
                            new_order_id(self.clock.now()), buyer=buyer, chat_id=chat_id, language=language,
                            deliver=deliver)
        res = await self.shop.committer.submit("b2b_order", req)
        if isinstance(res, _Existing):
            async with self.uow() as uow:
                order = await uow.orders.get(res.order_id)
            assert order is not None
            return order, False, None
        return res.order, True, res.balance

    async def get_order(self, reseller: Reseller, order_id: str) -> B2BOrder:
        """A reseller's order with its codes (each read is audited as a reveal)."""
        async with self.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None or order.buyer != reseller.buyer:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            stored = (await load_stored(uow, [order]))[order.id] if order.status is OrderStatus.DELIVERED else []
            await uow.audit.add_many([AuditEntry("reveal", reseller.buyer.key, CHANNEL, self.clock.now(), order.id,
                                                 order.product_id, detail={"codes": len(stored), "via": "api"})])
            await uow.commit()
        product = await self.shop.product(order.product_id)
        assert product is not None
        return B2BOrder(order, product, decrypt_codes(self.vault, stored), False)

    async def _order_batch(self, uow: UnitOfWork, reqs: Sequence[_OrderRequest]) -> list[Any]:
        """Make, pay (wallet) and sell each B2B order; a refused one holds and debits nothing."""
        now = self.clock.now()
        results: list[Any] = [None] * len(reqs)
        landed = await self.repo.idempotent(uow, sorted({(r.reseller_id, r.key) for r in reqs}))
        resellers = await self.repo.lock(uow, sorted({r.reseller_id for r in reqs}))
        products = await uow.products.get_many(sorted({r.product_id for r in reqs}))
        first: dict[tuple[int, str], int] = {}
        todo: list[int] = []
        for i, r in enumerate(reqs):
            k = (r.reseller_id, r.key)
            if k in landed:
                oid, fp = landed[k]
                results[i] = _Existing(oid) if fp == r.fingerprint else ResellerError("idempotency_key_reused")
            elif k in first:
                continue  # settled below, like the first request with this key
            else:
                first[k] = i
                todo.append(i)
        wanted: dict[int, int] = {}
        supplied = {pid for pid, p in products.items() if p.kind in SUPPLIED and self.shop.supply.supplier_for(p)}
        for i in todo:
            r, p = reqs[i], products.get(reqs[i].product_id)
            if p is not None and p.kind is Kind.CODE and 1 <= r.qty <= MAX_QTY:
                wanted[p.id] = wanted.get(p.id, 0) + r.qty
        pools = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        live = await uow.codes.reusable_for(sorted({p.id for p in products.values() if p.kind is Kind.REUSABLE}))
        balance = {rid: r.balance for rid, r in resellers.items()}
        made: list[tuple[int, Order, Product]] = []
        assignments: list[tuple[int, str]] = []
        entries: list[WalletEntry] = []
        supply: list[OutboxItem] = []
        for i in todo:
            r = reqs[i]
            reseller, p = resellers.get(r.reseller_id), products.get(r.product_id)
            err = self._refusal(r, reseller, p, pools, live, supplied)
            if err is None:
                assert reseller is not None and p is not None
                unit = reseller.price_for(p)
                amount = unit * r.qty
                if balance[reseller.id] + reseller.credit_limit < amount:
                    err = ResellerError("insufficient_funds", needed=amount,
                                        available=balance[reseller.id] + reseller.credit_limit)
            if err is not None:
                results[i] = err
                continue
            assert reseller is not None and p is not None
            pending = p.kind in SUPPLIED  # bought upstream after this commit (outbox buy / topup)
            order = Order(r.order_id, r.buyer or reseller.buyer, r.chat_id, p.id, r.qty, unit, amount, p.currency,
                          None, OrderStatus.PENDING if pending else OrderStatus.DELIVERED, r.language, now, now,
                          paid_at=now, delivered_at=None if pending else now, account=r.account)
            if pending:  # a group order's codes then go to the member like its pool codes would (r.deliver)
                supply.append(OutboxItem(None, "topup" if p.kind is Kind.TOPUP else "buy", r.deliver or CHANNEL,
                                         r.chat_id, order.id, {"language": r.language}))
            elif p.kind is Kind.CODE:
                take, pools[p.id] = pools[p.id][: r.qty], pools[p.id][r.qty :]
                assignments.extend((cid, order.id) for cid in take)
            else:
                order.reusable_code_id = live[p.id]
            balance[reseller.id] -= amount
            entries.append(WalletEntry(None, reseller.id, "debit", -amount, balance[reseller.id],
                                       f"order:{order.id}", now, order.id, actor=order.buyer.key))
            made.append((i, order, p))
        if made:
            orders = [o for _, o, _ in made]
            await uow.orders.insert_many(orders)
            if assignments:
                if await uow.codes.hold(assignments) != len(assignments):
                    raise ConflictError("codes were claimed by another process")
                pool_ids = [o.id for o in orders if o.reusable_code_id is None]
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
            await self.repo.add_idempotent(uow, [(reqs[i].reseller_id, reqs[i].key, o.id, reqs[i].fingerprint)
                                                 for i, o, _ in made], now)
            delivered = [AuditEntry("deliver", o.buyer.key, CHANNEL, now, o.id, p.id,
                                    detail={"codes": o.qty, "via": reqs[i].deliver or "api"})
                         for i, o, p in made if o.status is OrderStatus.DELIVERED]
            if delivered:
                await uow.audit.add_many(delivered)
            sends = [OutboxItem(None, "deliver", reqs[i].deliver, reqs[i].chat_id, o.id,
                                {"language": o.language})
                     for i, o, _ in made if reqs[i].deliver and o.status is OrderStatus.DELIVERED]
            if sends:  # group-chat orders: the codes go to the member through the outbox, after commit
                await uow.outbox.add_many(sends)
            if supply:
                await uow.outbox.add_many(supply)
            if sends or supply:
                self.shop.committer.after_this_commit(self.shop.dispatcher.wake)
            stored = await load_stored(uow, orders)
            for i, o, p in made:
                results[i] = _Made(o, p, stored[o.id], balance[reqs[i].reseller_id])
        for i, r in enumerate(reqs):  # a key repeated within this batch: the first request's outcome
            k = (r.reseller_id, r.key)
            if results[i] is None:
                j = first[k]
                res = results[j]
                if reqs[j].fingerprint != r.fingerprint:
                    results[i] = ResellerError("idempotency_key_reused")
                elif isinstance(res, _Made):
                    results[i] = _Existing(res.order.id)
                else:
                    results[i] = res
        return results

    @staticmethod
    def _refusal(r: _OrderRequest, reseller: Reseller | None, p: Product | None, pools: dict[int, list[int]],
                 live: dict[int, int], supplied: set[int]) -> Exception | None:
        if reseller is None:
            return ResellerError("unknown_reseller", reseller=r.reseller_id)
        if reseller.status != "active":
            return ResellerError("account_suspended")
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
        if p.kind is Kind.CODE and len(pools.get(p.id, [])) < r.qty:
            return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=len(pools.get(p.id, [])))
        if p.kind is Kind.REUSABLE and p.id not in live:
            return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=0)
        return None

    # -- refunds ----------------------------------------------------------------------------------------------
    async def refund_to_wallet(self, payment: Payment, reason: str) -> None:
        """The wallet gateway's refund: the payment's amount back to the wallet, once (ledger ref per payment)."""
        channel, _, rid = payment.payer.partition(":")
        if channel != CHANNEL or not rid.isdigit():
            raise ResellerError("not_a_wallet_payment", payment=payment.id)
        ref = f"refund:{payment.id}"
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            r = (await self.repo.lock(uow, [int(rid)])).get(int(rid))
            if r is None:
                raise ResellerError("unknown_reseller", reseller=rid)
            if await self.repo.refs(uow, [ref]):
                return  # refunded already (a retry of the outbox row)
            entry = WalletEntry(None, r.id, "refund", payment.amount, r.balance + payment.amount, ref, now,
                                payment.order_id, actor="system", note=reason)
            if not await self.repo.set_balance(uow, r.id, r.balance, entry.balance_after):
                raise ConflictError("wallet balance changed")
            await self.repo.add_entries(uow, [entry])
            await uow.commit()


def _check_tier(discount_percent: int, prices: dict[str, int], credit_limit: int) -> None:
    if not 0 <= discount_percent <= 100:
        raise ResellerError("bad_discount", discount=discount_percent)
    if credit_limit < 0:
        raise ResellerError("bad_credit_limit", credit_limit=credit_limit)
    for sku, price in prices.items():
        if not isinstance(price, int) or price < 0:
            raise ResellerError("bad_price", sku=sku)
