"""Members: the level a buyer's spend reaches, points earned and taken back, referral rewards, the new-buyer gift,
and the profile a buyer sees (core/members/__init__.py tells the whole story)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.members import coupons as issuing
from core.members import points as ledger
from core.members.policy import Level, MallItem, MemberPolicy
from core.members.ports import PointsEntry, Spend
from core.members.promotions import POINTS
from core.models import AuditEntry, Buyer, Order, OutboxItem, Product
from core.payments import PaymentNotice, PaymentResult
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.promotions import link_sets

if TYPE_CHECKING:
    from core.coupons import Coupon, CouponDesk
    from core.shop import Shop

REFERRAL_PREFIX = "r_"  # a buyer's referral link payload: /start r_<code> (a reseller's is ref_<id>)
CODE_LENGTH = 10
B2B_CHANNEL = "api"  # reseller API orders (core/resellers/models.py CHANNEL): not a member's spend
HISTORY = 10
REFERRAL_NOTICE = "members.referral_rewarded"
REFERRAL_COUPON_NOTICE = "member_coupons.referral_rewarded"
SKIPPED = "mcoupon_skipped"  # audit action: a coupon reward its campaign could not give (off, ended, gone)


@dataclass(frozen=True, slots=True)
class Gift:
    """The new-buyer gift given now: points and/or a coupon campaign's name ("" and 0: nothing)."""

    points: int = 0
    coupon: str = ""

    def __bool__(self) -> bool:
        return bool(self.points or self.coupon)


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
        self.coupons: CouponDesk | None = None  # issues coupon rewards (set when coupons are on: app/bootstrap.py)

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
        the order is settled in Stars).

        A batch pays hundreds of orders: the reads and writes are made for the whole batch (the accounts, the
        spends, the points earned), not per order; per buyer only what the policy needs (whether it is a first
        order when that is rewarded, the level when there are levels)."""
        counted = [o for o in orders if o.buyer.channel != B2B_CHANNEL and o.amount > 0]
        if not counted:
            return
        now = self.clock.now()
        policy = self.policy
        by_buyer: dict[Buyer, list[Order]] = {}
        for o in counted:
            by_buyer.setdefault(o.buyer, []).append(o)
        buyers = sorted(by_buyer, key=lambda b: b.key)
        accounts = await link_sets(uow, buyers)
        # First paid orders (read before this batch's spends are stored): a person counts once, with its first
        # account in the batch (a linked account after it in the same batch is not a first any more).
        first: set[str] = set()
        if policy.referral_reward or (policy.gift and policy.gift_on == "purchase"):
            seen: set[str] = set()
            for buyer in buyers:
                who = ledger.person_key(accounts[buyer.key])
                if who not in seen and await uow.members.paid_orders(accounts[buyer.key]) == 0:
                    first.add(buyer.key)
                seen.add(who)
        await uow.members.add_spend([Spend(o.id, buyer, o.amount) for buyer in buyers for o in by_buyer[buyer]], now)
        earning = ledger.Earnings(uow, accounts, now)
        await earning.load([(o, policy.earned(o.amount)) for buyer in buyers for o in by_buyer[buyer]])
        for buyer in buyers:
            mine = by_buyer[buyer]
            for o in mine:
                await earning.credit(buyer, o, policy.earned(o.amount), now + policy.points_life)
            if buyer.key in first:
                await earning.flush()  # the gift and the referral credit through the ledger: it reads what is stored
                await self._first_order(uow, buyer, accounts[buyer.key], mine[0], now)
            if policy.levels:
                await self._raise_level(uow, accounts[buyer.key], now)
        await earning.flush()

    async def on_refunded(self, uow: UnitOfWork, order_ids: Sequence[str]) -> None:
        """In the refund's transaction: the orders stop counting for the level (lowered when spend put it there),
        and the points they brought (earned, the referrer's reward, the gift) are taken back, once."""
        now = self.clock.now()
        stopped = await uow.members.refund_spend(order_ids, now)
        for row in await uow.members.points_of_orders(order_ids):
            if row.kind in ledger.CREDITS and row.id is not None:
                await ledger.debit(uow, row.buyer, row.delta, ledger.REVERSE, f"reverse:{row.id}", now, row.order_id,
                                   prefer=row.id)
        await issuing.void_unused(uow, await uow.member_coupons.of_orders(order_ids), now)  # a used one stays used
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
        if not reached:
            return  # no level reached: nothing to raise (no read of the stored levels)
        stored = await uow.members.levels(accounts)
        if any(stored.get(b.key, 0) < reached for b in accounts):
            await uow.members.set_levels([b for b in accounts if stored.get(b.key, 0) < reached], reached, now)

    async def _first_order(self, uow: UnitOfWork, buyer: Buyer, accounts: list[Buyer], order: Order,
                           now: datetime) -> None:
        policy = self.policy
        if policy.gift and policy.gift_on == "purchase":
            await self._gift(uow, buyer, accounts, now, order.id)
        if not policy.referral_reward:
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
        refs = [f"referral:{b.key}" for b in accounts]
        notices: list[tuple[str, dict[str, object]]] = []
        if policy.referral_points and not await uow.members.points_refs(refs):  # rewarded once per person
            given = await ledger.credit(uow, referrer, policy.referral_points, ledger.REFERRAL,
                                        f"referral:{buyer.key}", now, now + policy.points_life, order.id)
            if given is not None:
                notices.append((REFERRAL_NOTICE, {"points": policy.referral_points}))
        if policy.referral_coupon and not await uow.member_coupons.refs(refs) and await self._issue(
                uow, policy.referral_coupon, referrer, issuing.REFERRAL, f"referral:{buyer.key}", now, order.id):
            notices.append((REFERRAL_COUPON_NOTICE, {"name": policy.referral_coupon}))
        if notices:
            await uow.outbox.add_many([OutboxItem(None, "notify", referrer.channel, referrer.external_id, None, {
                "key": key, "language": "", "params": params}) for key, params in notices])

    async def _issue(self, uow: UnitOfWork, name: str, buyer: Buyer, source: str, ref: str, now: datetime,
                     order_id: str | None) -> bool:
        """A coupon reward (referral, gift) in the caller's transaction; a campaign that cannot give one now (off,
        ended, not made) skips it, audited, and the rest of the reward still happens."""
        try:
            if self.coupons is None:
                raise StoreError(ErrorCode.COUPON_REWARD_UNAVAILABLE, name=name)
            await issuing.issue(uow, self.coupons, name, buyer, source, ref, now, order_id)
        except StoreError:
            await uow.audit.add_many([AuditEntry(SKIPPED, buyer.key, buyer.channel, now,
                                                 detail={"coupon": name, "source": source})])
            return False
        return True

    async def _gift(self, uow: UnitOfWork, buyer: Buyer, accounts: Sequence[Buyer], now: datetime,
                    order_id: str | None = None) -> Gift:
        refs = [f"gift:{b.key}" for b in accounts]
        points, coupon = 0, ""
        if self.policy.gift_points and not await uow.members.points_refs(refs):  # once per person
            given = await ledger.credit(uow, buyer, self.policy.gift_points, ledger.GIFT, f"gift:{buyer.key}", now,
                                        now + self.policy.points_life, order_id)
            points = given.delta if given is not None else 0
        name = self.policy.gift_coupon
        if name and not await uow.member_coupons.refs(refs):  # once per person
            coupon = name if await self._issue(uow, name, buyer, issuing.GIFT, f"gift:{buyer.key}", now,
                                               order_id) else ""
        return Gift(points, coupon)

    # -- the buyer's side ----------------------------------------------------------------------------
    async def welcome(self, buyer: Buyer) -> Gift:
        """The buyer started the bot: the new-buyer gift when it is given on start (once per person). Returns what
        was given now (nothing: none configured, or given before)."""
        if not self.policy.gift or self.policy.gift_on != "start":
            return Gift()
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
            p = await shop.product_by_sku(item.sku) if item.reward == "product" else None
            if p is not None and p.active:
                out.append((p, item))
        return out

    # -- coupons as rewards (core/members/coupons.py) ------------------------------------------------------
    async def mall_coupons(self) -> list[tuple[Coupon, MallItem]]:
        """The points mall's coupons whose campaign can give a code now, in the configured order."""
        wanted = [m for m in self.policy.mall if m.reward == "coupon"]
        if not wanted or self.coupons is None:
            return []
        now = self.clock.now()
        async with self.uow() as uow:
            found = [(await uow.coupons.by_name(m.coupon), m) for m in wanted]
        return [(c, m) for c, m in found if c is not None and c.active and c.single_use
                and (c.terms.ends_at is None or now < c.terms.ends_at)]

    async def buy_coupon(self, buyer: Buyer, name: str) -> issuing.MyCoupon:
        """A coupon of the points mall bought with points: the person's points (locked, as the mall's products take
        them) are debited and one new code of the campaign issued to the buyer, in one transaction. Refused
        (nothing debited): not in the mall, points short, the campaign cannot give a code now."""
        item = self.policy.mall_coupon(name.strip().upper())
        if item is None or self.coupons is None:
            raise StoreError(ErrorCode.NOT_IN_MALL, sku=name)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            accounts = await uow.risk.link_set(buyer)
            have = await ledger.spendable(uow, accounts, now)
            if have < item.points:
                raise StoreError(ErrorCode.POINTS_SHORT, needed=item.points, balance=max(0, have))
            issued = await issuing.issue(uow, self.coupons, item.coupon, buyer, issuing.MALL,
                                         f"mall:{buyer.key}:{secrets.token_hex(8)}", now, points=item.points)
            await ledger.debit(uow, buyer, item.points, ledger.SPEND, f"spend:coupon:{issued.id}", now)
            mine = await self._reveal(uow, buyer, [issued], now)
            await uow.commit()
        return mine[0]

    async def my_coupons(self, buyer: Buyer) -> list[issuing.MyCoupon]:
        """The person's issued coupons, newest first, each with its code (the reveal audited), used and voided
        ones marked."""
        if self.coupons is None:
            return []
        async with self.uow(write=True) as uow:
            accounts = await uow.risk.link_set(buyer)
            issued = await uow.member_coupons.of_buyers(accounts)
            mine = await self._reveal(uow, buyer, issued, self.clock.now())
            await uow.commit()
        return mine

    async def _reveal(self, uow: UnitOfWork, buyer: Buyer, issued: Sequence[issuing.IssuedCoupon],
                      now: datetime) -> list[issuing.MyCoupon]:
        if not issued or self.coupons is None:
            return []
        campaigns = await uow.coupons.get(sorted({i.coupon_id for i in issued}))
        taken = await uow.coupons.codes_in_use(sorted(i.digest for i in issued))
        await uow.audit.add_many([AuditEntry(issuing.REVEAL, buyer.key, buyer.channel, now,
                                             detail={"member_coupons": [i.id for i in issued]})])
        return [issuing.MyCoupon(i.id or 0, campaigns[i.coupon_id], self.coupons.unseal(i.sealed), i.source,
                                 i.issued_at, i.voided_at is None and i.digest in taken, i.voided_at is not None)
                for i in issued]

    async def refund_mall_coupon(self, coupon_row: int, actor: str = "cli") -> tuple[int, bool]:
        """A mall coupon taken back: its points are given back (once) and its code voided when not used yet; a used
        code stays used (the buyer keeps the discount they had). Returns (points given back, voided)."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            issued = await uow.member_coupons.get(coupon_row)
            if issued is None or issued.source != issuing.MALL:
                raise StoreError(ErrorCode.NOT_IN_MALL, sku=str(coupon_row))
            spent = (await uow.members.points_refs([f"spend:coupon:{coupon_row}"])).get(f"spend:coupon:{coupon_row}")
            back = await ledger.give_back(uow, spent, f"return:coupon:{coupon_row}", now) if spent else None
            voided, _ = await issuing.void_unused(uow, [issued], now)
            await uow.audit.add_many([AuditEntry("mcoupon_refund", actor, "admin", now, detail={
                "member_coupon": coupon_row, "points": back.delta if back else 0, "voided": bool(voided)})])
            await uow.commit()
        return (back.delta if back else 0), bool(voided)


async def buy_with_points(shop: Shop, buyer: Buyer, product_id: int, qty: int, language: str,
                          chat_id: str = "") -> PaymentResult:
    """A points-mall purchase: the order is made through the one reserve pipeline (the points promotion checks and
    takes the points), then paid through the one payment entry with the points gateway (amount 0). Refusals
    (points short, not in the mall, sold out) raise StoreError before anything is held or taken."""
    order = await shop.reserve(buyer, product_id, qty, language, chat_id, promo={POINTS: "1"})
    return await shop.pay(PaymentNotice(order.id, POINTS, f"points:{order.id}", 0, order.currency, buyer))
