"""The B2B API's use cases (and a group chat's order, core/groups.py): the catalogue at the reseller's prices, an
order paid from the wallet (the same Idempotency-Key is the same order, never a second debit), and reading an order
back with its codes (each read audited as a reveal; codes of goods that start later refused until their date).
The orders themselves are made by the wallet order batch (core/resellers/batch.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, Kind, Order, OrderStatus, Product, new_order_id
from core.outbox import decrypt_codes, load_stored
from core.ports import Catalog, Delivery, UnitOfWorkFactory
from core.resellers.batch import Existing, OrderRequest, intent
from core.resellers.delivery import Deliveries
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, MAX_QTY, SUPPLIED, B2BOrder, Reseller, ResellerPolicy, request_fingerprint

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock
    from core.risk import Guard
    from core.supply import SupplyDesk
    from core.vault import Vault


class B2BOrders:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, vault: Vault, committer: GroupCommitter,
                 listing: Catalog, guard: Guard, supply: SupplyDesk, policy: ResellerPolicy, deliveries: Deliveries
                 ) -> None:
        self.uow = uow
        self.clock = clock
        self.vault = vault
        self.committer = committer
        self.listing = listing  # the shop's catalogue (core.ports.Catalog)
        self.guard = guard
        self.supply = supply
        self.policy = policy
        self.deliveries = deliveries

    async def catalog(self, reseller: Reseller) -> list[tuple[Product, int, int | None]]:
        """Products on sale that the API sells, with this reseller's price and the stock available (None:
        unlimited; supplier and top-up products while their supplier is configured)."""
        supply = self.supply
        products = [p for p in await self.listing.products()
                    if p.kind in (Kind.CODE, Kind.REUSABLE) or supply.supplier_for(p) is not None]
        async with self.uow() as uow:
            counts = await uow.codes.available_counts([p.id for p in products if p.kind is Kind.CODE], MAX_QTY,
                                                      self.clock.now())
            live = await uow.codes.reusable_for([p.id for p in products if p.kind is Kind.REUSABLE])
        return [(p, reseller.price_for(p), counts.get(p.id, 0) if p.kind is Kind.CODE else
                 (None if p.id in live or p.kind in SUPPLIED else 0)) for p in products]

    async def order(self, reseller: Reseller, sku: str, qty: int, idempotency_key: str, account: str = ""
                    ) -> B2BOrder:
        """Buy qty codes of sku, paid from the wallet, delivered at once. The same Idempotency-Key returns the
        same order (never a second one or a second debit); reused for another request it is refused.
        Supplier products are bought upstream after the debit and top-ups recharge `account` (checked against
        the product's pattern): both are `pending` until the supplier finishes (core/supply/desk.py), and a
        supplier's failure refunds the wallet."""
        product = await self.listing.product_by_sku(sku)
        if product is None:
            raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
        if product.kind is Kind.TOPUP:
            checked = self.listing.check_account(product, account)
            if checked is None:
                raise StoreError(ErrorCode.BAD_ACCOUNT, sku=sku)
            account = checked
        elif account:
            raise ResellerError(ResellerCode.BAD_REQUEST, field="account")
        req = OrderRequest(reseller.id, product.id, qty, idempotency_key, request_fingerprint(sku, qty, account),
                           new_order_id(self.clock.now()), account)
        res = await self.committer.submit(req)
        if isinstance(res, Existing):
            out = await self.get_order(reseller, res.order_id, early=True)
            out.created = False
            return out
        if res.due is not None:  # paid now, the codes are handed over from the effective date (GET the order)
            return B2BOrder(res.order, res.product, [], True, res.balance, due=res.due)
        return B2BOrder(res.order, res.product, decrypt_codes(self.vault, res.stored), True, res.balance)

    async def order_by_key(self, reseller: Reseller, idempotency_key: str) -> B2BOrder:
        """The order an Idempotency-Key made (a caller that lost the answer, or polls a pending top-up)."""
        async with self.uow() as uow:
            found = await uow.resellers.idempotent([(reseller.id, idempotency_key)])
        hit = found.get((reseller.id, idempotency_key))
        if hit is None:
            raise StoreError(ErrorCode.NOT_FOUND, idempotency_key=idempotency_key[:64])
        return await self.get_order(reseller, hit[0])

    async def order_for_member(self, reseller_id: int, product: Product, qty: int, key: str, *, buyer: Buyer,
                               chat_id: str, language: str, deliver: str, group: str = ""
                               ) -> tuple[Order, bool, int | None]:
        """A group-chat order (core/groups.py): paid from the reseller's wallet, bought by a member (`buyer`),
        whose codes go out through the outbox on channel `deliver`. The same `key` is the same order, never a
        second debit. Returns (order, made now, the wallet balance after when made now). The product's rules and
        risk are checked for the member like any chat order of theirs (resellers.group_exempt aside)."""
        req = OrderRequest(reseller_id, product.id, qty, key, request_fingerprint(product.sku, qty),
                           new_order_id(self.clock.now()), buyer=buyer, chat_id=chat_id, language=language,
                           deliver=deliver, group=group)
        res = await self.committer.submit(req)
        if isinstance(res, Existing):
            async with self.uow() as uow:
                order = await uow.orders.get(res.order_id)
            assert order is not None
            return order, False, None
        return res.order, True, res.balance

    async def check_member_order(self, reseller: Reseller, product: Product, qty: int, *, buyer: Buyer,
                                 group: str) -> None:
        """Raises the refusal (RULE_REFUSED, RISK_REFUSED, ...) a group order would get from the rules-and-risk
        check now, so a quote is not shown for an order that cannot be made. Locks and writes nothing: the
        order's own batch decides again when the member confirms."""
        probe = intent(OrderRequest(reseller.id, product.id, qty, "", "", "", buyer=buyer, group=group),
                       reseller, product, self.policy)
        async with self.uow() as uow:
            [verdict] = await self.guard.screen(uow, [probe], {product.id: product}, self.clock.now(), preview=True)
        if isinstance(verdict, StoreError):
            raise verdict

    async def get_order(self, reseller: Reseller, order_id: str, *, early: bool = False) -> B2BOrder:
        """A reseller's order with its codes (each read is audited as a reveal). Codes of a product delivered on
        its effective date (rule deliver_on_effective) are refused until then (NOT_YET_DUE, as "show codes" in
        the chat); `early`: the order without them instead (a repeated POST answers as the first did)."""
        async with self.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None or order.buyer != reseller.buyer:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            product = await uow.products.get(order.product_id)
            assert product is not None  # products are never deleted: orders refer to them
            due = self.deliveries.due(order, product)
            if due is not None:
                if not early:
                    raise StoreError(ErrorCode.NOT_YET_DUE, date=due.strftime("%Y-%m-%d %H:%M UTC"))
                return B2BOrder(order, product, [], False, due=due)
            stored = (await load_stored(uow, [order]))[order.id] if order.status is OrderStatus.DELIVERED else []
            await uow.audit.add_many([AuditEntry("reveal", reseller.buyer.key, CHANNEL, self.clock.now(), order.id,
                                                 order.product_id, detail={"codes": len(stored), "via": "api"})])
            await uow.commit()
        product = await self.listing.product(order.product_id)
        assert product is not None
        return B2BOrder(order, product, decrypt_codes(self.vault, stored), False)


class ApiNotifier:
    """The `api` channel's notifier: resellers' systems are not written to; they read their orders over the
    signed API (`GET /api/v1/orders/{id}`). So a replacement code the outbox "sends" for a B2B order (a recalled
    code reissued, core/aftersales/) is simply there on the next read, and no row waits forever for a channel
    that does not exist."""

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        return None

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        return None
