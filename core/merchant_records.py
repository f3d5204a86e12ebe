"""What the merchant's use cases (core/admin.py) take and answer: their refusals (`AdminError`, `AdminCode`), the
records they return, and the checks of what a merchant types (SKU, price, Stars price, title, import file)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from core.aftersales import AftersalesCode
from core.batching import QuietRequest, Request
from core.errors import Refused
from core.models import AuditEntry, Buyer, CodeStatus, Order, Payment, Product, StockLine

SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as in config.yaml (config/settings/)
MAX_TITLE = 128
MAX_PRICE = 10**12
MAX_STARS = 1_000_000
IMPORT_TYPES = (".txt", ".csv")
MAX_IMPORT_BYTES = 20 * 1024 * 1024  # also the most a Telegram bot may download

# A merchant is an identity on a channel, like a buyer: ('telegram', '12345').
Merchant = Buyer


class AdminCode(StrEnum):
    """Why a merchant command was refused (the message is `admin.error.<value>`)."""

    ALREADY_REFUNDED = "already_refunded"
    BAD_FILE_TYPE = "bad_file_type"
    BAD_LANGUAGE = "bad_language"
    BAD_PRICE = "bad_price"
    BAD_SKU = "bad_sku"
    BAD_STARS = "bad_stars"
    BAD_STATUS = "bad_status"
    BAD_TITLE = "bad_title"
    BINARY_FILE = "binary_file"
    EMPTY_FILE = "empty_file"
    FILE_TOO_BIG = "file_too_big"
    KIND_NOT_SUPPORTED = "kind_not_supported"
    NO_AFTERSALES = "no_aftersales"
    NO_ANSWER = "no_answer"
    NO_CURRENCY = "no_currency"
    NO_FILE = "no_file"
    NO_PAYMENT = "no_payment"
    NO_REPLACEMENT = "no_replacement"
    NO_RESELLERS = "no_resellers"
    NOT_PAID = "not_paid"
    NOT_REISSUABLE = "not_reissuable"
    NOTHING_TO_REVEAL = "nothing_to_reveal"
    ORDER_NOT_FOUND = "order_not_found"
    PROVIDER_MISSING = "provider_missing"
    REVEAL_LIMIT = "reveal_limit"
    SKU_EXISTS = "sku_exists"
    TICKET_CLOSED = "ticket_closed"
    TICKET_NOT_FOUND = "ticket_not_found"
    UNKNOWN_SKU = "unknown_sku"


class AdminError(Refused):
    """A refused merchant command. `reason` picks the message (`admin.error.<reason>`), params fill it in."""

    codes = AdminCode
    code: AdminCode

    @property
    def reason(self) -> str:
        """The message's key suffix (`admin.error.<reason>`)."""
        return self.code.value


# A ticket command refused by after-sales, as the merchant's refusal (same params: ticket, and state when closed).
TICKET_REFUSALS = {AftersalesCode.TICKET_CLOSED: AdminCode.TICKET_CLOSED,
                   AftersalesCode.TICKET_NOT_FOUND: AdminCode.TICKET_NOT_FOUND}


@dataclass(slots=True)
class StockRow:
    line: StockLine
    product: Product | None


@dataclass(slots=True)
class OrderPage:
    orders: list[Order]
    products: dict[int, Product]
    page: int  # 0-based
    more: bool


@dataclass(slots=True)
class CodeRef:
    """A code as the merchant sees it: its row id and status, never its text."""

    id: int
    status: CodeStatus


@dataclass(slots=True)
class OrderDetail:
    order: Order
    product: Product | None
    payments: list[Payment]
    codes: list[CodeRef]
    audit: list[AuditEntry]


@dataclass(slots=True)
class RefundQueued:
    order: Order
    payment: Payment
    codes_burned: int


@dataclass(frozen=True, slots=True)
class MerchantRefund(Request[RefundQueued]):
    """A merchant's /refund of an order (group-committed: two merchants at once refund once)."""

    merchant: Merchant
    order_id: str


@dataclass(frozen=True, slots=True)
class RecordAudit(QuietRequest[None]):
    """An audit entry on its own (a merchant's view or refusal), group-committed: fifty merchants loading console
    pages at once share one transaction instead of queueing for fifty (SQLite has one writer)."""

    entry: AuditEntry


@dataclass(slots=True)
class ProductChange:
    """What `/product SKU ...` changes: exactly one of these is set."""

    price: int | None = None
    stars: int | None = None  # 0 = no Stars price
    title: tuple[str, str] | None = None  # (language or "*", text)
    active: bool | None = None

    @property
    def field(self) -> str:
        for name in ("price", "stars", "title", "active"):
            if getattr(self, name) is not None:
                return name
        raise ValueError("empty product change")


@dataclass(slots=True)
class ProductEdited:
    before: Product
    after: Product
    field: str


def check_sku(sku: str) -> str:
    if not SKU_RE.match(sku):
        raise AdminError(AdminCode.BAD_SKU, sku=sku[:70])
    return sku


def check_price(price: int) -> int:
    if not 0 <= price <= MAX_PRICE:
        raise AdminError(AdminCode.BAD_PRICE, price=price)
    return price


def check_stars(stars: int) -> int:
    if not 0 <= stars <= MAX_STARS:
        raise AdminError(AdminCode.BAD_STARS, stars=stars)
    return stars


def check_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > MAX_TITLE or any(unicodedata.category(ch) == "Cc" for ch in title):
        raise AdminError(AdminCode.BAD_TITLE, max=MAX_TITLE)
    return title


def check_import_file(file_name: str, size: int | None) -> None:
    """Only .txt or .csv files, at most MAX_IMPORT_BYTES (checked before anything is downloaded)."""
    if not file_name.lower().endswith(IMPORT_TYPES):
        raise AdminError(AdminCode.BAD_FILE_TYPE, name=file_name[:64] or "?")
    if size is not None and size > MAX_IMPORT_BYTES:
        raise AdminError(AdminCode.FILE_TOO_BIG, mb=MAX_IMPORT_BYTES // (1024 * 1024))
