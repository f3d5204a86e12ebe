"""The shop: one object the handlers and jobs call. Each method is one use case."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from core.alerts import AdminAlerts
from core.background import Background
from core.batching import GroupCommitter, QuietRequest
from core.clock import Clock
from core.coordination import ALL, CacheBus, LocalShared, Shared
from core.customers import CustomerBook
from core.errors import ErrorCode, StoreError
from core.links import LinkDesk
from core.logcontext import set_order
from core.metrics import NO_METRICS, Metrics
from core.models import (
    AuditEntry,
    BundlePart,
    Buyer,
    Customer,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Product,
    ProductSpec,
    StockLine,
    new_order_id,
)
from core.orders import OrderBook, OrderPolicy, ReserveRequest
from core.outbox import OutboxDispatcher, decrypt_codes, load_stored
from core.payments import Outcome, PaymentDesk, PaymentNotice, PaymentResult, Refusal
from core.ports import Notifier, PaymentGateway, Supplier, TemplateNotifier, UnitOfWork, UnitOfWorkFactory
from core.privacy import PrivacyDesk
from core.promotions import NO_READS, REFUNDED, Priced, Promotion, Quote, release_all
from core.reports import ReportDesk
from core.risk import Guard, RiskDesk, RiskPolicy, rules_of
from core.supply import SupplyDesk, check_account
from core.supply.metered import MeteredSupplier
from core.vault import Vault

if TYPE_CHECKING:
    from core.aftersales import ProblemDesk
    from core.cardfaces import CardFaceDesk
    from core.console import ConsoleDesk
    from core.coupons import CouponDesk
    from core.group_buy import GroupBuyDesk
    from core.groups import GroupDesk
    from core.members import MemberDesk
    from core.resellers import ResellerDesk

log = logging.getLogger(__name__)
REVEALS_PER_HOUR = 10
MERCHANT_REFUND = "merchant"  # the refund reason of a refund a merchant ordered (core/admin.py)


@dataclass(slots=True)
class ProductView:
    product: Product
    available: int | None  # None = not counted (reusable: unlimited)
    low: bool


@dataclass(frozen=True, slots=True)
class RevealRequest(QuietRequest[list[str]]):
    """Show a delivered order's codes to its buyer: counted against REVEALS_PER_HOUR and audited in the same
    transaction (Shop.reveal), answered with the plain codes or RATE_LIMITED."""

    order: Order
    product_id: int
    buyer: Buyer
    chat: str


class Shop:
    def __init__(self, uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, *,
                 policy: OrderPolicy | None = None, languages: Sequence[str] = ("en", "zh_CN"),
                 default_language: str = "en", low_stock: int = 5, demo: bool = False,
                 gateways: Mapping[str, PaymentGateway] | None = None,
                 notifiers: Mapping[str, Notifier] | None = None, single_process: bool = True,
                 max_batch: int = 256, currency: str | None = None, catalog_ttl: float = 2.0,
                 customer_ttl: float = 2.0, risk: RiskPolicy | None = None, shared: Shared | None = None) -> None:
        self.uow = uow_factory
        # What the store's processes share (Redis, or this process's memory: core/coordination.py) and the caches
        # every process drops together through it (catalogue, customers, API keys, card faces, the ban gate).
        self.shared: Shared = shared if shared is not None else LocalShared()
        self.caches = CacheBus(self.shared)
        self.vault = vault
        self.clock = clock
        self.languages = list(languages)
        self.default_language = default_language
        self.low_stock = low_stock
        self.demo = demo
        self.single_process = single_process
        self.gateways: dict[str, PaymentGateway] = dict(gateways or {})
        self.notifiers: dict[str, Notifier] = dict(notifiers or {})
        self.committer = GroupCommitter(uow_factory, max_batch=max_batch)
        self.book = OrderBook(clock, policy or OrderPolicy())
        # Rules and risk check every reserve inside its batch, before the order book holds stock.
        self.guard = Guard(clock, risk, hold_cap=lambda: self.book.policy.max_open_holds,
                           catalog=self._all_products)
        self.committer.register(ReserveRequest, lambda uow, reqs: self.guard.reserve_batch(uow, reqs,
                                                                                      self.book.reserve_batch))
        self.guard.bans = self.book.bans
        self.risk = RiskDesk(uow_factory, clock, self.guard,
                             lambda p: (p.hold_minutes if p else None) or self.book.policy.hold_minutes,
                             self.catalog_changed, wake=lambda: self.dispatcher.wake(),
                             bans_changed=lambda: self.caches.changed("bans"))
        self.caches.on("bans", lambda _key: self.book.bans.changed())
        # Linked accounts (core/links.py): the codes' HMAC key is the vault's fingerprint key (never rotated).
        self.links = LinkDesk(uow_factory, clock, lambda: vault.ring.fingerprint_key)
        self.privacy = PrivacyDesk(uow_factory, clock, lambda: vault.ring.fingerprint_key)  # /mydata, forget
        self.privacy.forgotten = lambda buyer: self.caches.changed("customer", buyer.key)
        self.committer.register(PaymentNotice, self.book.pay_batch)
        self.committer.register(RevealRequest, self._reveal_batch)
        self.dispatcher = OutboxDispatcher(uow_factory, self.committer, vault, clock, self.notifiers, self.gateways)
        self.dispatcher.on_refunded(self._refunded_promotions)
        self.coupons: CouponDesk | None = None  # set by the composition root when coupons are on (core/coupons.py)
        # The one way a payment gets in (core/payments.py): orders through the "pay" batch, top-ups when attached.
        self.payments = PaymentDesk(uow_factory, clock, self.committer.submit, lambda: self.gateways.keys(),
                                    self.risk.under_review, self.dispatcher.wake, self.book.bans)
        # Suppliers: attached by App.open from the `suppliers:` config (suppliers.build_suppliers).
        self.supply = SupplyDesk(uow_factory, vault, clock, wake=self.dispatcher.wake)
        self.dispatcher.supply = self.supply
        self.currency = currency  # the store currency, for products a merchant creates by command
        # Screens read the catalogue from memory: a change made here shows at once, one made by another
        # process within catalog_ttl seconds. Orders never trust it: reserve reads the product in its own
        # transaction, so a product taken off sale elsewhere cannot be sold from a stale page.
        self.catalog_ttl = catalog_ttl
        self._catalog: tuple[float, list[Product]] | None = None
        self.caches.on("catalog", self._drop_catalog)
        self.customer_book = CustomerBook(uow_factory, self.committer, clock, self.languages, default_language,
                                          customer_ttl, self.caches)  # core/customers.py
        # Merchant alerts raised by the shop itself (an order held for review); the composition root points this
        # at the App's FanoutAlerts (log, Telegram admins, WeChat admins).
        self.alerts: AdminAlerts | None = None
        self._alerts_sent = Background(log, "a merchant alert")
        # The features built on top of the shop, set by the composition root (app/bootstrap.py) when it builds
        # them; None on a shop without them.
        self.resellers: ResellerDesk | None = None  # reseller accounts, wallets, the B2B API's orders
        self.groups: GroupDesk | None = None  # reseller group chats
        self.problems: ProblemDesk | None = None  # buyers' problem reports, tickets, reissues
        self.card_faces: CardFaceDesk | None = None  # resellers' card faces (定制卡面)
        self.console: ConsoleDesk | None = None  # the web console's links and sessions (`console.enabled`)
        self.members: MemberDesk | None = None  # levels, points, referrals (`marketing.members`)
        self.group_buy: GroupBuyDesk | None = None  # group-buy pages and the group-buy-expiry job (core/group_buy.py)
        # Sales figures of a period (core/reports/); the composition root sets the store's zone (jobs.timezone).
        # The funnel's views and invoices ride with the group commits (core/reports/events.py).
        self.reports = ReportDesk(uow_factory, clock, committer=self.committer)
        self._metrics: Metrics = NO_METRICS

    # -- registration (the composition root's calls) ----------------------------------------------
    def add_gateway(self, gateway: PaymentGateway) -> None:
        """A payment provider the shop takes payments from and refunds through, under its name."""
        self.gateways[gateway.name] = gateway

    def templates_ready(self, channel: str) -> bool:
        """Whether `channel` reaches buyers outside its reply window by a template message set up for it
        (core/ports.py TemplateNotifier; WeChat's `wechat.broadcast_template`)."""
        notifier = self.notifiers.get(channel)
        return isinstance(notifier, TemplateNotifier) and notifier.templates_ready

    def add_notifier(self, channel: str, notifier: Notifier, *, replace: bool = True) -> None:
        """What sends deliveries and notices to the buyers of `channel`; replace=False keeps one already given."""
        if replace or channel not in self.notifiers:
            self.notifiers[channel] = notifier

    # -- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start sending: whatever a crash left in the outbox goes out first."""
        if self.single_process:
            async with self.uow(write=True) as uow:
                await uow.outbox.release_leases()
                await uow.commit()
        self.dispatcher.start()
        self.book.delivered_hook = lambda entries: self.committer.after_this_commit(
            lambda: self.dispatcher.handoff(entries))

    def attach_suppliers(self, suppliers: Mapping[str, Supplier]) -> None:
        """The configured suppliers by name; `suppliers.offers` (when given) maps store SKUs to them. Each call to
        them is counted and timed (core/supply/metered.py)."""
        metered = {name: MeteredSupplier(s, lambda: self.metrics) for name, s in suppliers.items()}
        self.supply.attach(cast(Mapping[str, Supplier], metered), getattr(suppliers, "offers", None))

    @property
    def metrics(self) -> Metrics:
        """What the shop counts and times (core/metrics.py); set by the composition root (app/bootstrap.py)."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.dispatcher.metrics = metrics

    @property
    def suppliers(self) -> dict[str, Supplier]:
        return self.supply.suppliers

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Stop; what is already due in the outbox gets one last chance to go out first."""
        self.book.delivered_hook = None
        if self.dispatcher.running:
            with contextlib.suppress(Exception):  # timed out or failed: unsent rows stay in the outbox for next start
                await asyncio.wait_for(self.dispatcher.drain(), timeout=drain_seconds)
        await self.customer_book.close(drain_seconds)
        if self._alerts_sent:
            await self._alerts_sent.idle(timeout=drain_seconds)
        await self.dispatcher.stop()
        if self.reports.events is not None:  # the funnel's last counts
            await self.reports.events.close()
        await self.committer.close()
        await self.caches.close()
        for supplier in self.supply.suppliers.values():
            aclose = getattr(supplier, "aclose", None)
            if aclose is not None:
                await aclose()

    # -- catalogue ----------------------------------------------------------------------------
    async def sync_catalog(self, specs: Sequence[ProductSpec]) -> list[Product]:
        """Create or update products by SKU. Products no longer listed are taken off sale, never deleted:
        their orders, codes and history stay, and listing them again puts them back on sale."""
        async with self.uow(write=True) as uow:
            out = [await uow.products.upsert(s) for s in specs]
            await uow.products.deactivate_except([s.sku for s in specs])
            out = await resolve_bundles(uow, out)
            await uow.commit()
        self.catalog_changed()
        return out

    def catalog_changed(self) -> None:
        """Forget the cached catalogue, here and in every other process (called after every product change)."""
        self.caches.changed("catalog")

    def _drop_catalog(self, _key: str) -> None:
        self._catalog = None

    async def _all_products(self) -> list[Product]:
        cached = self._catalog
        if cached is not None and time.monotonic() - cached[0] < self.catalog_ttl:
            return cached[1]
        async with self.uow() as uow:
            items = await uow.products.list(active_only=False)
        self._catalog = (time.monotonic(), items)
        return items

    async def products(self, category: str | None = None, *, include_inactive: bool = False) -> list[Product]:
        items = [p for p in await self._all_products() if include_inactive or p.active]
        if category is not None:
            items = [p for p in items if category_key(p) == category]
        return items

    async def categories(self) -> list[tuple[str, Product]]:
        """(category key, one product carrying its localized name), in catalogue order."""
        seen: dict[str, Product] = {}
        for p in await self.products():
            seen.setdefault(category_key(p), p)
        return list(seen.items())

    async def product_view(self, product_id: int) -> ProductView:
        p = await self.product(product_id)
        if p is None or not p.active:
            raise StoreError(ErrorCode.NOT_FOUND, product_id=product_id)
        async with self.uow() as uow:
            if p.kind is Kind.REUSABLE:
                live = await uow.codes.reusable_for([p.id])
                return ProductView(p, None if p.id in live else 0, False)
            if p.kind in (Kind.SUPPLIER, Kind.TOPUP):  # bought when sold: available while a supplier is set
                return ProductView(p, None if self.supply.supplier_for(p) else 0, False)
            counts = await self._pool_counts(uow, [p])
        n = min(bundle_available(p, counts) if p.kind is Kind.BUNDLE else counts.get(p.id, 0), self.low_stock + 1)
        return ProductView(p, n, 0 < n <= self.low_stock)

    async def product_views(self, products: Sequence[Product]) -> list[ProductView]:
        """Availability of many products at once (two queries, not one a product), as product_view counts it."""
        reusable = [p.id for p in products if p.kind is Kind.REUSABLE]
        async with self.uow() as uow:
            counts = await self._pool_counts(uow, products)
            live = await uow.codes.reusable_for(reusable) if reusable else {}
        out = []
        for p in products:
            if p.kind is Kind.REUSABLE:
                out.append(ProductView(p, None if p.id in live else 0, False))
            elif p.kind in (Kind.SUPPLIER, Kind.TOPUP):
                out.append(ProductView(p, None if self.supply.supplier_for(p) else 0, False))
            else:
                n = bundle_available(p, counts) if p.kind is Kind.BUNDLE else counts.get(p.id, 0)
                n = min(n, self.low_stock + 1)
                out.append(ProductView(p, n, 0 < n <= self.low_stock))
        return out

    async def _pool_counts(self, uow: UnitOfWork, products: Sequence[Product]) -> dict[int, int]:
        """Available codes of the pool products among `products` and of the bundles' parts (capped: enough to tell
        a bundle's availability up to the low-stock line)."""
        counted = {p.id for p in products if p.kind is Kind.CODE}
        counted |= {part.product_id for p in products if p.kind is Kind.BUNDLE for part in p.parts}
        if not counted:
            return {}
        most = max([part.qty for p in products if p.kind is Kind.BUNDLE for part in p.parts] or [1])
        return await uow.codes.available_counts(sorted(counted), (self.low_stock + 1) * most, self.clock.now())

    async def search(self, text: str, limit: int = 50) -> list[Product]:
        """Products on sale whose SKU, title, description or category (any language) contains every word of
        `text` (case-insensitive), in catalogue order."""
        words = text.casefold().split()
        if not words:
            return []
        found = []
        for p in await self.products():
            hay = " ".join([p.sku, *p.title.values(), *p.description.values(), *p.category.values()]).casefold()
            if all(w in hay for w in words):
                found.append(p)
                if len(found) >= limit:
                    break
        return found

    async def product(self, product_id: int) -> Product | None:
        """A product by id, from the catalogue cache (on sale or not)."""
        return next((p for p in await self._all_products() if p.id == product_id), None)

    async def product_by_sku(self, sku: str) -> Product | None:
        return next((p for p in await self._all_products() if p.sku == sku), None)

    # -- orders -------------------------------------------------------------------------------
    async def reserve(self, buyer: Buyer, product_id: int, qty: int, language: str, chat_id: str = "",
                      account: str = "", promo: Mapping[str, str] | None = None) -> Order:
        """Hold stock for a buyer until the hold lapses; raises SOLD_OUT when there is not enough.
        Top-ups carry the account to recharge (BAD_ACCOUNT when it does not fit the product's pattern).
        `promo`: what the buyer asked of the promotions (a coupon code, ...); the price is decided in the batch."""
        product = await self.product(product_id)
        if product is not None and product.kind in (Kind.SUPPLIER, Kind.TOPUP):
            if self.supply.supplier_for(product) is None:
                raise StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=product.sku)
            if product.kind is Kind.TOPUP:
                checked = self.check_account(product, account)
                if checked is None:
                    raise StoreError(ErrorCode.BAD_ACCOUNT, sku=product.sku)
                account = checked
        request = ReserveRequest(buyer, product_id, qty, language, chat_id, new_order_id(self.clock.now()),
                                 account, dict(promo or {}))
        try:
            order = await self.committer.submit(request)
        except StoreError as exc:
            if exc.code is ErrorCode.UNDER_REVIEW and exc.params.pop("held", False):
                self._review_alert(exc, buyer, product, qty)
            raise
        self.reports.invoiced(product_id, buyer.channel)  # the funnel: an order held for payment
        set_order(order.id)  # this update's log lines from here on carry the order (core/logcontext.py)
        return order

    # -- promotions (core/promotions.py) ----------------------------------------------------------
    def add_promotion(self, promotion: Promotion) -> None:
        """A promotion the order book applies, after the ones added before it."""
        self.book.promotions.append(promotion)

    @property
    def promotions(self) -> list[Promotion]:
        return self.book.promotions

    def promotion(self, name: str) -> Promotion | None:
        return next((p for p in self.book.promotions if p.name == name), None)

    async def quote(self, buyer: Buyer, product: Product, qty: int, promo: Mapping[str, str] | None = None,
                    language: str = "") -> Quote:
        """What `buyer` would pay for `qty` of `product` now, with the promotions' lines to show (read-only: the
        reserve decides again). No promotions: the listed price, without reading anything."""
        request = ReserveRequest(buyer, product.id, qty, language or self.default_language, "", "x", "",
                                 dict(promo or {}))
        item = Priced(request, product, self.book._new_order(request, product, self.clock.now()))
        now = self.clock.now()
        reading = [p for p in self.book.promotions if await p.reads(item, now)]
        if reading:
            async with self.uow() as uow:
                for promotion in self.book.promotions:
                    await promotion.preview(uow, item, now)
        else:  # nothing to read: no transaction for a product page
            for promotion in self.book.promotions:
                await promotion.preview(NO_READS, item, now)
        o = item.order
        return Quote(product, qty, o.amount, product.price * qty, o.stars_total, tuple(item.notes), item.available,
                     item.refusal)

    async def _refunded_promotions(self, uow: UnitOfWork, order_ids: list[str]) -> None:
        """Refunded orders give back what their promotions took (in the refund's transaction)."""
        if not self.book.promotions:
            return
        orders = await uow.orders.get_many(order_ids)
        await release_all(self.book.promotions, uow, list(orders.values()), self.clock.now(), REFUNDED)

    def _review_alert(self, exc: StoreError, buyer: Buyer, product: Product | None, qty: int) -> None:
        """Merchants hear of an order held for review at once, with approve/reject buttons (not waited for)."""
        order_id = str(exc.params.get("order_id"))
        score, reasons = exc.params.pop("score", 0), exc.params.pop("reasons", "")
        if self.alerts is None:
            return
        amount = product.price * qty if product else 0
        params = {"order": order_id, "sku": product.sku if product else "?", "qty": qty, "buyer": buyer.key,
                  "amount": f"{amount} {product.currency if product else ''}".strip(), "score": score,
                  "reasons": reasons}
        commands = [("risk.review.approve_button", f"/review approve {order_id}"),
                    ("risk.review.reject_button", f"/review reject {order_id}")]
        self._alerts_sent.spawn(self.alerts.alert("risk.alert.review", params, commands))

    async def pass_challenge(self, buyer: Buyer, token: str, answer: str) -> bool:
        """The buyer answered a CHALLENGE_REQUIRED: True when right (then reserve again; no challenge for a while)."""
        return await self.risk.pass_challenge(buyer, token, answer)

    def check_account(self, product: Product, account: str) -> str | None:
        """A top-up account as it will be sent, or None when it does not fit the product's pattern."""
        offer = self.supply.offer_for(product)
        return check_account(account, offer.account_pattern if offer else "")

    async def pay(self, notice: PaymentNotice) -> PaymentResult:
        """Every payment of every provider comes in here: recorded once, then an order delivered (or bought
        upstream), a wallet top-up credited, or a refund queued (core/payments.py)."""
        set_order(notice.order_id)  # this update's log lines from here on carry the order (core/logcontext.py)
        result = await self.payments.accept(notice)
        self._metrics.count("payments", provider=notice.provider, outcome=result.outcome.value)
        if result.outcome is not Outcome.DUPLICATE:
            log.info("payment %s for order %s: %s", notice.provider, notice.order_id or "-", result.outcome.value)
        return result

    async def payable(self, reference: str, payer: Buyer, amount: int, currency: str) -> Refusal | None:
        """Pre-checkout: None when this payment would be accepted now, else why not (reads only)."""
        return await self.payments.payable(reference, payer, amount, currency)

    async def cancel(self, order_id: str, buyer: Buyer) -> Order:
        """The buyer cancels an unpaid order; its stock is released at once."""
        async with self.uow(write=True) as uow:
            order = await self.book.cancel(uow, order_id, buyer)
            await uow.commit()
        return order

    async def expire_holds(self, *, tell_buyers: bool = False) -> list[Order]:
        """Release lapsed holds (run by the scheduler). Its own transaction, never batched with payments. With
        tell_buyers (the `expire-holds` job), each buyer is told their invoice lapsed: an outbox notice in the
        same transaction, in the buyer's language."""
        async with self.uow(write=True) as uow:
            lapsed = await self.book.expire_holds(uow)
            if lapsed and tell_buyers:
                await uow.outbox.add_many([
                    OutboxItem(None, "notify", o.buyer.channel, o.chat_id, o.id,
                               {"key": "order.lapsed", "language": o.language, "params": {"order": o.id}})
                    for o in lapsed])
            await uow.commit()
        return lapsed

    async def order_for(self, order_id: str, buyer: Buyer) -> tuple[Order, Product]:
        async with self.uow() as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.buyer != buyer:
                raise StoreError(ErrorCode.NOT_YOUR_ORDER)
            # Every way to pay starts here (invoice, pre-checkout, WeChat QR, My orders): not while under review.
            if order.status is OrderStatus.HELD and await self.risk.under_review(uow, order.id):
                raise StoreError(ErrorCode.UNDER_REVIEW, order_id=order.id)
        product = await self.product(order.product_id)
        if product is None:  # made by another process a moment ago
            self._drop_catalog(ALL)
            product = await self.product(order.product_id)
        assert product is not None
        return order, product

    async def my_orders(self, buyer: Buyer, limit: int = 10, offset: int = 0) -> list[Order]:
        """The buyer's orders, and those of the accounts linked with it now (core/links.py), newest first."""
        async with self.uow() as uow:
            return await uow.orders.for_buyers(await uow.risk.link_set(buyer), limit, offset)

    async def linked_order(self, order_id: str, buyer: Buyer) -> tuple[Order, Product]:
        """An order of an account linked with the buyer, to look at (My orders lists it): NOT_YOUR_ORDER when it
        is not. Never a way to pay or to see codes: those go through order_for, the buying account's own."""
        async with self.uow() as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.buyer not in await uow.risk.link_set(buyer):
                raise StoreError(ErrorCode.NOT_YOUR_ORDER)
        product = await self.product(order.product_id)
        if product is None:
            self._drop_catalog(ALL)
            product = await self.product(order.product_id)
        assert product is not None
        return order, product

    async def reveal(self, order_id: str, buyer: Buyer, chat: str = "") -> tuple[Order, Product, list[str]]:
        """Show a delivered order's codes again: audited and rate-limited."""
        order, product = await self.order_for(order_id, buyer)
        if order.status is not OrderStatus.DELIVERED:
            raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
        now = self.clock.now()
        due = rules_of(product.rules).delivery_due(order.paid_at) if order.paid_at else None
        if due is not None and due > now:  # scheduled: the codes are not the buyer's to see before then
            raise StoreError(ErrorCode.NOT_YET_DUE, date=due.strftime("%Y-%m-%d %H:%M UTC"))
        # Counted, decrypted and audited by the group commit: one transaction for every reveal waiting (a reveal
        # of its own was six round trips to PostgreSQL, and a write transaction queueing on SQLite).
        codes = await self.committer.submit(RevealRequest(order, product.id, buyer, chat or order.chat_id))
        return order, product, codes

    async def _reveal_batch(self, uow: UnitOfWork, reqs: Sequence[RevealRequest]) -> list[list[str] | Exception]:
        """Reveals in arrival order, each counted against its buyer's last hour, the ones before it in this batch
        included: the buyers are locked first (PostgreSQL: other processes' reveals of the same buyers wait until
        this commits; SQLite writes one transaction at a time), so the limit holds however many come at once.
        A refused reveal (or one whose codes do not decrypt) shows nothing and is not audited."""
        now = self.clock.now()  # the batch's time: when each of its reveals is counted and audited
        buyers = sorted({r.buyer.key for r in reqs})
        await uow.audit.lock_actors("reveal", buyers)
        recent = await uow.audit.counts("reveal", buyers, now - timedelta(hours=1))
        stored = await load_stored(uow, list({r.order.id: r.order for r in reqs}.values()))
        out: list[list[str] | Exception] = []
        entries = []
        for r in reqs:
            key = r.buyer.key
            if recent.get(key, 0) >= REVEALS_PER_HOUR:
                out.append(StoreError(ErrorCode.RATE_LIMITED, limit=REVEALS_PER_HOUR))
                continue
            try:
                codes = decrypt_codes(self.vault, stored.get(r.order.id, []))
            except Exception as exc:  # noqa: BLE001 - this reveal's failure only (VaultError: a lost key)
                out.append(exc)
                continue
            recent[key] = recent.get(key, 0) + 1
            entries.append(AuditEntry("reveal", key, r.buyer.channel, now, r.order.id, r.product_id,
                                      detail={"chat": r.chat, "codes": len(codes)}))
            out.append(codes)
        if entries:
            await uow.audit.add_many(entries)
        return out

    async def stock(self) -> list[StockLine]:
        async with self.uow() as uow:
            return await uow.codes.stock(self.clock.now())

    # -- customers (core/customers.py) ------------------------------------------------------------
    async def customer(self, buyer: Buyer, language_hint: str | None = None, *, fresh: bool = False) -> Customer:
        """The customer record (created on first contact); a copy: nothing changes until save_customer."""
        return await self.customer_book.customer(buyer, language_hint, fresh=fresh)

    async def language(self, buyer: Buyer, hint: str | None = None) -> str:
        """The buyer's language, without waiting for the database for one remembered (CustomerBook.language)."""
        return await self.customer_book.language(buyer, hint)

    async def save_customer(self, customer: Customer) -> None:
        """Store what changed of a customer's language and conversation state since it was read."""
        await self.customer_book.save_customer(customer)

    def match_language(self, hint: str | None) -> str:
        return self.customer_book.match_language(hint)

    @property
    def customer_ttl(self) -> float:
        return self.customer_book.ttl

    @customer_ttl.setter
    def customer_ttl(self, seconds: float) -> None:
        self.customer_book.ttl = seconds

    async def audit_for(self, order_id: str) -> list[AuditEntry]:
        async with self.uow() as uow:
            return await uow.audit.for_order(order_id)


def bundle_available(p: Product, counts: Mapping[int, int]) -> int:
    """How many of a bundle can be sold now: the fewest its parts' pools allow."""
    return min((counts.get(part.product_id, 0) // part.qty for part in p.parts), default=0)


async def resolve_bundles(uow: UnitOfWork, products: list[Product]) -> list[Product]:
    """Bundles' parts with their products' ids and titles (what reserve takes codes of, and what the delivery names
    each part), written with the bundle."""
    by_sku = {p.sku: p for p in products}
    out = []
    for p in products:
        if p.kind is Kind.BUNDLE and p.parts:
            parts = []
            for part in p.parts:
                q = by_sku.get(part.sku) or await uow.products.by_sku(part.sku)
                parts.append(BundlePart(part.sku, part.qty, q.id if q else 0, dict(q.title) if q else {}))
            await uow.products.update(p.id, {"bundle": [x.to_json() for x in parts]})
            p.parts = parts
        out.append(p)
    return out


def category_key(p: Product) -> str:
    return p.category.get("*") or p.category.get("en") or next(iter(p.category.values()), "")

