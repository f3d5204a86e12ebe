"""Merchant use cases: stock, recent orders, an order's detail and audit trail, refunds, products, code import.

Framework-free, like the rest of core/. Every call names the merchant (`Merchant`: channel + id on it) and
writes an `admin` audit entry — the command and what it touched, never a code. Refused commands are recorded
too (`record`), and so are non-merchants trying a merchant command (`record_denied`, action `admin_denied`).

The merchant never sees plain codes in a listing: order detail lists how many codes an order has and their row ids;
only `reveal_for_merchant` decrypts, audited as a reveal by the merchant in the same transaction. The records
and refusals are core/merchant_records.py's.
"""
from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from core.aftersales import AftersalesError, AuditTrail, ProblemDesk, order_trail
from core.auditlog import PAGE as AUDIT_PAGE
from core.auditlog import AuditPage, AuditQuery, merchant_look
from core.errors import ErrorCode, StoreError
from core.merchant_records import (
    IMPORT_TYPES as IMPORT_TYPES,
)
from core.merchant_records import (
    MAX_IMPORT_BYTES as MAX_IMPORT_BYTES,
)
from core.merchant_records import (
    MAX_PRICE as MAX_PRICE,
)
from core.merchant_records import (
    MAX_STARS as MAX_STARS,
)
from core.merchant_records import (
    MAX_TITLE as MAX_TITLE,
)
from core.merchant_records import (
    SKU_RE as SKU_RE,
)
from core.merchant_records import (
    TICKET_REFUSALS as TICKET_REFUSALS,
)
from core.merchant_records import (  # the records and refusals of these use cases (re-exported)
    AdminCode as AdminCode,
)
from core.merchant_records import (
    AdminError as AdminError,
)
from core.merchant_records import (
    CodeRef as CodeRef,
)
from core.merchant_records import (
    Merchant as Merchant,
)
from core.merchant_records import (
    MerchantRefund as MerchantRefund,
)
from core.merchant_records import (
    OrderDetail as OrderDetail,
)
from core.merchant_records import (
    OrderPage as OrderPage,
)
from core.merchant_records import (
    ProductChange as ProductChange,
)
from core.merchant_records import (
    ProductEdited as ProductEdited,
)
from core.merchant_records import (
    RecordAudit as RecordAudit,
)
from core.merchant_records import (
    RefundQueued as RefundQueued,
)
from core.merchant_records import (
    StockRow as StockRow,
)
from core.merchant_records import (
    check_import_file as check_import_file,
)
from core.merchant_records import (
    check_price as check_price,
)
from core.merchant_records import (
    check_sku as check_sku,
)
from core.merchant_records import (
    check_stars as check_stars,
)
from core.merchant_records import (
    check_title as check_title,
)
from core.models import (
    AuditEntry,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Product,
    ProductSpec,
)
from core.order_search import OrderQuery
from core.outbox import decrypt_codes, load_stored
from core.ports import UnitOfWork
from core.shop import MERCHANT_REFUND, REVEALS_PER_HOUR, Shop
from core.supply import ImportReport, import_codes, looks_binary, read_lines

log = logging.getLogger(__name__)
ADMIN_POSITION = 1_000_000  # merchant-made products list after the configured ones
ORDER_ID_RE = re.compile(r"^[0-9A-Za-z]{1,24}$")
REFUNDABLE = (OrderStatus.DELIVERED,)


class AdminService:
    def __init__(self, shop: Shop, *, import_batch: int | None = None) -> None:
        self.shop = shop
        self.import_batch = import_batch  # None: the importer's own batch size (as the CLI)
        # Refunds run through the group committer like payments: its commit wakes the outbox dispatcher.
        shop.committer.register(MerchantRefund, self._refund_batch)
        shop.committer.register(RecordAudit, self._record_batch)

    # -- audit ----------------------------------------------------------------------------------
    def _entry(self, m: Merchant, command: str, *, order_id: str | None = None, product_id: int | None = None,
               **detail: Any) -> AuditEntry:
        return AuditEntry("admin", m.key, m.channel, self.shop.clock.now(), order_id, product_id,
                          detail={"command": command, **detail})

    async def record(self, m: Merchant, command: str, *, order_id: str | None = None,
                     product_id: int | None = None, **detail: Any) -> None:
        """An audit entry on its own (views, refusals), written by the group committer (returns once committed)."""
        await self.shop.committer.submit(RecordAudit(self._entry(m, command, order_id=order_id,
                                                                 product_id=product_id, **detail)))

    @staticmethod
    async def _record_batch(uow: UnitOfWork, requests: Sequence[RecordAudit]) -> list[None]:
        await uow.audit.add_many([r.entry for r in requests])
        return [None] * len(requests)

    async def record_denied(self, channel: str, external_id: str, command: str) -> None:
        """Someone who is not a merchant tried a merchant command: nothing was shown or changed."""
        async with self.shop.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("admin_denied", f"{channel}:{external_id}", channel,
                                                 self.shop.clock.now(), detail={"command": command})])
            await uow.commit()

    # -- reading --------------------------------------------------------------------------------
    async def stock(self, m: Merchant) -> list[StockRow]:
        lines = await self.shop.stock()
        products = {p.id: p for p in await self.shop.products(include_inactive=True)}
        await self.record(m, "stock")
        return [StockRow(line, products.get(line.product_id)) for line in lines]

    async def orders(self, m: Merchant, status: OrderStatus | None = None, page: int = 0,
                     per_page: int = 10) -> OrderPage:
        page = max(0, page)
        async with self.shop.uow() as uow:
            orders = await uow.orders.recent(status, per_page + 1, page * per_page)
            products = await uow.products.get_many(sorted({o.product_id for o in orders}))
        await self.record(m, "orders", status=status.value if status else "all", page=page + 1)
        return OrderPage(orders[:per_page], products, page, len(orders) > per_page)

    async def order(self, m: Merchant, order_id: str) -> OrderDetail:
        order_id = self._order_id(order_id)
        async with self.shop.uow() as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise AdminError(AdminCode.ORDER_NOT_FOUND, order=order_id)
            product = await uow.products.get(order.product_id)
            payments = await uow.payments.for_order(order.id)
            if order.reusable_code_id:
                stored = await uow.codes.get_many([order.reusable_code_id])
            else:
                stored = (await uow.codes.for_orders([order.id])).get(order.id, [])
            trail = await uow.audit.for_order(order.id)
        await self.record(m, "order", order_id=order.id, product_id=order.product_id)
        return OrderDetail(order, product, payments, [CodeRef(c.id, c.status) for c in stored], trail)

    async def search_orders(self, m: Merchant, query: OrderQuery, per_page: int = 25) -> OrderPage:
        """Orders by id, buyer, status and days (core/order_search.py), newest first, one page; audited."""
        since, until = query.window(self.shop.reports.zone)  # whole days of the store's zone (jobs.timezone)
        async with self.shop.uow() as uow:
            orders = await uow.orders.search(order_id=query.order_id, channel=query.channel,
                                             buyer_id=query.buyer_id, status=query.status, since=since,
                                             until=until, limit=per_page + 1, offset=query.page * per_page)
            products = await uow.products.get_many(sorted({o.product_id for o in orders}))
        await self.record(m, "orders", **query.audit())
        return OrderPage(orders[:per_page], products, query.page, len(orders) > per_page)

    async def reveal_for_merchant(self, m: Merchant, order_id: str) -> tuple[Order, list[str]]:
        """A delivered order's codes shown to a merchant (the console's "reveal"): audited as a `reveal` with the
        merchant as the actor in the transaction that decrypts them, and limited like a buyer's reveals."""
        order_id = self._order_id(order_id)
        now = self.shop.clock.now()
        async with self.shop.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise AdminError(AdminCode.ORDER_NOT_FOUND, order=order_id)
            stored = (await load_stored(uow, [order]))[order.id] if order.status is OrderStatus.DELIVERED else []
            if not stored:
                raise AdminError(AdminCode.NOTHING_TO_REVEAL, order=order.id, status=order.status.value)
            await uow.audit.lock_actor("reveal", m.key)  # concurrent reveals cannot overrun the limit
            if await uow.audit.count("reveal", m.key, since=now - timedelta(hours=1)) >= REVEALS_PER_HOUR:
                raise AdminError(AdminCode.REVEAL_LIMIT, limit=REVEALS_PER_HOUR)
            codes = decrypt_codes(self.shop.vault, stored)
            await uow.audit.add_many([AuditEntry("reveal", m.key, m.channel, now, order.id, order.product_id,
                                                 detail={"merchant": True, "codes": len(codes),
                                                         "code_ids": [c.id for c in stored]})])
            await uow.commit()
        return order, codes

    async def audit(self, m: Merchant, order_id: str) -> AuditTrail:
        """Every audit entry of an order (reveals, deliveries, reissues, refunds, merchant actions); the
        command itself is recorded after the trail was read."""
        order_id = self._order_id(order_id)
        trail = await order_trail(self.shop.uow, order_id)
        if trail is None:
            raise AdminError(AdminCode.ORDER_NOT_FOUND, order=order_id)
        await self.record(m, "audit", order_id=trail.order.id, product_id=trail.order.product_id,
                          entries=len(trail.entries))
        return trail

    async def audit_log(self, m: Merchant, query: AuditQuery, limit: int = AUDIT_PAGE) -> AuditPage:
        """The whole audit log, newest first, a page at a time, filtered (core/auditlog.py; the look recorded)."""
        return await merchant_look(self.shop.uow, self, m, query, limit)

    # -- after-sales tickets (core/aftersales/problems.py ProblemDesk) -----------------------------------------
    def _problems(self) -> ProblemDesk:
        desk = self.shop.problems
        if desk is None:
            raise AdminError(AdminCode.NO_AFTERSALES)
        return desk

    async def _target(self, desk: ProblemDesk, ref: str) -> tuple[str, int | None]:
        """(order id, ticket id) for a ticket ref "T12" or an order id."""
        try:
            order_id, ticket_id = await desk.order_of(ref.strip())
        except AftersalesError as exc:
            raise AdminError(TICKET_REFUSALS[exc.code], **exc.params) from None
        return self._order_id(order_id), ticket_id

    async def reissue(self, m: Merchant, ref: str) -> tuple[Order, int]:
        """Answer a ticket (T12, or an order id) with new codes: the order's codes are burned and replaced from
        the pool; the ticket is closed as reissued."""
        desk = self._problems()
        order_id, ticket_id = await self._target(desk, ref)
        try:
            done = await desk.reissue(m.key, m.channel, order_id, ticket_id)
        except StoreError:
            raise AdminError(AdminCode.ORDER_NOT_FOUND, order=order_id) from None
        except AftersalesError as exc:
            raise AdminError(TICKET_REFUSALS[exc.code], **exc.params) from None
        if done is None:
            raise AdminError(AdminCode.NOT_REISSUABLE, order=order_id)
        order, n = done
        if n == 0:
            raise AdminError(AdminCode.NO_REPLACEMENT, order=order_id)
        await self.record(m, "reissue", order_id=order.id, product_id=order.product_id, codes=n,
                          **({"ticket": f"T{ticket_id}"} if ticket_id else {}))
        return order, n

    async def reject(self, m: Merchant, ref: str, answer: str) -> Order:
        """Turn a ticket (T12, or an order id) down: the buyer gets the merchant's answer in the chat."""
        desk = self._problems()
        order_id, ticket_id = await self._target(desk, ref)
        answer = check_title(answer)[:200] if answer.strip() else ""
        if not answer:
            raise AdminError(AdminCode.NO_ANSWER)
        try:
            order = await desk.reject(m.key, m.channel, order_id, answer, ticket_id)
        except StoreError:
            raise AdminError(AdminCode.ORDER_NOT_FOUND, order=order_id) from None
        except AftersalesError as exc:
            raise AdminError(TICKET_REFUSALS[exc.code], **exc.params) from None
        await self.record(m, "reject", order_id=order.id, product_id=order.product_id, answer=answer,
                          **({"ticket": f"T{ticket_id}"} if ticket_id else {}))
        return order

    async def refund_ticket(self, m: Merchant, ref: str) -> RefundQueued:
        """Refund a ticket's order (T12; the console's ticket button) while the ticket is open: one another merchant
        answered meanwhile (say, reissued) is refused, not refunded on top. The refund closes it as refunded."""
        desk = self._problems()
        order_id, ticket_id = await self._target(desk, ref)
        if ticket_id is not None:
            tickets = (await desk.tickets_for([order_id])).get(order_id, [])
            state = next((tk.status for tk in tickets if tk.id == ticket_id), None)
            if state is None:
                raise AdminError(AdminCode.TICKET_NOT_FOUND, ticket=f"T{ticket_id}")
            if state != "open":
                raise AdminError(AdminCode.TICKET_CLOSED, ticket=f"T{ticket_id}", state=state)
        return await self.refund(m, order_id)

    @staticmethod
    def _order_id(raw: str) -> str:
        if not ORDER_ID_RE.match(raw):
            raise AdminError(AdminCode.ORDER_NOT_FOUND, order=raw[:30])
        return raw.upper()

    # -- refunds --------------------------------------------------------------------------------
    async def refund(self, m: Merchant, order_id: str) -> RefundQueued:
        """Refund a delivered order's payment through the outbox (the provider's refund, then the buyer is
        told); its codes are burned at once. A second refund of the same order is refused."""
        return await self.shop.committer.submit(MerchantRefund(m, self._order_id(order_id)))

    async def _refund_batch(self, uow: UnitOfWork, refunds: Sequence[MerchantRefund]
                            ) -> list[RefundQueued | AdminError]:
        items = [(r.merchant, r.order_id) for r in refunds]
        now = self.shop.clock.now()
        orders = await uow.orders.get_many(sorted({oid for _, oid in items}), for_update=True)
        results: list[RefundQueued | AdminError] = []
        for m, oid in items:
            try:
                results.append(await self._refund_one(uow, m, orders.get(oid), oid, now))
            except AdminError as exc:
                results.append(exc)
        return results

    async def _refund_one(self, uow: UnitOfWork, m: Merchant, order: Order | None, oid: str, now: datetime
                          ) -> RefundQueued:
        if order is None:
            raise AdminError(AdminCode.ORDER_NOT_FOUND, order=oid)
        if order.status in (OrderStatus.REFUNDING, OrderStatus.REFUNDED):
            raise AdminError(AdminCode.ALREADY_REFUNDED, order=order.id, status=order.status.value)
        if order.status not in REFUNDABLE:
            raise AdminError(AdminCode.NOT_PAID, order=order.id, status=order.status.value)
        captured = [p for p in await uow.payments.for_order(order.id) if p.status == "captured"]
        if not captured:
            raise AdminError(AdminCode.NO_PAYMENT, order=order.id)
        payment = captured[0]
        if payment.provider not in self.shop.gateways:
            raise AdminError(AdminCode.PROVIDER_MISSING, provider=payment.provider)
        assert payment.id is not None
        await uow.payments.set_status(payment.id, "refund_pending")
        payment.status = "refund_pending"
        await uow.orders.set_status([order.id], OrderStatus.REFUNDING, now)
        order.status = OrderStatus.REFUNDING  # the same order may come twice in one batch: the second is refused
        burned = await uow.codes.burn([order.id])
        desk = self.shop.problems  # the refund answers the order's open tickets
        closed = await desk.close_refunded(uow, order.id, m.key, now) if desk is not None else []
        await uow.outbox.add_many([OutboxItem(None, "refund", order.buyer.channel, order.chat_id, order.id, {
            "payment_id": payment.id, "reason": MERCHANT_REFUND, "language": order.language})])
        await uow.audit.add_many([self._entry(m, "refund", order_id=order.id, product_id=order.product_id,
                                              payment_id=payment.id, provider=payment.provider,
                                              amount=payment.amount, currency=payment.currency,
                                              codes_burned=burned, **({"tickets": closed} if closed else {}))])
        return RefundQueued(order, payment, burned)

    # -- products -------------------------------------------------------------------------------
    async def product(self, m: Merchant, sku: str) -> Product:
        p = await self.shop.product_by_sku(check_sku(sku))
        if p is None:
            raise AdminError(AdminCode.UNKNOWN_SKU, sku=sku)
        await self.record(m, "product", product_id=p.id, sku=p.sku)
        return p

    async def create_product(self, m: Merchant, sku: str, price: int, stars: int, title: str) -> Product:
        """A new pool product (kind code), on sale at once; it survives config syncs (source 'admin')."""
        check_sku(sku)
        check_price(price)
        check_stars(stars)
        title = check_title(title)
        currency = await self._currency()
        spec = ProductSpec(sku=sku, kind=Kind.CODE, title={"*": title}, description={}, category={}, price=price,
                           currency=currency, stars=stars or None, min_qty=1, max_qty=10, hold_minutes=None,
                           active=True, rules={}, position=ADMIN_POSITION)
        async with self.shop.uow(write=True) as uow:
            if await uow.products.by_sku(sku) is not None:
                raise AdminError(AdminCode.SKU_EXISTS, sku=sku)
            product = await uow.products.upsert(spec, source="admin")
            await uow.audit.add_many([self._entry(m, "product_new", product_id=product.id, sku=sku, price=price,
                                                  stars=stars, title=title)])
            await uow.commit()
        self.shop.catalog_changed()
        return product

    async def _currency(self) -> str:
        if self.shop.currency:
            return self.shop.currency
        seen: dict[str, int] = {}
        for p in await self.shop.products(include_inactive=True):
            seen[p.currency] = seen.get(p.currency, 0) + 1
        if not seen:
            raise AdminError(AdminCode.NO_CURRENCY)
        return max(seen, key=lambda c: seen[c])

    async def edit_product(self, m: Merchant, sku: str, change: ProductChange) -> ProductEdited:
        field = change.field
        title: dict[str, str] | None = None
        check_sku(sku)
        if change.price is not None:
            check_price(change.price)
        if change.stars is not None:
            check_stars(change.stars)
        async with self.shop.uow(write=True) as uow:
            before = await uow.products.by_sku(sku)
            if before is None:
                raise AdminError(AdminCode.UNKNOWN_SKU, sku=sku)
            if change.title is not None:
                lang, text = change.title
                title = {**before.title, lang: check_title(text)}
            values: dict[str, Any] = {}
            if change.price is not None:
                values["price"] = change.price
            if change.stars is not None:
                values["stars"] = change.stars or None  # 0: no Stars price (not sold in Telegram)
            if title is not None:
                values["title"] = title
            if change.active is not None:
                values["active"] = change.active
            await uow.products.update(before.id, values)
            after = await uow.products.get(before.id)
            assert after is not None
            old, new = _field_values(before, after, change)
            await uow.audit.add_many([self._entry(m, "product", product_id=before.id, sku=sku, field=field,
                                                  old=old, new=new)])
            await uow.commit()
        self.shop.catalog_changed()
        return ProductEdited(before, after, field)

    # -- import ---------------------------------------------------------------------------------
    async def import_file(self, m: Merchant, sku: str, file_name: str, data: bytes,
                          progress: Callable[[int], None] | None = None) -> ImportReport:
        """Import a .txt/.csv file's codes with the CLI's importer (batches land whole; re-runs skip what
        landed). Refuses empty and binary files and unknown SKUs before anything lands."""
        check_import_file(file_name, len(data))
        product = await self.check_import_target(sku)
        if not data.strip():
            raise AdminError(AdminCode.EMPTY_FILE, name=file_name[:64])
        if looks_binary(data[:8192]):
            raise AdminError(AdminCode.BINARY_FILE, name=file_name[:64])
        return await self._import(m, product, file_name, io.BytesIO(data), len(data), progress, None)

    async def import_stream(self, m: Merchant, sku: str, file_name: str, fh: BinaryIO, size: int,
                            progress: Callable[[int], None] | None = None,
                            report: ImportReport | None = None) -> ImportReport:
        """Import a .txt/.csv file read line by line from `fh` (the console's upload, saved to disk: never held
        whole in memory); the size cap is the caller's. Refuses empty and binary files and unknown SKUs before
        anything lands. `report` fills in as batches land: when a later batch fails, it and the audit say what
        landed."""
        product = await self.check_import_stream(sku, file_name, fh)
        return await self._import(m, product, file_name, fh, size, progress, report)

    async def check_import_stream(self, sku: str, file_name: str, fh: BinaryIO) -> Product:
        """The refusals of `import_stream`, before anything lands: a .txt/.csv name, a product that takes codes,
        a file that is neither binary nor blank. Leaves `fh` at its start."""
        check_import_file(file_name, None)
        product = await self.check_import_target(sku)
        head = fh.read(8192)
        if looks_binary(head):
            raise AdminError(AdminCode.BINARY_FILE, name=file_name[:64])
        while not head.strip():  # blank so far: read on (in blocks) until a non-blank byte or the end
            if not head:
                raise AdminError(AdminCode.EMPTY_FILE, name=file_name[:64])
            head = fh.read(1 << 16)
        fh.seek(0)
        return product

    async def _import(self, m: Merchant, product: Product, file_name: str, fh: BinaryIO, size: int,
                      progress: Callable[[int], None] | None, report: ImportReport | None) -> ImportReport:
        kw: dict[str, Any] = {"batch_size": self.import_batch} if self.import_batch else {}
        sku, product_id = product.sku, product.id
        report = report if report is not None else ImportReport(sku)
        try:
            await import_codes(self.shop.uow, self.shop.vault, self.shop.clock, sku, read_lines(fh), actor=m.key,
                               channel=m.channel, progress=progress, report=report, **kw)
        except StoreError as exc:
            if exc.code is ErrorCode.UNKNOWN_SKU:
                raise AdminError(AdminCode.UNKNOWN_SKU, sku=sku) from None
            if exc.code is ErrorCode.KIND_NOT_SUPPORTED:
                raise AdminError(AdminCode.KIND_NOT_SUPPORTED, sku=sku) from None
            await self._import_failed(m, sku, file_name, size, product_id, report, exc)
            raise
        except Exception as exc:
            await self._import_failed(m, sku, file_name, size, product_id, report, exc)
            raise
        if report.imported and self.shop.resellers is not None:
            await self.shop.resellers.fill_waiting([product_id])  # B2B orders waiting for stock, oldest first
        await self.record(m, "import", product_id=product_id, sku=sku, file=file_name[:64], bytes=size,
                          imported=report.imported, duplicates=report.duplicates, rejected=report.rejected)
        return report

    async def _import_failed(self, m: Merchant, sku: str, file_name: str, size: int, product_id: int,
                             report: ImportReport, exc: Exception) -> None:
        """An import that stopped part-way: the batches that landed stay (sending the file again skips them)."""
        try:
            await self.record(m, "import", product_id=product_id, sku=sku, file=file_name[:64], bytes=size,
                              imported=report.imported, duplicates=report.duplicates, rejected=report.rejected,
                              lines=report.lines, failed=type(exc).__name__)
        except Exception:
            log.exception("could not audit the failed import into %s", sku)

    async def check_import_target(self, sku: str) -> Product:
        check_sku(sku)
        product = await self.shop.product_by_sku(sku)
        if product is None:
            raise AdminError(AdminCode.UNKNOWN_SKU, sku=sku)
        if product.kind not in (Kind.CODE, Kind.REUSABLE):
            raise AdminError(AdminCode.KIND_NOT_SUPPORTED, sku=sku)
        return product


def _field_values(before: Product, after: Product, change: ProductChange) -> tuple[int | str | bool, int | str | bool]:
    if change.price is not None:
        return before.price, after.price
    if change.stars is not None:
        return before.stars or 0, after.stars or 0
    if change.title is not None:
        lang = change.title[0]
        return before.title.get(lang, ""), after.title.get(lang, "")
    return before.active, after.active
