"""The merchant's side of rules and risk: a product's rules, bans, a buyer's risk (/risk), the review queue
(approve or reject an order held for review); and the buyer's side of it: answering a challenge, binding a phone."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core import links, stock_alerts
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, Order, OrderStatus, OutboxItem, Product
from core.risk import scoring
from core.risk.guard import Guard
from core.risk.models import BAN_KINDS, Activity, Ban, OrderRisk, RiskReport
from core.risk.rules import BuyerFacts, normalize_phone, normalize_rules

if TYPE_CHECKING:
    from core.ports import UnitOfWork, UnitOfWorkFactory


class RiskDesk:
    """The merchant's side of rules and risk: bans, a buyer's risk, the review queue; and phone binding."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, guard: Guard,
                 hold_minutes: Callable[[Product | None], int],
                 catalog_changed: Callable[[], None] | None = None, wake: Callable[[], None] | None = None,
                 bans_changed: Callable[[], None] | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.guard = guard
        self.hold_minutes = hold_minutes
        self.catalog_changed = catalog_changed
        self.wake = wake  # the outbox: a decision's notice goes out now, not at the dispatcher's next round
        self.bans_changed = bans_changed  # payments check the blacklist only while it holds anything

    async def set_rules(self, sku: str, rules: Mapping[str, Any], actor: Buyer) -> dict[str, Any]:
        """A merchant replaces a product's sale rules (validated like the config: RulesError names the key);
        returns the rules as stored. Audited. A product from the config gets the config's rules back at the next
        start unless the config is changed too."""
        stored = normalize_rules(rules)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            product = await uow.products.by_sku(sku)
            if product is None:
                raise StoreError(ErrorCode.NOT_FOUND, sku=sku)
            await uow.products.update(product.id, {"rules": stored})
            await uow.audit.add_many([AuditEntry("admin", actor.key, actor.channel, now, product_id=product.id,
                                                 detail={"command": "rules", "sku": sku, "rules": stored})])
            await uow.commit()
        if self.catalog_changed is not None:
            self.catalog_changed()
        return stored

    @staticmethod
    def ban_value(kind: str, value: str) -> str:
        """The stored form of a ban's value: a user as channel:id, a phone normalized (ValueError if not one)."""
        if kind not in BAN_KINDS:
            raise ValueError(f"ban kind must be one of {', '.join(BAN_KINDS)}")
        value = value.strip()
        if kind == "phone":
            phone = normalize_phone(value)
            if phone is None:
                raise ValueError("not an international phone number")
            return phone
        if not value:
            raise ValueError("empty value")
        return value

    async def ban(self, kind: str, value: str, actor: Buyer, reason: str = "") -> Ban:
        """Blacklist a user, phone or payer: their next orders are refused. Audited."""
        now = self.clock.now()
        ban = Ban(kind, self.ban_value(kind, value), reason[:200], actor.key, now)
        async with self.uow(write=True) as uow:
            await uow.risk.ban(ban)
            await uow.audit.add_many([AuditEntry("ban", actor.key, actor.channel, now,
                                                 detail={"kind": kind, "value": ban.value, "reason": ban.reason})])
            await uow.commit()
        if self.bans_changed is not None:
            self.bans_changed()
        return ban

    async def unban(self, kind: str, value: str, actor: Buyer) -> bool:
        """Lift a ban; False when there was none. Audited either way."""
        now = self.clock.now()
        stored = self.ban_value(kind, value)
        async with self.uow(write=True) as uow:
            found = await uow.risk.unban(kind, stored)
            await uow.audit.add_many([AuditEntry("unban", actor.key, actor.channel, now,
                                                 detail={"kind": kind, "value": stored, "found": found})])
            await uow.commit()
        if self.bans_changed is not None:
            self.bans_changed()
        return found

    async def bans(self, limit: int = 50) -> list[Ban]:
        async with self.uow() as uow:
            return await uow.risk.bans(limit)

    async def risk_for(self, buyer: Buyer, limit: int = 10) -> RiskReport:
        """A buyer's risk history and the score a small order would get now (for /risk USER)."""
        now = self.clock.now()
        pol = self.guard.policy
        async with self.uow() as uow:
            facts = (await uow.risk.buyer_facts([buyer])).get(buyer.key, BuyerFacts())
            person = (await links.people(uow.risk, {buyer.key: links.identity_of(buyer, facts)}))[buyer.key]
            ids = person.accounts
            act = await uow.risk.activity(ids, now, now - timedelta(minutes=pol.window_minutes),
                                          now - timedelta(hours=24), now - timedelta(days=pol.history_days))
            entries = [(kind, x.key) for x in ids for kind in ("user", "payer")]
            entries += [("phone", p) for p in sorted({facts.phone, person.phone, *person.phones} - {""})]
            banned = await uow.risk.blacklisted(entries)
            orders = await uow.risk.for_buyer(buyer, limit)
        prof = scoring.profile(pol, buyer, facts, person, act, banned, now)
        standing = scoring.assess(pol, prof, 0, "", 0, {})
        total = Activity(sum(a.recent for a in act.values()), sum(a.abandoned for a in act.values()),
                         sum(a.refunds for a in act.values()))
        return RiskReport(buyer, facts, [x for x in ids if x != buyer], total, sorted({k for k, _ in banned}),
                          standing, orders)

    @staticmethod
    async def under_review(uow: UnitOfWork, order_id: str) -> bool:
        """True while a merchant has not decided the order's review (it must not be paid meanwhile)."""
        row = (await uow.risk.get_many([order_id])).get(order_id)
        return row is not None and row.review == "pending"

    async def review_queue(self, limit: int = 20) -> list[tuple[OrderRisk, Order]]:
        """Orders held for review, oldest first, with their risk (for /review)."""
        async with self.uow() as uow:
            rows = await uow.risk.review_queue(limit)
            orders = await uow.orders.get_many([r.order_id for r in rows])
        return [(r, orders[r.order_id]) for r in rows if r.order_id in orders]

    async def approve(self, order_id: str, actor: Buyer) -> Order:
        """Let an order under review go on: it stays held (a fresh hold time) and the buyer is told to pay."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.status is not OrderStatus.HELD or not await uow.risk.decide_review(
                    order_id, "approved", actor.key, now):
                raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
            product = await uow.products.get(order.product_id)
            order.expires_at = now + timedelta(minutes=self.hold_minutes(product))
            await uow.risk.set_expiry([order.id], order.expires_at)
            await uow.outbox.add_many([OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                "key": "risk.review.approved", "language": order.language, "params": {"order": order.id}})])
            await uow.audit.add_many([AuditEntry("review", actor.key, actor.channel, now, order.id, order.product_id,
                                                 detail={"decision": "approved"})])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order

    async def reject(self, order_id: str, actor: Buyer, note: str = "") -> Order:
        """Refuse an order under review: its stock goes back and the buyer is told."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.status is not OrderStatus.HELD or not await uow.risk.decide_review(
                    order_id, "rejected", actor.key, now):
                raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
            await uow.codes.release([order.id])
            await uow.orders.set_status([order.id], OrderStatus.CANCELLED, now)
            order.status = OrderStatus.CANCELLED
            await stock_alerts.returned(uow, [(order.product_id, order.qty)], now)
            await uow.outbox.add_many([OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                "key": "risk.review.rejected", "language": order.language, "params": {"order": order.id}})])
            await uow.audit.add_many([AuditEntry("review", actor.key, actor.channel, now, order.id, order.product_id,
                                                 detail={"decision": "rejected", "note": note[:200]})])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order

    async def pass_challenge(self, buyer: Buyer, token: str, answer: str) -> bool:
        """The buyer's answer to a challenge: True lets them order without challenges for pass_minutes
        (ask reserve again). A token is used once, right or wrong, and only by the buyer it was given to."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            ok = await uow.risk.answer_challenge(token, buyer, str(answer).strip(), now,
                                                 now + timedelta(minutes=self.guard.policy.pass_minutes))
            await uow.commit()
        return ok

    async def bind_phone(self, buyer: Buyer, raw: str) -> str | None:
        """Bind a phone number to the buyer (the chat UI passes the user's own shared contact); the normalized
        number, or None when it is not an international number (nothing stored)."""
        phone = normalize_phone(raw)
        if phone is None:
            return None
        async with self.uow(write=True) as uow:
            await uow.risk.set_phone(buyer, phone, self.clock.now())
            await uow.commit()
        return phone

    async def set_level(self, buyer: Buyer, level: int, reseller: bool = False) -> None:
        """A buyer's member level and reseller flag (rules min_level / resellers_only)."""
        async with self.uow(write=True) as uow:
            await uow.risk.set_level(buyer, level, reseller, self.clock.now())
            await uow.commit()
