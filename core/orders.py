"""Orders: reserve (hold stock), pay once, deliver in the same transaction, expire, refund.

The batch handlers here run inside the group committer: each gets many requests and does set-based
work, so the number of statements per transaction does not grow with the number of waiting buyers.
See docs/architecture.md ("The life of an order", "One way to pay").
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core import stock_alerts
from core.batching import QuietRequest
from core.clock import Clock
from core.errors import ConflictError, ErrorCode, StoreError
from core.models import (
    AuditEntry,
    Buyer,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    new_order_id,
)
from core.outbox import LEASE as HANDOFF_LEASE
from core.outbox import Handoff, load_stored
from core.payments import (
    BANNED_PAYER,
    BanGate,
    Outcome,
    PaymentNotice,
    PaymentResult,
    banned_audit,
    banned_payers,
)
from core.ports import UnitOfWork
from core.promotions import CANCELLED, LAPSED, Priced, Promotion, claim_all, paid_all, price_all, release_all
from core.risk import rules_of

SUPPLIED = frozenset({Kind.SUPPLIER, Kind.TOPUP})  # bought from a supplier after payment, nothing held
POOLED = frozenset({Kind.CODE, Kind.BUNDLE})  # codes taken from pools when held (a bundle: from each part's pool)


def pool_needs(p: Product, qty: int) -> list[tuple[int, int, str]]:
    """(pool product id, codes, sku) an order of `qty` of `p` takes: its own pool, or each part's of a bundle."""
    if p.kind is Kind.BUNDLE:
        return [(part.product_id, part.qty * qty, part.sku) for part in p.parts]
    return [(p.id, qty, p.sku)] if p.kind is Kind.CODE else []


def take_codes(needs: Sequence[tuple[int, int, str]], picked: dict[int, list[int]]
               ) -> tuple[list[int], tuple[str, int] | None]:
    """Take every need from the picked pools, or nothing: (code ids, None), or ([], (the short pool's sku, what it
    has left)) when one falls short (a bundle is held whole or not at all)."""
    for pid, n, sku in needs:
        if len(picked.get(pid, ())) < n:
            return [], (sku, len(picked.get(pid, ())))
    taken: list[int] = []
    for pid, n, _ in needs:
        taken.extend(picked[pid][:n])
        picked[pid] = picked[pid][n:]
    return taken, None


@dataclass(slots=True)
class ReserveRequest(QuietRequest[Order]):  # a hold adds no outbox row
    buyer: Buyer
    product_id: int
    qty: int
    language: str
    chat_id: str = ""
    # Fixed when the request is made: if a commit's outcome is unknown (the connection dropped) and the
    # batch runs again, the order that did land is found and returned instead of a second one being made.
    order_id: str = ""
    account: str = ""  # topup: the account to recharge (checked against the product's pattern by the shop)
    # What the buyer asked of the promotions (core/promotions.py), e.g. {"coupon": "SPRING-7Q2M"}: words only, never
    # a price; each promotion decides what they are worth.
    promo: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OrderPolicy:
    hold_minutes: int = 15
    max_open_holds: int = 3


class OrderBook:
    """Batch handlers for the order lifecycle (registered with the GroupCommitter)."""

    def __init__(self, clock: Clock, policy: OrderPolicy) -> None:
        self.clock = clock
        self.policy = policy
        self.bans = BanGate()  # shared with the payment desk and the risk desk (Shop)
        # Set by the shop while its dispatcher runs: receives a payment batch's deliveries (sent after commit).
        self.delivered_hook: Callable[[list[Handoff]], None] | None = None
        # Called inside each payment batch with the orders it paid (commissions, core/resellers/commissions.py).
        self.paid_hooks: list[Callable[[UnitOfWork, list[Order]], Awaitable[None]]] = []
        # What decides a price other than the listed one, in the order they apply (core/promotions.py).
        self.promotions: list[Promotion] = []

    def on_paid(self, hook: Callable[[UnitOfWork, list[Order]], Awaitable[None]]) -> None:
        """Run `hook` inside each payment batch's transaction with the orders it paid (registered by the
        composition root, app/bootstrap.py)."""
        self.paid_hooks.append(hook)

    # -- reserve -----------------------------------------------------------------------------
    async def reserve_batch(self, uow: UnitOfWork, reqs: Sequence[ReserveRequest]) -> list[Order | Exception | None]:
        """Hold stock for each request; all of an order's codes or none."""
        now = self.clock.now()
        products = await uow.products.get_many(sorted({r.product_id for r in reqs}))
        holds = await uow.orders.open_holds(list({r.buyer for r in reqs}), now)
        # An order that may have landed already comes back alone: after a failed batch (a commit whose outcome is
        # unknown) the group committer retries its items one by one, so only a batch of one needs looking for it.
        landed = await uow.orders.get_many([r.order_id for r in reqs if r.order_id]) if len(reqs) == 1 else {}
        results: list[Order | Exception | None] = [None] * len(reqs)
        cap = self.policy.max_open_holds
        accepted: list[tuple[int, ReserveRequest, Product]] = []
        for i, r in enumerate(reqs):
            if r.order_id in landed:
                results[i] = landed[r.order_id]
                continue
            p = products.get(r.product_id)
            err = self._check(r, p)
            if err is None and holds.get(r.buyer.key, 0) >= cap:
                err = StoreError(ErrorCode.HOLD_LIMIT, limit=cap)
            if err is not None:
                results[i] = err
            elif p is not None:  # always, once _check passed (it refuses a product that is not there)
                accepted.append((i, r, p))
        priced: dict[int, Priced] = {}
        if self.promotions and accepted:  # the price: decided here, in this transaction, before anything is held
            items = [Priced(r, p, self._new_order(r, p, now)) for _, r, p in accepted]
            await price_all(self.promotions, uow, items, now)
            kept = []
            for (i, r, p), item in zip(accepted, items, strict=True):
                if item.refusal is not None:
                    results[i] = item.refusal
                else:
                    priced[i] = item
                    kept.append((i, r, p))
            accepted = kept

        # Pool codes: pick once per product, hand out in arrival order, all-or-nothing per order. Ids are only
        # read here; a request refused below (hold cap reached within this batch) simply leaves its share.
        # A bundle takes codes of each of its parts' pools, all of them or none.
        wanted: dict[int, int] = {}
        for _, r, p in accepted:
            for pid, n, _sku in pool_needs(p, r.qty):
                wanted[pid] = wanted.get(pid, 0) + n
        picked = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        reusable = await uow.codes.reusable_for(sorted({p.id for _, _, p in accepted if p.kind is Kind.REUSABLE}))
        assignments: list[tuple[int, str]] = []
        orders: list[Order] = []
        for i, r, p in accepted:
            if holds.get(r.buyer.key, 0) >= cap:  # holds are charged only for orders actually made
                results[i] = StoreError(ErrorCode.HOLD_LIMIT, limit=cap)
                continue
            order = priced[i].order if i in priced else self._new_order(r, p, now)
            if p.kind in POOLED:
                take, short = take_codes(pool_needs(p, r.qty), picked)
                if short is not None:  # a bundle names its short part; available: how many of the product are left
                    left = min(len(picked.get(pid, ())) // (n // r.qty) for pid, n, _ in pool_needs(p, r.qty))
                    results[i] = StoreError(ErrorCode.SOLD_OUT, sku=short[0], available=left)
                    continue
                assignments.extend((cid, order.id) for cid in take)
            elif p.kind is Kind.REUSABLE:
                if p.id not in reusable:
                    results[i] = StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=0)
                    continue
                order.reusable_code_id = reusable[p.id]
            holds[r.buyer.key] = holds.get(r.buyer.key, 0) + 1
            orders.append(order)
            results[i] = order
        if orders:
            await uow.orders.insert_many(orders)
        if assignments and await uow.codes.hold(assignments) != len(assignments):
            raise ConflictError("codes were claimed by another process")
        if priced:
            made = {o.id for o in orders}
            await claim_all(self.promotions, uow, [x for x in priced.values() if x.order.id in made], now)
        return results

    def _check(self, r: ReserveRequest, p: Product | None) -> StoreError | None:
        if p is None:
            return StoreError(ErrorCode.NOT_FOUND, product_id=r.product_id)
        if not p.active or (p.kind is Kind.BUNDLE and not all(part.product_id for part in p.parts)):
            return StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
        if p.kind is Kind.TOPUP and not r.account:
            return StoreError(ErrorCode.BAD_ACCOUNT, sku=p.sku)
        if not p.min_qty <= r.qty <= p.max_qty:
            return StoreError(ErrorCode.BAD_QUANTITY, min=p.min_qty, max=p.max_qty)
        return None

    def _new_order(self, r: ReserveRequest, p: Product, now: datetime) -> Order:
        hold = p.hold_minutes or self.policy.hold_minutes
        return Order(
            id=r.order_id or new_order_id(now), buyer=r.buyer, chat_id=r.chat_id or r.buyer.external_id,
            product_id=p.id, qty=r.qty, unit_price=p.price, amount=p.price * r.qty,
            currency=p.currency, stars=p.stars, status=OrderStatus.HELD, language=r.language,
            created_at=now, expires_at=now + timedelta(minutes=hold),
            account=r.account if p.kind is Kind.TOPUP else "",
        )

    # -- pay ---------------------------------------------------------------------------------
    async def pay_batch(self, uow: UnitOfWork, notices: Sequence[PaymentNotice]) -> list[PaymentResult | None]:
        """Record each payment once; deliver in this transaction, or queue a refund."""
        now = self.clock.now()
        existing = await uow.payments.existing([(n.provider, n.txn_id) for n in notices])
        orders = await uow.orders.get_many(sorted({n.order_id for n in notices if n.order_id}), for_update=True)
        products = await uow.products.get_many(sorted({o.product_id for o in orders.values()}))
        fresh = [n for n in notices if (n.provider, n.txn_id) not in existing]
        banned = await banned_payers(uow, [n.payer for n in fresh], self.bans) if fresh else {}
        results: list[PaymentResult | None] = [None] * len(notices)
        seen: set[tuple[str, str]] = set()
        new_payments: list[tuple[int, Payment, str]] = []  # (index, payment, refund reason or "")
        deliver: list[Order] = []
        supply: list[Order] = []  # supplier and topup orders: paid, then bought upstream (core/supply/desk.py)
        reclaim: dict[int, list[Order]] = {}
        for i, n in enumerate(notices):
            key = (n.provider, n.txn_id)
            order = orders.get(n.order_id or "")
            if key in existing or key in seen:
                prev = existing.get(key)
                results[i] = PaymentResult(Outcome.DUPLICATE, order, payment_id=prev.id if prev else None)
                continue
            seen.add(key)
            reason = BANNED_PAYER if n.payer is not None and n.payer.key in banned else self._refund_reason(n, order)
            pay = Payment(None, order.id if order else None, n.provider, n.txn_id, n.amount, n.currency,
                          n.payer.key if n.payer else "", "refund_pending" if reason else "captured", now)
            new_payments.append((i, pay, reason))
            if reason or order is None:
                continue
            if products[order.product_id].kind in SUPPLIED:
                if products[order.product_id].active:  # nothing was held: nothing can have lapsed
                    supply.append(order)
                else:
                    reclaim.setdefault(order.product_id, []).append(order)  # refunded below (stock_gone)
            elif order.status is OrderStatus.HELD:
                deliver.append(order)
            else:  # the hold lapsed and the stock went back: try to take it again
                reclaim.setdefault(order.product_id, []).append(order)
            order.status = OrderStatus.DELIVERED  # claimed for this batch; a second notice refunds

        # Orders whose hold lapsed: pick fresh stock, or refund.
        lapsed_fail: set[str] = set()
        assignments: list[tuple[int, str]] = []
        reusable_pairs: list[tuple[str, int]] = []
        for pid, olist in sorted(reclaim.items()):
            p = products[pid]
            if not p.active:
                lapsed_fail.update(o.id for o in olist)
                continue
            if p.kind is Kind.REUSABLE:
                live = (await uow.codes.reusable_for([pid])).get(pid)
                for o in olist:
                    if live is None:
                        lapsed_fail.add(o.id)
                    else:
                        reusable_pairs.append((o.id, live))
                        o.reusable_code_id = live
                continue
            needs: dict[int, int] = {}
            for o in olist:
                for part_id, count, _sku in pool_needs(p, o.qty):
                    needs[part_id] = needs.get(part_id, 0) + count
            pools = {part_id: await uow.codes.pick_available(part_id, count, now)
                     for part_id, count in sorted(needs.items())}
            for o in olist:
                take, short = take_codes(pool_needs(p, o.qty), pools)
                if short is not None:
                    lapsed_fail.add(o.id)
                    continue
                assignments.extend((cid, o.id) for cid in take)
        if assignments and await uow.codes.hold(assignments) != len(assignments):
            raise ConflictError("codes were claimed by another process")
        if reusable_pairs:
            await uow.orders.set_reusable(reusable_pairs)

        for k, (i, pay, reason) in enumerate(new_payments):
            if not reason and pay.order_id in lapsed_fail:
                new_payments[k] = (i, pay, "stock_gone")
                pay.status = "refund_pending"
        stored = await uow.payments.insert_many([p for _, p, _ in new_payments])

        delivered_ids = [o.id for o in deliver] + [
            o.id for olist in reclaim.values() for o in olist if o.id not in lapsed_fail
        ]
        paid = [orders[oid] for oid in delivered_ids] + list(supply)
        # Promotions decide first: a paid order whose delivery waits (a group-buy not full yet) keeps its codes
        # held; orders that waited are delivered with this payment (the one that filled the group).
        decided = await paid_all(self.promotions, uow, paid, now)
        waiting = decided.wait & set(delivered_ids)
        released = [o for o in decided.release if o.id not in orders]
        for o in released:
            orders[o.id] = o
        missing = sorted({o.product_id for o in released} - set(products))
        if missing:
            products.update(await uow.products.get_many(missing))
        delivered_ids = [oid for oid in delivered_ids if oid not in waiting] + [o.id for o in released]
        pool_orders = [oid for oid in delivered_ids if products[orders[oid].product_id].kind in POOLED]
        expected = sum(orders[oid].qty * products[orders[oid].product_id].codes_per_unit() for oid in pool_orders)
        if pool_orders and await uow.codes.sell_held(pool_orders) != expected:
            raise ConflictError("held codes changed under a payment")
        released_ids = {o.id for o in released}
        paid_here = [oid for oid in delivered_ids if oid not in released_ids]
        if paid_here:
            await uow.orders.set_status(paid_here, OrderStatus.DELIVERED, now, paid=True, delivered=True)
        if released_ids:
            await uow.orders.set_status(sorted(released_ids), OrderStatus.DELIVERED, now, delivered=True)
        if waiting:
            await uow.orders.set_status(sorted(waiting), OrderStatus.PENDING, now, paid=True)
        supply_ids = {o.id for o in supply}
        if supply_ids:
            await uow.orders.set_status(sorted(supply_ids), OrderStatus.PENDING, now, paid=True)
        refunding_orders = sorted({p.order_id for _, p, r in new_payments if r == "stock_gone" and p.order_id})
        if refunding_orders:
            await uow.orders.set_status(refunding_orders, OrderStatus.REFUNDING, now, paid=True)

        for paid_hook in self.paid_hooks:
            await paid_hook(uow, paid)
        await uow.orders.settle_currency(self._settle_currency(paid, new_payments, notices))

        refused: list[AuditEntry] = []
        for (i, _, reason), pay in zip(new_payments, stored, strict=True):
            banned_payer = notices[i].payer
            if reason == BANNED_PAYER and banned_payer is not None:
                refused.append(banned_audit(banned_payer, banned[banned_payer.key], pay.provider, pay.provider_txn_id,
                                            pay.id, now, pay.order_id))
        if refused:
            await uow.audit.add_many(refused)

        outbox: list[OutboxItem] = []
        scheduled: list[tuple[datetime, OutboxItem]] = []  # deliveries due later (rules: deliver_on_effective)
        for (i, _, reason), pay in zip(new_payments, stored, strict=True):
            order = orders.get(pay.order_id or "")
            if reason:
                if order is not None and reason == "stock_gone":
                    order.status = OrderStatus.REFUNDING
                payer = notices[i].payer
                if order is not None and reason not in ("wrong_payer", BANNED_PAYER):
                    recipient, channel, language = order.chat_id, order.buyer.channel, order.language
                else:  # tell the one who paid; a stranger's payment is none of the order's buyer's business
                    recipient, channel, language = (payer.external_id, payer.channel, "") if payer else ("", "", "")
                outbox.append(OutboxItem(None, "refund", channel, recipient, pay.order_id,
                                         {"payment_id": pay.id, "reason": reason, "language": language}))
                results[i] = PaymentResult(Outcome.REFUNDING, order, reason, pay.id)
            elif order is not None and order.id in supply_ids:
                order.status, order.paid_at = OrderStatus.PENDING, now
                kind = "topup" if products[order.product_id].kind is Kind.TOPUP else "buy"
                outbox.append(OutboxItem(None, kind, order.buyer.channel, order.chat_id, order.id,
                                         {"payment_id": pay.id, "language": order.language}))
                results[i] = PaymentResult(Outcome.PENDING, order, payment_id=pay.id)
            elif order is not None and order.id in waiting:  # paid; delivered when its promotion says (a group)
                order.status, order.paid_at = OrderStatus.PENDING, now
                results[i] = PaymentResult(Outcome.PENDING, order, payment_id=pay.id)
            else:
                assert order is not None
                order.paid_at = order.delivered_at = now
                due = rules_of(products[order.product_id].rules).delivery_due(now)
                if due is not None:  # goods that start later: sent on that date; told now that they will be
                    scheduled.append((due, OutboxItem(None, "deliver", order.buyer.channel, order.chat_id, order.id,
                                                      {})))
                    outbox.append(OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                        "key": "rules.scheduled", "language": order.language,
                        "params": {"order": order.id, "date": due.strftime("%Y-%m-%d %H:%M UTC")}}))
                else:
                    outbox.append(OutboxItem(None, "deliver", order.buyer.channel, order.chat_id, order.id, {}))
                results[i] = PaymentResult(Outcome.DELIVERED, order, payment_id=pay.id)
        for o in released:  # orders that waited for a promotion (a group now full): delivered with this payment
            o.status, o.delivered_at = OrderStatus.DELIVERED, now
            outbox.append(OutboxItem(None, "deliver", o.buyer.channel, o.chat_id, o.id, {}))
        hook = self.delivered_hook
        deliveries = [i for i in outbox if i.kind == "deliver"] if hook is not None else []
        if hook is not None and deliveries:
            # Written leased: the running dispatcher gets them handed over after commit, so the polling loop
            # leaves them alone unless that send fails (then the lease runs out and the loop retries).
            await uow.outbox.add_many(deliveries, lease_until=now + HANDOFF_LEASE)
            delivered = [orders[i.order_id or ""] for i in deliveries]
            ciphertexts = await load_stored(uow, delivered)
            hook([Handoff(i, o, products[o.product_id], ciphertexts[o.id])
                  for i, o in zip(deliveries, delivered, strict=True) if i.id is not None])
        if len(deliveries) < len(outbox):
            await uow.outbox.add_many([i for i in outbox if not (deliveries and i.kind == "deliver")])
        for due, item in scheduled:
            await uow.outbox.add_many([item], due_at=due)
        return results

    @staticmethod
    def _settle_currency(paid: list[Order], new_payments: Sequence[tuple[int, Payment, str]],
                         notices: Sequence[PaymentNotice]) -> list[Order]:
        """An order paid in another currency than its own (Telegram Stars for a store priced in CNY) is from now
        on the order it was paid as: XTR, its Stars price and amount; so the buyer's orders, the merchant's and the
        reports say what was paid. Hooks of the payment (commissions) ran before, on the store's price."""
        currency = {pay.order_id: notices[i].currency for i, pay, reason in new_payments if not reason}
        settled = []
        for order in paid:
            cur = currency.get(order.id)
            if cur is not None and cur != order.currency:
                due = order.price_in(cur)
                assert due is not None  # checked by _refund_reason
                order.currency, order.amount, order.unit_price = cur, due, due // order.qty
                settled.append(order)
        return settled

    @staticmethod
    def _refund_reason(n: PaymentNotice, order: Order | None) -> str:
        if order is None:
            return "unknown_order"
        if n.payer is not None and n.payer != order.buyer and not n.any_payer:
            return "wrong_payer"
        due = order.price_in(n.currency)
        if due is None or due != n.amount:
            return "amount_mismatch"
        if order.status in (OrderStatus.DELIVERED, OrderStatus.REFUNDING, OrderStatus.REFUNDED,
                            OrderStatus.PENDING):
            return "paid_twice"
        return ""  # held: deliver; expired or cancelled: deliver if stock can be taken again

    # -- expire ------------------------------------------------------------------------------
    async def expire_holds(self, uow: UnitOfWork, limit: int = 500) -> list[Order]:
        """Release the stock of holds whose time ran out; returns the lapsed orders."""
        now = self.clock.now()
        lapsed = await uow.orders.expired_holds(now, limit)
        if not lapsed:
            return []
        ids = [o.id for o in lapsed]
        # Orders a payment holds locked are skipped, not waited for: the payment decides them, and waiting
        # could deadlock against a payment batch locking in another order.
        locked = await uow.orders.get_many(ids, for_update=True, skip_locked=True)
        ids = [oid for oid, o in locked.items() if o.status is OrderStatus.HELD]
        if ids:
            await uow.codes.release(ids)
            await uow.orders.set_status(ids, OrderStatus.EXPIRED, now)
            await stock_alerts.returned(uow, [(locked[i].product_id, locked[i].qty) for i in ids], now)
            await release_all(self.promotions, uow, [locked[i] for i in ids], now, LAPSED)
        return [locked[i] for i in ids]

    async def cancel(self, uow: UnitOfWork, order_id: str, buyer: Buyer) -> Order:
        """The buyer gives up an unpaid order: the stock goes back at once."""
        order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
        if order is None:
            raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
        if order.buyer != buyer:
            raise StoreError(ErrorCode.NOT_YOUR_ORDER)
        if order.status is not OrderStatus.HELD:
            raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
        await uow.codes.release([order.id])
        await uow.orders.set_status([order.id], OrderStatus.CANCELLED, self.clock.now())
        order.status = OrderStatus.CANCELLED
        await stock_alerts.returned(uow, [(order.product_id, order.qty)], self.clock.now())
        await release_all(self.promotions, uow, [order], self.clock.now(), CANCELLED)
        return order
