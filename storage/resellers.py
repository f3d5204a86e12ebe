"""Reseller tables (migrations 0006_resellers, 0009_wallet_commissions) and their rows read as core.resellers
models. The repository over them is storage/reseller_repo.py (apart because it also reads storage/groups.py's
`reseller_owners`, and storage/groups.py reads these tables)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from core.resellers import ApiKey, CommissionEntry, Reseller, Topup, Waiting, WalletEntry
from storage.tables import TS, BigId, metadata

resellers = Table(
    "resellers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # active | suspended
    Column("discount_percent", Integer, nullable=False, server_default="0"),
    Column("prices", JSON, nullable=False),  # the tier's price list: {sku: minor units}
    Column("credit_limit", BigInteger, nullable=False, server_default="0"),
    # Always the sum of the reseller's wallet_ledger rows: both change in one transaction, by compare-and-set.
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("created_at", TS, nullable=False),
)

wallet_ledger = Table(
    "wallet_ledger", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # topup | debit | refund
    Column("amount", BigInteger, nullable=False),  # signed: + credit, - debit
    Column("balance_after", BigInteger, nullable=False),
    Column("ref", String(96), nullable=False, unique=True),  # order:<id> | refund:<payment id> | topup:<ref>
    Column("order_id", String(24)),
    Column("actor", String(96), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_wallet_ledger_reseller", "reseller_id", "id"),
)

# Idempotency-Key -> order: the same key never makes a second order.
api_idempotency = Table(
    "api_idempotency", metadata,
    Column("reseller_id", Integer, primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("order_id", String(24), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("created_at", TS, nullable=False),
)

# API keys: the secret is encrypted by the vault (the row id is in its associated data).
api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("status", String(12), nullable=False),  # active | revoked
    Column("rate_per_second", Integer, nullable=False),
    Column("vault_key", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", TS, nullable=False),
)

# Nonces of signed requests seen in the last few minutes (replays are refused in every process).
api_nonces = Table(
    "api_nonces", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", TS, nullable=False),
    Index("ix_api_nonces_seen", "seen_at"),
)


# -- wallets paid by the reseller, commissions, waiting orders (migration 0009_wallet_commissions) ---------------
# A top-up the reseller asked to pay (Telegram Stars invoice / WeChat Pay QR): its id is the invoice payload or
# out_trade_no; paid once (status open -> paid -> refunded), the payment's row in `payments` is unique per txn.
wallet_topups = Table(
    "wallet_topups", metadata,
    Column("id", String(24), primary_key=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units of the wallet's currency credited
    Column("currency", String(3), nullable=False),
    Column("stars", Integer),  # the Telegram Stars price, when paid with Stars
    Column("provider", String(24), nullable=False),
    Column("payer", String(96), nullable=False),  # channel:id of whom the invoice was made for
    Column("status", String(12), nullable=False),  # open | paid | refunded
    Column("payment_id", BigInteger),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("paid_at", TS),
)

# Commissions (分销): + accrual per paid order of a referred customer, - reversal when it is refunded,
# - payout recorded by a merchant. The balance is the sum; `ref` is unique (accrue:<order>, reverse:<order>).
commissions = Table(
    "commissions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # accrual | reversal | payout
    Column("amount", BigInteger, nullable=False),  # signed, minor units
    Column("currency", String(3), nullable=False),
    Column("order_id", String(24)),
    Column("ref", String(96), nullable=False, unique=True),
    Column("actor", String(96), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_commissions_reseller", "reseller_id", "id"),
)

# B2B orders waiting for stock (partial policy `wait`): completed first come first served on restock.
b2b_waiting = Table(
    "b2b_waiting", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),  # arrival order: first come first served
    Column("order_id", String(24), nullable=False, unique=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("qty", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("deadline", TS, nullable=False),
    Column("deliver", String(24), nullable=False, server_default=""),  # "" API; else the group order's channel
    Index("ix_b2b_waiting_product", "product_id", "id"),
)


def _reseller(r: Any) -> Reseller:
    return Reseller(r.id, r.name, r.status, r.discount_percent, dict(r.prices or {}), r.credit_limit, r.balance,
                    r.currency, r.created_at)


def _entry(r: Any) -> WalletEntry:
    return WalletEntry(r.id, r.reseller_id, r.kind, r.amount, r.balance_after, r.ref, r.created_at, r.order_id,
                       r.actor, r.note)


def _commission(r: Any) -> CommissionEntry:
    return CommissionEntry(r.id, r.reseller_id, r.kind, r.amount, r.currency, r.ref, r.created_at, r.order_id,
                           r.actor, r.note)


def _topup(r: Any) -> Topup:
    return Topup(r.id, r.reseller_id, r.amount, r.currency, r.stars, r.provider, r.payer, r.status, r.created_at,
                 r.expires_at, r.payment_id, r.paid_at)


def _key(r: Any) -> ApiKey:
    return ApiKey(r.key_id, r.reseller_id, r.status, r.rate_per_second, r.created_at, r.id)


def _waiting(r: Any) -> Waiting:
    return Waiting(r.order_id, r.reseller_id, r.product_id, r.qty, r.created_at, r.deadline, r.deliver)
