"""Why a reseller use case refused: the codes the B2B API returns as they are, and the exception that carries one."""
from __future__ import annotations

from enum import StrEnum

from core.errors import Refused


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
    code: ResellerCode
