"""Domain records. Plain dataclasses; storage maps rows to them."""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    CODE = "code"          # unique codes from a pool, each sold once
    REUSABLE = "reusable"  # one code sold to many buyers
    SUPPLIER = "supplier"  # bought from a supplier at sale time (hold -> pay -> buy upstream -> deliver)
    TOPUP = "topup"        # the buyer's account is recharged by a supplier (直充); no code
    BUNDLE = "bundle"      # several pool products' codes sold together, all or none (Product.parts)


class CodeStatus(StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"
    REUSABLE = "reusable"  # the live code of a reusable product
    WITHDRAWN = "withdrawn"
    BURNED = "burned"


class OrderStatus(StrEnum):
    HELD = "held"
    PENDING = "pending"  # paid; waiting for the supplier (a purchase or a top-up) before it is delivered
    DELIVERED = "delivered"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Buyer:
    """A customer on one channel: ('telegram', '12345') or ('wechat', openid)."""

    channel: str
    external_id: str

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.external_id}"


@dataclass(frozen=True, slots=True)
class BundlePart:
    """One part of a bundle: `qty` codes of the pool product `sku` per bundle bought. `product_id` and `title` are
    the part's, filled in when the catalogue is applied (0 and empty until then)."""

    sku: str
    qty: int
    product_id: int = 0
    title: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "qty": self.qty, "product_id": self.product_id, "title": dict(self.title)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BundlePart:
        return cls(str(d["sku"]), int(d["qty"]), int(d.get("product_id") or 0), dict(d.get("title") or {}))


@dataclass(slots=True)
class Product:
    id: int
    sku: str
    kind: Kind
    title: dict[str, str]
    description: dict[str, str]
    category: dict[str, str]
    price: int
    currency: str
    stars: int | None
    min_qty: int = 1
    max_qty: int = 10
    hold_minutes: int | None = None
    active: bool = True
    rules: dict[str, Any] = field(default_factory=dict)
    source: str = "config"  # config: applied from config.yaml at start | admin: made by a merchant command
    image: str | None = None  # the name of its picture (core/images.py), served at /app/img/<name>
    parts: list[BundlePart] = field(default_factory=list)  # kind bundle: what one of it delivers

    def codes_per_unit(self) -> int:
        """Codes one unit of this product holds: a bundle's parts together, else one."""
        return sum(p.qty for p in self.parts) if self.kind is Kind.BUNDLE else 1


@dataclass(slots=True)
class ProductSpec:
    """A catalogue entry as configured (no id yet)."""

    sku: str
    kind: Kind
    title: dict[str, str]
    description: dict[str, str]
    category: dict[str, str]
    price: int
    currency: str
    stars: int | None
    min_qty: int
    max_qty: int
    hold_minutes: int | None
    active: bool
    rules: dict[str, Any]
    position: int = 0
    parts: list[BundlePart] = field(default_factory=list)  # kind bundle: its parts (skus and quantities)


@dataclass(slots=True)
class Order:
    id: str
    buyer: Buyer
    chat_id: str
    product_id: int
    qty: int
    unit_price: int
    amount: int
    currency: str
    stars: int | None
    status: OrderStatus
    language: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None = None
    delivered_at: datetime | None = None
    reusable_code_id: int | None = None
    note: str = ""
    account: str = ""  # topup: the account the supplier recharges (phone number, game UID)
    # Promotions (core/promotions.py): what came off the listed price (amount and Stars), and what each promotion
    # applied needs to give it back ({name: record}).
    discount: int = 0
    stars_discount: int = 0
    promo: dict[str, Any] = field(default_factory=dict)

    def price_in(self, currency: str) -> int | None:
        """The amount due in a currency: the store currency, or XTR (Telegram Stars)."""
        if currency == self.currency:
            return self.amount
        if currency == "XTR" and self.stars is not None:
            return self.stars * self.qty - self.stars_discount
        return None

    @property
    def stars_total(self) -> int | None:
        """The Stars this order costs (None: no Stars price)."""
        return self.price_in("XTR") if self.currency != "XTR" else self.amount


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_order_id(now: datetime) -> str:
    """Short, unguessable, roughly time-ordered: 261125 + 8 Crockford base32 characters (40 random bits)."""
    n = int.from_bytes(secrets.token_bytes(5), "big")
    return f"{now:%y%m%d}" + "".join(_CROCKFORD[(n >> s) & 31] for s in range(35, -1, -5))


@dataclass(slots=True)
class Payment:
    id: int | None
    order_id: str | None
    provider: str
    provider_txn_id: str
    amount: int
    currency: str
    payer: str
    status: str  # captured | refund_pending | refunded | refund_failed
    created_at: datetime


@dataclass(slots=True)
class StoredCode:
    """A code as stored: ciphertext only."""

    id: int
    product_id: int
    status: CodeStatus
    order_id: str | None
    key_id: str
    nonce: bytes
    ciphertext: bytes
    expires_at: datetime | None = None


@dataclass(slots=True)
class NewCode:
    id: int
    product_id: int
    status: CodeStatus
    key_id: str
    nonce: bytes
    ciphertext: bytes
    fingerprint: bytes
    expires_at: datetime | None
    order_id: str | None = None  # set for codes bought for one order (kind supplier): stored already sold


@dataclass(slots=True)
class OutboxItem:
    id: int | None
    kind: str  # deliver | reissue | delete | refund | notify | broadcast (core/broadcast.py) | buy | topup
    channel: str
    recipient: str
    order_id: str | None
    payload: dict[str, Any]
    attempts: int = 0
    status: str = "pending"
    lease: str | None = None  # set when claimed; marks are refused once another dispatcher holds the row


@dataclass(slots=True)
class AuditEntry:
    action: str  # reveal | deliver | import | export | refund | rekey | admin | payment
    actor: str
    channel: str
    at: datetime
    order_id: str | None = None
    product_id: int | None = None
    code_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = field(default=None, compare=False)  # the row's id once stored (newest first = highest)


@dataclass(slots=True)
class StockLine:
    product_id: int
    sku: str
    available: int  # sellable now (expired codes not counted)
    held: int
    sold: int
    expired: int = 0  # available but past expires_at: never sold
    withdrawn: int = 0  # taken out of sale (expired codes withdrawn by the stock watch)
    burned: int = 0  # recalled by the supplier or refunded: never sold again


@dataclass(slots=True)
class Customer:
    buyer: Buyer
    language: str | None
    state: dict[str, Any]
    created_at: datetime
    phone: str = ""  # bound phone, E.164 digits without '+' (links identities; rules and risk)
    level: int = 0  # member level (rules: min_level)
    reseller: bool = False  # rules: resellers_only
    # The language and state as read (Shop.customer): a save writes only what changed since, so two updates of one
    # buyer (a language switch, a delivery remembering its screen) cannot undo each other's fields.
    base: tuple[str | None, dict[str, Any]] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Offer:
    """Where a product comes from: a supplier, its SKU there, and what one costs the shop (minor units of the
    store currency; the merchant sees the margin). account_pattern: topup products' account check (regex)."""

    supplier: str
    supplier_sku: str
    cost: int | None = None
    account_pattern: str = ""


@dataclass(slots=True)
class SupplyRequest:
    """One call to a supplier for an order (or a restock): the ledger behind idempotent retries, top-up polling
    and budgets. request_id is what the supplier sees; retries reuse it."""

    request_id: str
    supplier: str
    supplier_sku: str
    kind: str  # buy | topup
    status: str  # retrying (not accepted yet) | pending (accepted, not finished) | done | failed
    created_at: datetime
    updated_at: datetime
    order_id: str | None = None
    qty: int = 1
    cost: int = 0  # what it cost the shop in total (minor units of the store currency), 0 when unknown
    upstream_id: str = ""
    detail: str = ""  # the supplier's message on a failure


def localized(value: Mapping[str, str] | str, lang: str, fallback: str) -> str:
    """Pick the text for ``lang`` from a normalised localized field (a plain string is taken as it is).

    Order: ``value[lang]``, ``value["*"]``, ``value[fallback]``, the first
    value, ``""``. Empty strings count as missing.
    """
    if isinstance(value, str):
        return value
    for key in (lang, "*", fallback):
        text = value.get(key)
        if text:
            return text
    for text in value.values():
        if text:
            return text
    return ""
