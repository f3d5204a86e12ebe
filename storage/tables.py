"""The schema. Alembic migrations in storage/migrations create it; keep both in step."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both databases (SQLite keeps no zone: store UTC, read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData()
# Integer ids that are BIGINT on PostgreSQL and the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
TS = UTCDateTime()

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("title", JSON, nullable=False),
    Column("description", JSON, nullable=False),
    Column("category", JSON, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stars", Integer),
    Column("min_qty", Integer, nullable=False),
    Column("max_qty", Integer, nullable=False),
    Column("hold_minutes", Integer),
    Column("active", Boolean, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("position", Integer, nullable=False, server_default="0"),
    # 'config': applied from config.yaml at every start (taken off sale when no longer listed);
    # 'admin': created by a merchant command, left alone by the config sync.
    Column("source", String(8), nullable=False, server_default="config"),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("image", String(40)),  # the name of its picture in product_images (0016); none: no picture
)

# Product pictures (core/images.py; migration 0016_product_images): the re-encoded bytes, named by their content
# (sha256 prefix + extension), never changed under a name; served at /app/img/<name>.
product_images = Table(
    "product_images", metadata,
    Column("name", String(40), primary_key=True),
    Column("content_type", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
)

# Back in stock (core/stock_alerts.py; migration 0017_stock_alerts): a buyer waiting for a sold-out product, told
# once (notified_at) in the order they subscribed (created_at, id) when codes come in.
stock_alerts = Table(
    "stock_alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("language", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("notified_at", TS),
    UniqueConstraint("product_id", "buyer_channel", "buyer_id", name="uq_stock_alerts_buyer"),
    Index("ix_stock_alerts_waiting", "product_id", "notified_at", "created_at"),
)

codes = Table(
    "codes", metadata,
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("status", String(12), nullable=False),
    Column("order_id", String(24)),
    Column("key_id", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("expires_at", TS),
    UniqueConstraint("product_id", "fingerprint", name="uq_codes_fingerprint"),
    Index("ix_codes_claim", "product_id", "status", "id"),
    Index("ix_codes_order", "order_id"),
)

orders = Table(
    "orders", metadata,
    Column("id", String(24), primary_key=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stars", Integer),
    Column("status", String(12), nullable=False),
    Column("language", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("paid_at", TS),
    Column("delivered_at", TS),
    Column("reusable_code_id", BigId),
    Column("note", Text, nullable=False, server_default=""),
    Column("account", String(128), nullable=False, server_default=""),  # topup: the account recharged (0002)
    # Promotions (0019, core/promotions.py): what came off the listed price, and what each promotion applied.
    Column("discount", BigInteger, nullable=False, server_default="0"),
    Column("stars_discount", Integer, nullable=False, server_default="0"),
    Column("promo", JSON),
    # A buyer's orders, newest first; the id leads so the console's search by a bare id (any channel) uses it too
    # (0015: it was channel, id, created_at).
    Index("ix_orders_buyer", "buyer_id", "buyer_channel", "created_at"),
    Index("ix_orders_status_expiry", "status", "expires_at"),
    Index("ix_orders_created", "created_at"),  # the merchant's recent orders
    Index("ix_orders_status_created", "status", "created_at"),  # ... filtered by status
)

payments = Table(
    "payments", metadata,
    Column("id", BigId, primary_key=True),
    Column("order_id", String(24)),
    Column("provider", String(24), nullable=False),
    Column("provider_txn_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payer", String(96), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("provider", "provider_txn_id", name="uq_payments_provider_txn"),
    Index("ix_payments_order", "order_id"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(96), nullable=False),
    Column("order_id", String(24)),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("last_error", Text),
    Column("lease", String(32)),  # the claimer's token: only it may mark the row sent or failed
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

audit = Table(
    "audit", metadata,
    Column("id", BigId, primary_key=True),
    Column("at", TS, nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(96), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("order_id", String(24)),
    Column("product_id", Integer),
    Column("code_id", BigId),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_order", "order_id"),
    Index("ix_audit_actor", "action", "actor", "at"),
)

customers = Table(
    "customers", metadata,
    Column("channel", String(16), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("language", String(16)),
    Column("state", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# Every call to a supplier for an order or a restock (migration 0002): idempotent retries, top-up polling, budgets.
supply_requests = Table(
    "supply_requests", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("supplier", String(32), nullable=False),
    Column("supplier_sku", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("status", String(12), nullable=False),
    Column("order_id", String(24)),
    Column("qty", Integer, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("upstream_id", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_supply_status", "kind", "status", "updated_at"),
    Index("ix_supply_supplier", "supplier", "created_at"),
)

meta = Table(
    "meta", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- rules and risk (migration 0003) ------------------------------------------------------------------
# A bound phone links a customer's identities (E.164 digits, no '+'); member level and reseller flag for rules.
customers.append_column(Column("phone", String(20)))
customers.append_column(Column("level", Integer, nullable=False, server_default="0"))
customers.append_column(Column("reseller", Boolean, nullable=False, server_default=false()))
Index("ix_customers_phone", customers.c.phone)
# Indexed counts for the rules (a buyer's orders of one product) and the risk check (a group chat's orders).
Index("ix_orders_buyer_product", orders.c.buyer_channel, orders.c.buyer_id, orders.c.product_id, orders.c.created_at)
Index("ix_orders_chat", orders.c.chat_id, orders.c.created_at)
# Reports: orders paid in a period, covering what they group and sum (0012; core/reports/, storage/reports.py).
Index("ix_orders_paid", orders.c.paid_at, orders.c.status, orders.c.currency, orders.c.amount, orders.c.qty,
      orders.c.product_id, orders.c.buyer_channel, orders.c.buyer_id)

# What the risk check decided for an order that scored anything (or went to review).
order_risk = Table(
    "order_risk", metadata,
    Column("order_id", String(24), primary_key=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("decision", String(12), nullable=False),
    Column("score", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("review", String(12), nullable=False, server_default=""),  # "" | pending | approved | rejected
    Column("created_at", TS, nullable=False),
    Column("decided_at", TS),
    Column("decided_by", String(96), nullable=False, server_default=""),
    # Only the orders waiting for review are indexed: every other row costs its insert nothing more (a buyer's
    # rows are found through ix_orders_buyer).
    Index("ix_order_risk_review", "created_at", sqlite_where=text("review = 'pending'"),
          postgresql_where=text("review = 'pending'")),
)

# Banned users (channel:id), phones and payers.
blacklist = Table(
    "blacklist", metadata,
    Column("kind", String(8), primary_key=True),
    Column("value", String(96), primary_key=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("actor", String(96), nullable=False),
    Column("created_at", TS, nullable=False),
)

# In-chat challenges: used once; a passed one lets its buyer order unchallenged until valid_until.
risk_challenges = Table(
    "risk_challenges", metadata,
    Column("token", String(32), primary_key=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("answer", String(16), nullable=False),
    Column("status", String(8), nullable=False),  # open | passed | failed
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("valid_until", TS),
    Index("ix_risk_challenges_buyer", "buyer_channel", "buyer_id", "valid_until"),
)

# Custom card faces of resellers (migration 0010_card_faces); images and fonts are paths, read when drawn.
card_faces = Table(
    "card_faces", metadata,
    Column("reseller_id", Integer, ForeignKey("resellers.id"), primary_key=True),
    Column("display_name", String(64), nullable=False),
    Column("background", String(7), nullable=False),  # #RRGGBB
    Column("background_image", Text, nullable=False, server_default=""),
    Column("logo", Text, nullable=False, server_default=""),
    Column("font", Text, nullable=False, server_default=""),
    Column("updated_at", TS, nullable=False),
)

# Chat users bound to a reseller (its own accounts, its members): their deliveries carry its card face.
reseller_users = Table(
    "reseller_users", metadata,
    Column("channel", String(16), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_reseller_users_reseller", "reseller_id"),
)

# After-sales tickets: a buyer's report the automatic policy did not settle, until a merchant decides
# (reissued | refunded | rejected, with the answer the buyer reads). Migration 0007_aftersales_more.
tickets = Table(
    "tickets", metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", String(24), nullable=False),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("problem", String(24), nullable=False),
    Column("why", String(24), nullable=False, server_default=""),  # why the policy did not settle it
    Column("note", Text, nullable=False, server_default=""),  # the buyer's own words ("other"), plain text
    Column("status", String(12), nullable=False),  # open | reissued | refunded | rejected
    Column("answer", Text, nullable=False, server_default=""),  # the merchant's reason (rejected)
    Column("created_at", TS, nullable=False),
    Column("decided_at", TS),
    Column("decided_by", String(96), nullable=False, server_default=""),
    Index("ix_tickets_order", "order_id"),
    Index("ix_tickets_buyer", "buyer_channel", "buyer_id", "created_at"),
    Index("ix_tickets_status", "status", "id"),
)

# Linked accounts (migration 0011_account_links, core/links.py): accounts one person linked with a one-time code
# share a person id (limits and bans, for good) and, while linked, a link_set (history and the phone binding). An
# unlinked account keeps its person with link_set NULL: unlinking cannot reset a quota or shake off a ban. On the
# customers row, so the reserve batch reads them with the facts it reads anyway (no join).
customers.append_column(Column("person", String(24)))
customers.append_column(Column("link_set", String(24)))
customers.append_column(Column("linked_at", TS))
Index("ix_customers_person", customers.c.person)
Index("ix_customers_link_set", customers.c.link_set)

# One-time link codes: only a keyed hash of the code is stored; used once, valid for minutes.
link_codes = Table(
    "link_codes", metadata,
    Column("digest", String(64), primary_key=True),  # hex HMAC-SHA256 of the code
    Column("channel", String(16), nullable=False),  # the account that asked for the code
    Column("external_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
    Column("used_by", String(96), nullable=False, server_default=""),
    Index("ix_link_codes_owner", "channel", "external_id"),
)

# The web console's one-time login links and sessions (migration 0013_console; core/console.py): only the SHA-256
# of each token is kept.
console_links = Table(
    "console_links", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("merchant_channel", String(16), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("role", String(8), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
)

console_sessions = Table(
    "console_sessions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("merchant_channel", String(16), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("role", String(8), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("last_seen", TS, nullable=False),
    Column("ended_at", TS),
    Column("agent", String(200), nullable=False, server_default=""),
    Index("ix_console_sessions_open", "ended_at", "expires_at"),
)

# Merchant broadcasts (migration 0018_broadcasts; core/broadcast.py): each announcement with its segment and the
# recipients counted per channel; the messages themselves are outbox rows (kind 'broadcast', lower priority than
# deliveries), all queued in the transaction that moves the broadcast from 'draft' to 'queued'.
broadcasts = Table(
    "broadcasts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant", String(96), nullable=False),
    Column("text", Text, nullable=False),
    Column("segment", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("state", String(12), nullable=False),  # draft | queued | cancelled
    Column("counts", JSON, nullable=False),  # recipients per channel
)

# Buyers who sent /stop_news: never in a broadcast until they send /news.
news_optouts = Table(
    "news_optouts", metadata,
    Column("channel", String(16), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("at", TS, nullable=False),
)
customers.append_column(Column("last_message_at", TS))  # WeChat: the buyer's last message (48-hour window)
outbox.append_column(Column("priority", Integer, nullable=False, server_default="0"))  # 0 first; broadcasts 1
outbox.append_column(Column("broadcast_id", Integer))
Index("ix_outbox_broadcast", outbox.c.broadcast_id)

# Coupons (core/coupons.py; migration 0020_coupons): a campaign's terms and its live use count (`used`, changed only
# with its row locked), its codes as HMAC fingerprints only, and one use row per order that took one (released_at
# set when the order lapsed, was cancelled or refunded; cleared again by a late payment).
coupons = Table(
    "coupons", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # percent | amount
    Column("value", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("min_spend", BigInteger, nullable=False, server_default="0"),
    Column("skus", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("starts_at", TS),
    Column("ends_at", TS),
    Column("total_limit", Integer),
    Column("per_buyer", Integer),
    Column("single_use", Boolean, nullable=False, server_default=false()),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("used", Integer, nullable=False, server_default="0"),
    Column("codes", Integer, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
)
coupon_codes = Table(
    "coupon_codes", metadata,
    Column("digest", String(64), primary_key=True),  # hex HMAC-SHA256 of the normalized code
    Column("coupon_id", Integer, ForeignKey("coupons.id"), nullable=False),
    Index("ix_coupon_codes_coupon", "coupon_id"),
)
coupon_uses = Table(
    "coupon_uses", metadata,
    Column("order_id", String(24), ForeignKey("orders.id"), primary_key=True),
    Column("coupon_id", Integer, ForeignKey("coupons.id"), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("buyer", String(96), nullable=False),  # channel:external_id
    Column("amount_off", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("released_at", TS),
    Index("ix_coupon_uses_coupon_buyer", "coupon_id", "buyer"),
    Index("ix_coupon_uses_digest", "digest"),
)
# Members (migration 0022_members; core/members/): every movement of a buyer's points, once each (ref); `remaining`
# is what a credit still holds (a negative one is a debt), so the balance is the sum of rows not expired.
points_ledger = Table(
    "points_ledger", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("kind", String(12), nullable=False),  # earn | spend | return | reverse | referral | gift
    Column("ref", String(120), nullable=False, unique=True),
    Column("order_id", String(24)),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS),
    Column("detail", JSON, nullable=False),
    Index("ix_points_ledger_buyer", "buyer_channel", "buyer_id", "remaining"),
    Index("ix_points_ledger_order", "order_id"),
)

# Paid orders counted for the member level (refunded ones stop counting).
member_spend = Table(
    "member_spend", metadata,
    Column("order_id", String(24), primary_key=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", TS, nullable=False),
    Column("refunded_at", TS),
    Index("ix_member_spend_buyer", "buyer_channel", "buyer_id"),
)

# Buyers' referral codes (`/start r_<code>`), by fingerprint (HMAC) only.
referral_codes = Table(
    "referral_codes", metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("channel", "external_id", name="uq_referral_codes_buyer"),
)

# Bundles (migration 0023_group_buy; core/orders.py): a bundle product's parts, [{sku, qty, product_id, title}],
# resolved to the parts' ids and titles whenever the catalogue is applied.
products.append_column(Column("bundle", JSON))

# Group-buy, 拼团 (migration 0023_group_buy; core/group_buy.py): a group opened at a product's group price, its
# members (one order each) and what became of each. The group row is locked by whoever decides it (the payment that
# completes it, the expiry job that fails it), so it is decided once.
group_buys = Table(
    "group_buys", metadata,
    Column("id", String(16), primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("opener_channel", String(16), nullable=False),
    Column("opener_id", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("stars", Integer),
    Column("opened_at", TS, nullable=False),
    Column("deadline", TS, nullable=False),
    Column("status", String(12), nullable=False),  # open | complete | failed
    Column("closed_at", TS),
    Index("ix_group_buys_open", "status", "deadline"),
)
group_buy_members = Table(
    "group_buy_members", metadata,
    Column("order_id", String(24), ForeignKey("orders.id"), primary_key=True),
    Column("group_id", String(16), ForeignKey("group_buys.id"), nullable=False),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    # held (not paid yet) | paid (waiting for the group) | left (hold lapsed or cancelled) | delivered | refunded
    Column("state", String(12), nullable=False),
    Column("joined_at", TS, nullable=False),
    Index("ix_group_buy_members_group", "group_id", "state"),
)

# Flash sales (migration 0021_flash_sales; core/flash_sales.py): a product at a price of its own between starts_at
# and ends_at (or ended_at, when a merchant ended it early), `units` at most; `sold` counts the units held or paid
# at that price (taken in the reserve batch with the row locked, given back when an order lapses, is cancelled or
# refunded). Each order's units are a use row, so a buyer's (a person's: linked accounts) units can be counted.
flash_sales = Table(
    "flash_sales", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("stars", Integer),
    Column("units", Integer, nullable=False),
    Column("per_buyer", Integer, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("ended_at", TS),
    Column("sold", Integer, nullable=False, server_default="0"),
    Column("source", String(96), nullable=False),  # "chat" or "config:<sku>:<start>" (kept in step with config)
    Column("created_by", String(96), nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_flash_sales_product", "product_id", "ends_at"),
)

flash_sale_uses = Table(
    "flash_sale_uses", metadata,
    Column("order_id", String(24), primary_key=True),
    Column("sale_id", Integer, ForeignKey("flash_sales.id"), nullable=False),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("qty", Integer, nullable=False),
    Index("ix_flash_sale_uses_buyer", "sale_id", "buyer_channel", "buyer_id"),
)
# Coupons as member rewards (migration 0024_member_coupons; core/members/coupons.py): a single-use code issued to a
# buyer (bought in the points mall, a referral reward, the new-buyer gift), kept sealed by the vault (never in plain
# text) with its fingerprint, once per `ref`. `coupon_codes.void_at`: a code taken back (an issued reward whose order
# was refunded before it was used): it stays known (typing it is no guess) and is refused as used up.
member_coupons = Table(
    "member_coupons", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("buyer_channel", String(16), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("coupon_id", Integer, ForeignKey("coupons.id"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),  # its coupon_codes row
    Column("sealed", String(400), nullable=False),  # the code encrypted by the vault (CouponDesk.seal)
    Column("source", String(12), nullable=False),  # mall | referral | gift
    Column("ref", String(120), nullable=False, unique=True),  # issued once (mall:<token>, referral:<referee>, ...)
    Column("order_id", String(24)),  # the order that brought it (a refund takes it back)
    Column("points", BigInteger, nullable=False, server_default="0"),  # what it cost in the mall
    Column("issued_at", TS, nullable=False),
    Column("voided_at", TS),
    Index("ix_member_coupons_buyer", "buyer_channel", "buyer_id"),
    Index("ix_member_coupons_order", "order_id"),
)
coupon_codes.append_column(Column("void_at", TS))
