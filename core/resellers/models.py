"""What the reseller area is made of: accounts with their tier, wallet movements, top-ups, API keys, commissions,
B2B orders and the orders waiting for stock; the merchant's terms (`ResellerPolicy`, config `resellers`); and the
few pure rules on them (a reseller's price, a commission, a request's fingerprint)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.models import Buyer, Kind, Order, Product
from core.risk import exemptions, rules_of

PROVIDER = "wallet"
CHANNEL = "api"  # the buyer channel of reseller orders: Buyer("api", "<reseller id>")
MAX_QTY = 1000  # codes in one B2B order (bulk), whatever the product's max_qty for chat buyers
SUPPLIED = frozenset({Kind.SUPPLIER, Kind.TOPUP})  # bought from a supplier after the wallet paid
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


def request_fingerprint(sku: str, qty: int, account: str = "") -> str:
    """What an Idempotency-Key was first used for (a top-up's account included)."""
    return hashlib.sha256(json.dumps([sku, qty, account] if account else [sku, qty]).encode()).hexdigest()[:32]


def partial_policy(product: Product) -> str:
    """What a B2B order larger than the stock does for this product: refuse (default), partial, wait."""
    return rules_of(product.rules).partial


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
class ResellerPolicy:
    """The merchant's terms for resellers (config `resellers`), one object the desk's parts share: configuring the
    desk changes it in place."""

    commission: CommissionPolicy = field(default_factory=CommissionPolicy)
    wait: timedelta = timedelta(hours=24)  # partial policy `wait`: refunded when no stock came within this
    topup_minutes: int = 15  # how long a top-up invoice / QR code may be paid
    topup_choices: list[tuple[int, int | None]] = field(default_factory=list)  # (amount, Stars) in the chat
    # What API and group orders are exempt from in the one rules-and-risk check (config resellers.api_exempt
    # / group_exempt; core/risk/rules.py EXEMPTIBLE). The defaults are the settings' defaults.
    api_exempt: frozenset[str] = exemptions(DEFAULT_API_EXEMPT)
    group_exempt: frozenset[str] = frozenset()


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


@dataclass(frozen=True, slots=True)
class Waiting:
    """A B2B order waiting for stock (partial policy `wait`), served first come first served."""

    order_id: str
    reseller_id: int
    product_id: int
    qty: int
    created_at: datetime
    deadline: datetime  # refunded to the wallet when still waiting then
    deliver: str = ""  # "": read over the API; else a group order's codes go to the member on this outbox channel
