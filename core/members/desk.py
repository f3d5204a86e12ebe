"""Members: the level a buyer's spend reaches, points earned and taken back, referral rewards, the new-buyer gift,
and the profile a buyer sees (core/members/__init__.py tells the whole story)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import Clock
from core.members import points as ledger
from core.members.policy import Level, MallItem, MemberPolicy
from core.members.ports import PointsEntry, Spend
from core.members.promotions import POINTS
from core.models import Buyer, Order, OutboxItem, Product
from core.payments import PaymentNotice, PaymentResult
from core.ports import UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from core.shop import Shop

REFERRAL_PREFIX = "r_"  # a buyer's referral link payload: /start r_<code> (a reseller's is ref_<id>)
CODE_LENGTH = 10
B2B_CHANNEL = "api"  # reseller API orders (core/resellers/models.py CHANNEL): not a member's spend
HISTORY = 10
REFERRAL_NOTICE = "members.referral_rewarded"


@dataclass(frozen=True, slots=True)
class Profile:
    """What a buyer sees of their membership."""

    level: Level | None
    spend: int  # store currency, minor units (refunds left out; linked accounts together)
    next_level: Level | None
    to_next: int  # what is left to spend to reach next_level (0: none)
    points: int
    expiry: ledger.Expiry | None
    history: tuple[PointsEntry, ...]


class MemberDesk:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: MemberPolicy,
                 secret: Callable[[], bytes]) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self._secret = secret  # the vault's fingerprint key: referral codes are derived from it and stored hashed

    def current(self) -> MemberPolicy:
        return self.policy

    # -- referral codes ------------------------------------------------------------------------------
    def referral_code(self, buyer: Buyer) -> str:
        """The buyer's own code: derived (the same every time), unguessable without the store's key."""
        mac = hmac.new(self._secret(), b"referral:" + buyer.key.encode(), hashlib.sha256).digest()
        return base64.b32encode(mac).decode()[:CODE_LENGTH].lower()

    def _digest(self, code: str) -> bytes:
        return hmac.new(self._secret(), b"referral-code:" + code.lower().encode(), hashlib.sha256).digest()

    async def _referrer(self, uow: UnitOfWork, payload: str | None) -> Buyer | None:
        if not payload or not payload.startswith(REFERRAL_PREFIX):
            return None
        code = payload[len(REFERRAL_PREFIX):]
        if len(code) != CODE_LENGTH or not code.isalnum():
            return None
        return await uow.members.referral_owner(self._digest(code))

    # -- the payment's and the refund's transactions ---------------------------------------------------
    async def on_paid(self, uow: UnitOfWork, orders: Sequence[Order]) -> None:
        """In the payment batch: count each paid order for the level (raised at once), credit the points it earns,
        and for a person's first paid order the referrer's reward and the new-buyer gift (when given on purchase).
        Amounts are the store price (a Stars order counts by its price in the store currency: hooks run before
        the order is settled in Stars)."""
        counted = [o for o in orders if o.buyer.channel != B2B_CHANNEL and o.amount > 0]
        if not counted:
            return
        now = self.clock.now()
        policy = self.policy
        by_buyer: dict[Buyer, list[Order]] = {}
        for o in counted:
            by_buyer.setdefault(o.buyer, []).append(o)
        for buyer in sorted(by_buyer, key=lambda b: b.key):
            mine = by_buyer[buyer]
            accounts = await uow.risk.link_set(buyer)
            first = await uow.members.paid_orders(accounts) == 0
            await uow.members.add_spend([Spend(o.id, buyer, o.amount) for o in mine], now)
            for o in mine:
                await ledger.credit(uow, buyer, policy.earned(o.amount), ledger.EARN, f"earn:{o.id}", now,
                                    now + policy.points_life, o.id)
            if first:
                await self._first_order(uow, buyer, accounts, mine[0], now)
            if policy.levels:
                await self._raise_level(uow, accounts, now)

    async def on_refunded(self, uow: UnitOfWork, order_ids: Sequence[str]) -> None:
        """In the refund's transaction: the orders stop counting for the level (lowered when spend put it there),
        and the points they brought (earned, the referrer's reward, the gift) are taken back, once."""
        now = self.clock.now()
        stopped = await uow.members.refund_spend(order_ids, now)
        for row in await uow.members.points_of_orders(order_ids):
            if row.kind in ledger.CREDITS and row.id is not None:
                await ledger.debit(uow, row.buyer, row.delta, ledger.REVERSE, f"reverse:{row.id}", now, row.order_id,
                                   prefer=row.id)
        if not self.policy.levels:
            return
        done: set[str] = set()
        for s in stopped:
            accounts = await uow.risk.link_set(s.buyer)
            who = ledger.person_key(accounts)
            if who in done:
                continue
            done.add(who)
            refunded = sum(x.amount for x in stopped if x.buyer in accounts)
            spend = await uow.members.spend_of(accounts)
            before, after = self._number(spend + refunded), self._number(spend)
            stored = max((await uow.members.levels(accounts)).values(), default=0)
            if after < stored <= before:  # a level a merchant granted above the spend's stays
                await uow.members.set_levels(accounts, after, now)

    def _number(self, spend: int) -> int:
        lv = self.policy.level_for(spend)
        return lv.level if lv is not None else 0

    async def _raise_level(self, uow: UnitOfWork, accounts: list[Buyer], now: datetime) -> None:
        reached = self._number(await uow.members.spend_of(accounts))
        stored = await uow.members.levels(accounts)
        if reached and any(stored.get(b.key, 0) < reached for b in accounts):
            await uow.members.set_levels([b for b in accounts if stored.get(b.key, 0) < reached], reached, now)

    async def _first_order(self, uow: UnitOfWork, buyer: Buyer, accounts: list[Buyer], order: Order,
                           now: datetime) -> None:
        policy = self.policy
        if policy.gift_points and policy.gift_on == "purchase":
            await self._gift(uow, buyer, accounts, now, order.id)
        if not policy.referral_points:
            return
        payloads = await uow.resellers.referrals(accounts)
        referrer = None
        for b in accounts:  # the first account of the person that came by a buyer's referral link
            referrer = await self._referrer(uow, payloads.get(b.key))
            if referrer is not None:
                break
        if referrer is None:
            return
        keys = {b.key for b in accounts}
        if referrer.key in keys:
            return  # self-referral: the person's own link
        theirs = await uow.risk.link_set(referrer)
        if keys & {b.key for b in theirs}:
            return
        their_payloads = await uow.resellers.referrals(theirs)
        for b in theirs:  # a ring: the referrer came by this person's link
            back = await self._referrer(uow, their_payloads.get(b.key))
            if back is not None and back.key in keys:
                return
        if await uow.members.points_refs([f"referral:{b.key}" for b in accounts]):
            return  # rewarded once per person
        given = await ledger.credit(uow, referrer, policy.referral_points, ledger.REFERRAL, f"referral:{buyer.key}",
                                    now, now + policy.points_life, order.id)
        if given is not None:
            await uow.outbox.add_many([OutboxItem(None, "notify", referrer.channel, referrer.external_id, None, {
                "key": REFERRAL_NOTICE, "language": "", "params": {"points": policy.referral_points}})])

    async def _gift(self, uow: UnitOfWork, buyer: Buyer, accounts: Sequence[Buyer], now: datetime,
                    order_id: str | None = None) -> int:
        if await uow.members.points_refs([f"gift:{b.key}" for b in accounts]):
            return 0  # once per person
        given = await ledger.credit(uow, buyer, self.policy.gift_points, ledger.GIFT, f"gift:{buyer.key}", now,
                                    now + self.policy.points_life, order_id)
        return given.delta if given is not None else 0

    # -- the buyer's side ----------------------------------------------------------------------------
    async def welcome(self, buyer: Buyer) -> int:
        """The buyer started the bot: the new-buyer gift when it is given on start (once per person). Returns the
        points given now (0: none, or given before)."""
        if not self.policy.gift_points or self.policy.gift_on != "start":
            return 0
        async with self.uow(write=True) as uow:
            accounts = await uow.risk.link_set(buyer)
            given = await self._gift(uow, buyer, accounts, self.clock.now())
            await uow.commit()
        return given

    async def profile(self, buyer: Buyer) -> Profile:
        """Level, spend, points, the soonest expiry and the last movements (reads only)."""
        now = self.clock.now()
        async with self.uow() as uow:
            accounts = await uow.risk.link_set(buyer)
            spend = await uow.members.spend_of(accounts)
            stored = max((await uow.members.levels(accounts)).values(), default=0)
            rows = await uow.members.open_points(accounts)
            history = await uow.members.points_history(accounts, HISTORY)
        policy = self.policy
        level = policy.level(stored)  # what the discount and min_level read (set at payments and refunds)
        nxt = policy.next_level(level.level if level else 0)
        return Profile(level, spend, nxt, max(0, nxt.min_spend - spend) if nxt else 0, ledger.balance(rows, now),
                       ledger.soonest_expiry(rows, now), tuple(history))

    async def invite_payload(self, buyer: Buyer) -> str:
        """The start payload of the buyer's referral link (r_<code>); its fingerprint is remembered so the link
        finds the buyer again."""
        code = self.referral_code(buyer)
        async with self.uow(write=True) as uow:
            await uow.members.add_referral_code(self._digest(code), buyer, self.clock.now())
            await uow.commit()
        return REFERRAL_PREFIX + code

    async def points(self, buyer: Buyer) -> int:
        async with self.uow() as uow:
            return ledger.balance(await uow.members.open_points(await uow.risk.link_set(buyer)), self.clock.now())

    async def mall(self, shop: Shop) -> list[tuple[Product, MallItem]]:
        """The points mall: its products on sale, in the configured order."""
        out = []
        for item in self.policy.mall:
            p = await shop.product_by_sku(item.sku)
            if p is not None and p.active:
                out.append((p, item))
        return out


async def buy_with_points(shop: Shop, buyer: Buyer, product_id: int, qty: int, language: str,
                          chat_id: str = "") -> PaymentResult:
    """A points-mall purchase: the order is made through the one reserve pipeline (the points promotion checks and
    takes the points), then paid through the one payment entry with the points gateway (amount 0). Refusals
    (points short, not in the mall, sold out) raise StoreError before anything is held or taken."""
    order = await shop.reserve(buyer, product_id, qty, language, chat_id, promo={POINTS: "1"})
    return await shop.pay(PaymentNotice(order.id, POINTS, f"points:{order.id}", 0, order.currency, buyer))
