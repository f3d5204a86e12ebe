"""Resellers: business buyers with their own price tier, a credit limit and a prepaid wallet, who buy through a
signed HTTP API or in a group chat, top their wallet up themselves, and earn commissions on the customers they
refer. The package's public API is here; code outside the area imports from `core.resellers`, modules inside it
import each other directly. Where each thing is decided: see core/resellers/desk.py."""
from __future__ import annotations

from core.resellers.batch import OrderRequest
from core.resellers.desk import ResellerDesk
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.keys import API_KEY_AAD_BASE, KEY_CACHE_SECONDS, NonceUse
from core.resellers.models import (
    CHANNEL,
    DEFAULT_API_EXEMPT,
    MAX_QTY,
    PARTIAL_POLICIES,
    PROVIDER,
    REF_PREFIX,
    SUPPLIED,
    ApiKey,
    B2BOrder,
    CommissionEntry,
    CommissionPolicy,
    Reseller,
    ResellerPolicy,
    Topup,
    TopupResult,
    Waiting,
    WalletEntry,
    commission_of,
    partial_policy,
    request_fingerprint,
)
from core.resellers.orders import ApiNotifier
from core.resellers.ports import ResellerRepo
from core.resellers.waiting import FillWaiting
from core.resellers.wallets import WalletGateway

__all__ = [
    "API_KEY_AAD_BASE",
    "CHANNEL",
    "DEFAULT_API_EXEMPT",
    "KEY_CACHE_SECONDS",
    "MAX_QTY",
    "PARTIAL_POLICIES",
    "PROVIDER",
    "REF_PREFIX",
    "SUPPLIED",
    "ApiKey",
    "ApiNotifier",
    "B2BOrder",
    "CommissionEntry",
    "CommissionPolicy",
    "FillWaiting",
    "NonceUse",
    "OrderRequest",
    "Reseller",
    "ResellerCode",
    "ResellerDesk",
    "ResellerError",
    "ResellerPolicy",
    "ResellerRepo",
    "Topup",
    "TopupResult",
    "Waiting",
    "WalletEntry",
    "WalletGateway",
    "commission_of",
    "partial_policy",
    "request_fingerprint",
]
