"""The wallet order batch: every B2B order (API and group chat) is one group-commit request (`OrderRequest`),
made, debited from the wallet, paid (provider `wallet`) and sold in the batch's transaction, never held. In arrival
order: the Idempotency-Key (the same key is the same order), the account, the product and the quantity, then the
product's rules and risk (core/risk/guard.py `Guard.screen`, the same function as a chat order's), then the stock under
the product's partial policy, then the wallet; so a batch of racing orders never spends more than the balance plus
the credit limit, and a refused order holds and debits nothing. Orders waiting for stock are served first."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from core.batching import Request
from core.errors import ConflictError, ErrorCode, StoreError
from core.models import AuditEntry, Buyer, Kind, Order, OrderStatus, OutboxItem, Payment, Product, StoredCode
from core.outbox import load_stored
from core.ports import UnitOfWork
from core.resellers.delivery import Deliveries
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import (
    CHANNEL,
    MAX_QTY,
    PROVIDER,
    SUPPLIED,
    Reseller,
    ResellerPolicy,
    Waiting,
    WalletEntry,
    partial_policy,
)
from core.resellers.waiting import WaitingQueue
from core.risk import Assessment, Intent

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock
    from core.risk import Guard
    from core.supply import SupplyDesk


@dataclass(slots=True)
class Made:
    """An order the batch made: with its codes' ciphertext, when delivered now."""

    order: Order
    product: Product
    stored: list[StoredCode] = field(repr=False)
    balance: int
    due: datetime | None = None


@dataclass(slots=True)
class Existing:
    """The Idempotency-Key had made this order already (a retry)."""

    order_id: str


@dataclass(slots=True)
class OrderRequest(Request[Made | Existing]):
    reseller_id: int
    product_id: int
    qty: int
    key: str  # the Idempotency-Key
    fingerprint: str  # what was asked (sku, qty): the same key with another request is refused
    order_id: str
    account: str = ""  # topup products: the account the supplier recharges
    # A group-chat order (core/groups.py): the member is the order's buyer (their "My orders"), paid from the
    # reseller's wallet, and the codes go out through the outbox on channel `deliver` to `chat_id`.
    buyer: Buyer | None = None
    chat_id: str = ""
    language: str = "en"
    deliver: str | None = None
    group: str = ""  # the group chat it was ordered in (the risk check's per-chat velocity)


def intent(r: OrderRequest, reseller: Reseller, p: Product, policy: ResellerPolicy) -> Intent:
    """A B2B order as the rules-and-risk check sees it: paid at once by a reseller (nothing held), worth what
    the wallet pays; a group order is its member's (and exempt from resellers.group_exempt), an API order
    the reseller's (resellers.api_exempt)."""
    return Intent(r.buyer or reseller.buyer, p.id, r.qty, reseller.price_for(p) * r.qty, group=r.group,
                  holds=False, reseller=True, exempt=policy.group_exempt if r.buyer else policy.api_exempt)


class OrderBatch:
    def __init__(self, clock: Clock, committer: GroupCommitter, guard: Guard, supply: SupplyDesk,
                 policy: ResellerPolicy, waiting: WaitingQueue, deliveries: Deliveries, wake: Callable[[], None]
                 ) -> None:
        self.clock = clock
        self.committer = committer
        self.guard = guard
        self.supply = supply
        self.policy = policy
        self.waiting = waiting
        self.deliveries = deliveries
        self.wake = wake  # the outbox dispatcher: something new to send
        committer.register(OrderRequest, self.run)

    async def run(self, uow: UnitOfWork, reqs: Sequence[OrderRequest]) -> list[Made | Existing | Exception | None]:
        """Make, pay (wallet) and sell each B2B order; a refused one holds and debits nothing. Orders waiting for
        stock (policy `wait`) are served first, oldest first, so a newer order never takes their codes."""
        now = self.clock.now()
        results: list[Made | Existing | Exception | None] = [None] * len(reqs)
        landed = await uow.resellers.idempotent(sorted({(r.reseller_id, r.key) for r in reqs}))
        products = await uow.products.get_many(sorted({r.product_id for r in reqs}))
        waiting = await uow.resellers.waiting(sorted(products))
        resellers = await uow.resellers.lock(sorted({r.reseller_id for r in reqs} | {w.reseller_id for w in waiting}))
        first: dict[tuple[int, str], int] = {}
        todo: list[int] = []
        for i, r in enumerate(reqs):
            k = (r.reseller_id, r.key)
            if k in landed:
                oid, fp = landed[k]
                results[i] = Existing(oid) if fp == r.fingerprint else ResellerError(
                    ResellerCode.IDEMPOTENCY_KEY_REUSED)
            elif k in first:
                continue  # settled below, like the first request with this key
            else:
                first[k] = i
                todo.append(i)
        supplied = {pid for pid, p in products.items() if p.kind in SUPPLIED and self.supply.supplier_for(p)}
        # The account, the product and the quantity; then the product's rules and risk, decided by the same
        # function as for every chat order (core/risk/guard.py Guard.screen), with the member as the buyer of a group
        # order and the reseller (api:<id>) of an API order; then the stock and the wallet.
        checked: list[int] = []
        for i in todo:
            err = refusal(reqs[i], resellers.get(reqs[i].reseller_id), products.get(reqs[i].product_id), supplied)
            if err is not None:
                results[i] = err
            else:
                checked.append(i)
        verdicts = await self.guard.screen(uow, [intent(reqs[i], resellers[reqs[i].reseller_id],
                                                        products[reqs[i].product_id], self.policy) for i in checked],
                                           products, now)
        assessed: dict[int, Assessment] = {}
        for i, verdict in zip(checked, verdicts, strict=True):
            if isinstance(verdict, Assessment):
                assessed[i] = verdict
            else:
                results[i] = verdict
        todo = [i for i in checked if i in assessed]
        wanted: dict[int, int] = {}
        for pid, qty in [(w.product_id, w.qty) for w in waiting] + [(reqs[i].product_id, reqs[i].qty) for i in todo]:
            p = products.get(pid)
            if p is not None and p.kind is Kind.CODE and 1 <= qty <= MAX_QTY:
                wanted[p.id] = wanted.get(p.id, 0) + qty
        pools = {pid: await uow.codes.pick_available(pid, n, now) for pid, n in sorted(wanted.items())}
        await self.waiting.serve(uow, waiting, pools, now)
        live = await uow.codes.reusable_for(sorted({p.id for p in products.values() if p.kind is Kind.REUSABLE}))
        balance = {rid: r.balance for rid, r in resellers.items()}
        made: list[tuple[int, Order, Product]] = []
        assignments: list[tuple[int, str]] = []
        entries: list[WalletEntry] = []
        waits: list[Waiting] = []
        supply: list[OutboxItem] = []
        for i in todo:
            r = reqs[i]
            reseller, p = resellers[r.reseller_id], products[r.product_id]
            policy = partial_policy(p)
            err = short(r, p, pools, live, policy)
            unit = reseller.price_for(p)
            amount = unit * r.qty
            if err is None and balance[reseller.id] + reseller.credit_limit < amount:
                err = ResellerError(ResellerCode.INSUFFICIENT_FUNDS, needed=amount,
                                    available=balance[reseller.id] + reseller.credit_limit)
            if err is not None:
                results[i] = err
                continue
            pending = p.kind in SUPPLIED  # bought upstream after this commit (outbox buy / topup)
            is_short = p.kind is Kind.CODE and len(pools[p.id]) < r.qty  # only with policy partial or wait
            waits_for_stock = is_short and policy == "wait"
            later = pending or waits_for_stock
            order = Order(r.order_id, r.buyer or reseller.buyer, r.chat_id, p.id, r.qty, unit, amount, p.currency,
                          None, OrderStatus.PENDING if later else OrderStatus.DELIVERED, r.language, now, now,
                          paid_at=now, delivered_at=None if later else now, account=r.account)
            balance[reseller.id] -= amount
            entries.append(WalletEntry(None, reseller.id, "debit", -amount, balance[reseller.id],
                                       f"order:{order.id}", now, order.id, actor=order.buyer.key))
            if pending:  # a group order's codes then go to the member like its pool codes would (r.deliver)
                supply.append(OutboxItem(None, "topup" if p.kind is Kind.TOPUP else "buy", r.deliver or CHANNEL,
                                         r.chat_id, order.id, {"language": r.language}))
            elif waits_for_stock:
                pools[p.id] = []  # first come first served: later orders of this product queue behind it
                waits.append(Waiting(order.id, reseller.id, p.id, r.qty, now, now + self.policy.wait,
                                     r.deliver or ""))
            elif p.kind is Kind.CODE:
                if is_short:  # policy partial: what there is, the rest credited back at once
                    got = len(pools[p.id])
                    back = unit * (r.qty - got)
                    order.qty, order.amount, order.note = got, unit * got, f"partial {got}/{r.qty}"
                    balance[reseller.id] += back
                    entries.append(WalletEntry(None, reseller.id, "refund", back, balance[reseller.id],
                                               f"partial:{order.id}", now, order.id, actor="system",
                                               note=f"{r.qty - got} of {r.qty} not in stock"))
                take, pools[p.id] = pools[p.id][: order.qty], pools[p.id][order.qty :]
                assignments.extend((cid, order.id) for cid in take)
            else:
                order.reusable_code_id = live[p.id]
            made.append((i, order, p))
        if made:
            orders = [o for _, o, _ in made]
            await uow.orders.insert_many(orders)
            if assignments:
                if await uow.codes.hold(assignments) != len(assignments):
                    raise ConflictError("codes were claimed by another process")
                pool_ids = [o.id for o in orders if o.reusable_code_id is None and o.status is OrderStatus.DELIVERED]
                if await uow.codes.sell_held(pool_ids) != len(assignments):
                    raise ConflictError("held codes changed under a B2B order")
            payer = {reqs[i].order_id: Buyer(CHANNEL, str(reqs[i].reseller_id)).key for i, _, _ in made}
            # The payer is always the reseller (api:<id>): a refund credits the wallet back, whoever the buyer.
            await uow.payments.insert_many([
                Payment(None, o.id, PROVIDER, f"W{o.id}", o.amount, o.currency, payer[o.id], "captured", now)
                for o in orders])
            for rid in sorted({reqs[i].reseller_id for i, _, _ in made}):
                if not await uow.resellers.set_balance(rid, resellers[rid].balance, balance[rid]):
                    raise ConflictError("wallet balance changed under a B2B order")
            await uow.resellers.add_entries(entries)
            await uow.resellers.add_waiting(waits)
            await uow.resellers.add_idempotent([(reqs[i].reseller_id, reqs[i].key, o.id, reqs[i].fingerprint)
                                                for i, o, _ in made], now)
            await self.guard.settle(uow, [(assessed[i], o) for i, o, _ in made], now)  # scores, as for chat
            due = {o.id: d for _, o, p in made if (d := self.deliveries.due(o, p)) is not None}
            delivered = [AuditEntry("deliver", o.buyer.key, CHANNEL, now, o.id, p.id,
                                    detail={"codes": o.qty, "via": reqs[i].deliver or "api"})
                         for i, o, p in made if o.status is OrderStatus.DELIVERED and o.id not in due]
            if delivered:
                await uow.audit.add_many(delivered)
            sends = [OutboxItem(None, "deliver", via, reqs[i].chat_id, o.id, {"language": o.language})
                     for i, o, _ in made if (via := reqs[i].deliver) and o.status is OrderStatus.DELIVERED]
            # group-chat orders: the codes go to the member through the outbox, after commit; goods that start
            # later on their date (deliver_on_effective), the member told now, as a chat buyer is at payment
            await self.deliveries.send(uow, sends, {o.id: o for o in orders}, due)
            if supply:
                await uow.outbox.add_many(supply)
            if sends or supply:
                self.committer.after_this_commit(self.wake)
            stored = await load_stored(uow, [o for o in orders if o.status is OrderStatus.DELIVERED
                                             and o.id not in due])
            for i, o, p in made:
                results[i] = Made(o, p, stored.get(o.id, []), balance[reqs[i].reseller_id], due.get(o.id))
        for i, r in enumerate(reqs):  # a key repeated within this batch: the first request's outcome
            k = (r.reseller_id, r.key)
            if results[i] is None:
                j = first[k]
                res = results[j]
                if reqs[j].fingerprint != r.fingerprint:
                    results[i] = ResellerError(ResellerCode.IDEMPOTENCY_KEY_REUSED)
                elif isinstance(res, Made):
                    results[i] = Existing(res.order.id)
                else:
                    results[i] = res
        return results


def refusal(r: OrderRequest, reseller: Reseller | None, p: Product | None, supplied: set[int]) -> Exception | None:
    """What refuses an order before the rules: the account, the product, the quantity."""
    if reseller is None:
        return ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=r.reseller_id)
    if reseller.status != "active":
        return ResellerError(ResellerCode.ACCOUNT_SUSPENDED)
    if p is None:
        return StoreError(ErrorCode.NOT_FOUND, product_id=r.product_id)
    if not p.active:
        return StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
    if p.kind in SUPPLIED and p.id not in supplied:
        return StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
    if p.kind is Kind.TOPUP and not r.account:
        return StoreError(ErrorCode.BAD_ACCOUNT, sku=p.sku)
    top = MAX_QTY if p.kind in (Kind.CODE, Kind.SUPPLIER) else 1
    if not 1 <= r.qty <= top:
        return StoreError(ErrorCode.BAD_QUANTITY, min=1, max=top)
    return None


def short(r: OrderRequest, p: Product, pools: dict[int, list[int]], live: dict[int, int], policy: str
          ) -> Exception | None:
    """SOLD_OUT when the stock cannot serve the order under the product's partial policy."""
    have = len(pools.get(p.id, []))
    if p.kind is Kind.CODE and have < r.qty and (policy == "refuse" or (policy == "partial" and have == 0)):
        return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=have)
    if p.kind is Kind.REUSABLE and p.id not in live:
        return StoreError(ErrorCode.SOLD_OUT, sku=p.sku, available=0)
    return None

