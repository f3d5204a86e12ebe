"""Typed errors: core raises codes, handlers turn them into localized text."""
from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Why the shop refused (StoreError): a buyer's order, payment, reveal, link. The message of each is
    `error.<value>` (handlers/errors.py maps every refusal to its message)."""

    SOLD_OUT = "sold_out"
    NOT_FOUND = "not_found"
    PRODUCT_UNAVAILABLE = "product_unavailable"
    KIND_NOT_SUPPORTED = "kind_not_supported"
    BAD_QUANTITY = "bad_quantity"
    HOLD_LIMIT = "hold_limit"
    ORDER_NOT_PAYABLE = "order_not_payable"
    NOT_YOUR_ORDER = "not_your_order"
    PROVIDER_DISABLED = "provider_disabled"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_SKU = "unknown_sku"
    BAD_ACCOUNT = "bad_account"  # a top-up account that does not fit the product's pattern
    # Rules and risk: core/risk/ (rules.py, guard.py)
    RULE_REFUSED = "rule_refused"  # params: rule (a core.risk rule code) and its figures; text rules.refused.<rule>
    RISK_REFUSED = "risk_refused"  # the risk check refused the order (the reasons are for merchants only)
    CHALLENGE_REQUIRED = "challenge_required"  # params: token, question, options; answer with shop.pass_challenge
    UNDER_REVIEW = "under_review"  # params: order_id; held for a merchant's review, nothing to pay yet
    NOT_YET_DUE = "not_yet_due"  # params: date; paid goods delivered on their effective date (deliver_on_effective)
    # Group-buy: core/group_buy.py (params: group, the group's id)
    GROUP_NOT_OFFERED = "group_not_offered"  # params: sku; the product has no group price
    GROUP_NOT_FOUND = "group_not_found"  # no such group (for this product)
    GROUP_CLOSED = "group_closed"  # filled, failed or past its time: nothing can join it
    GROUP_FULL = "group_full"  # params: size; as many members hold or paid as it takes
    GROUP_JOINED = "group_joined"  # the buyer is in this group already
    # Linked accounts: core/links.py
    LINK_CODE_INVALID = "link_code_invalid"  # params: left (wrong codes still allowed this hour)
    LINK_SELF = "link_self"  # the code was asked for by this very account
    LINK_CONFLICT = "link_conflict"  # the two accounts belong to different people
    NOT_LINKED = "not_linked"
    # Coupons: core/coupons.py (params: name, the campaign's name; never the code)
    COUPON_UNKNOWN = "coupon_unknown"  # params: left (wrong codes still allowed this hour)
    COUPON_EXPIRED = "coupon_expired"  # its window ended, or the merchant disabled it
    COUPON_NOT_STARTED = "coupon_not_started"  # params: date
    COUPON_EXHAUSTED = "coupon_exhausted"  # all its uses are taken (a single-use code: used)
    COUPON_PER_BUYER = "coupon_per_buyer"  # params: limit
    COUPON_SCOPE = "coupon_scope"  # not for this product
    COUPON_MIN_SPEND = "coupon_min_spend"  # params: amount, currency
    COUPON_NO_STACKING = "coupon_no_stacking"  # the product's rule coupon_stacking: false, and another discount applies
    # Members: core/members/
    POINTS_SHORT = "points_short"  # params: needed, balance (points)
    NOT_IN_MALL = "not_in_mall"  # params: sku; the product is not sold for points
    # Flash sales: core/flash_sales.py (a buyer who asked for the flash price and cannot have it)
    FLASH_NOT_STARTED = "flash_not_started"  # params: at
    FLASH_SOLD_OUT = "flash_sold_out"  # params: left
    FLASH_LIMIT = "flash_limit"  # params: limit, have
    FLASH_ENDED = "flash_ended"
    COUPON_REWARD_UNAVAILABLE = "coupon_reward_unavailable"  # params: name; the campaign cannot issue a code now


class Refused(Exception):
    """A use case of one business area refused: `code` is a member of that area's enum (`codes`), `params` fill
    the message. A code outside the enum is a bug and fails where it is raised (ValueError), not in a handler.
    Subclasses: StoreError (the shop's own, below), ResellerError (core/resellers/errors.py), AdminError
    (core/admin.py), GroupError (core/groups.py), CardFaceError (core/cardfaces.py), AftersalesError
    (core/aftersales/errors.py). handlers/errors.py words each of them."""

    codes: ClassVar[type[StrEnum]]

    def __init__(self, code: StrEnum | str, **params: Any) -> None:
        self.code = self.codes(code)
        self.params = params
        detail = ", ".join(f"{k}={v}" for k, v in params.items())
        super().__init__(self.code.value + (f" ({detail})" if detail else ""))


class StoreError(Refused):
    """The shop refused: `raise StoreError(ErrorCode.SOLD_OUT, available=2)`."""

    codes = ErrorCode
    code: ErrorCode


class ConflictError(Exception):
    """Storage saw a concurrent change; the batch is retried item by item."""


class VaultError(Exception):
    """The vault keys do not fit the database or cannot be read; the store must not start."""


class RecipientUnreachable(Exception):
    """The platform will never take messages for this recipient (blocked the bot, deleted the account).
    The outbox stops retrying; what was to be sent stays where the buyer can see it ("My orders")."""


class SupplierError(Exception):
    """A supplier call failed. retryable: the same call (same request id) may succeed later (timeouts, 5xx,
    "busy"); not retryable: the supplier refused (out of stock, balance too low, unknown SKU). The message is
    the supplier's answer or the transport error, never a code."""

    def __init__(self, message: str, *, retryable: bool, supplier: str = "", code: str = "") -> None:
        self.retryable = retryable
        self.supplier = supplier
        self.code = code  # the supplier's error code, when it gave one
        super().__init__(f"{supplier}: {message}" if supplier else message)
