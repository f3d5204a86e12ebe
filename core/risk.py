"""Risk checks: every order is scored while it is being reserved; most pass untouched.

`Guard.screen` is the one decision whether an order may go on, for every channel: `Guard.reserve_batch` calls it
for chat orders (wrapping the order book's reserve batch inside the group commit), core/resellers.py for B2B API
and group orders in their wallet batch. For the whole batch it reads the buyers' facts, their linked identities
(a shared phone, or a link by code: core/links.py), their recent activity, the blacklist and (for products with
counted rules) their past orders of the product, each in one indexed, set-based statement, then checks the
product's rules (core/rules.py) and scores each request. Refused: a StoreError, nothing held. Challenge: a
StoreError(CHALLENGE_REQUIRED) carrying a token; `pass_challenge` lets the buyer through for a while. Review: the
order is held (longer, `review_hold_minutes`) with a pending review, and the buyer gets StoreError(UNDER_REVIEW);
a merchant approves (the order can be paid as held) or rejects (released, the buyer told through the outbox).
Scores and reasons of every order that scored anything are stored in `order_risk` (migration 0003).

Signals (points add up; thresholds in `RiskPolicy`): order velocity per buyer, per person (all accounts sharing
the bound phone or linked by a code) and per group chat within `window_minutes`; holds that lapsed unpaid in the
last 24 h; a new account; the order's value (steps: the higher, the more points); refunds and problem reports
(after-sales `report` entries of the buyer: bad codes claimed) in the last `history_days`; blacklist hits (user
id/openid, phone, payer id of any account of the person: refused); many accounts sharing one phone.
"""
from __future__ import annotations

import secrets
import time as _time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from core import links
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.links import LinkRepo, Person
from core.models import AuditEntry, Buyer, Order, OrderStatus, OutboxItem, Product
from core.payments import BanGate
from core.rules import (
    NO_RULES,
    OPEN_HOLDS,
    RISK,
    BuyerFacts,
    Counts,
    ProductRules,
    RulesError,
    check,
    normalize_phone,
    normalize_rules,
    rules_of,
)

if TYPE_CHECKING:
    from core.orders import ReserveRequest
    from core.ports import UnitOfWork, UnitOfWorkFactory

ALLOW, CHALLENGE, REVIEW, REFUSE = "allow", "challenge", "review", "refuse"
BAN_KINDS = ("user", "phone", "payer")  # user: channel:id (a Telegram user id or a WeChat openid)


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    """The `risk:` section of the config (every key and default: docs/configuration.md)."""

    enabled: bool = True
    challenge_at: int = 30
    review_at: int = 60
    refuse_at: int = 90
    window_minutes: int = 10
    buyer_orders: int = 5  # orders one account may place within the window for free; each more adds:
    buyer_points: int = 30
    phone_orders: int = 8  # the same for all accounts sharing a phone
    phone_points: int = 30
    chat_orders: int = 30  # the same for one group chat
    chat_points: int = 10
    abandoned: int = 3  # holds that lapsed unpaid in the last 24 h for free; each more adds:
    abandoned_points: int = 15
    new_account_minutes: int = 10  # an account we first saw this recently is new:
    new_account_points: int = 10
    value_steps: tuple[tuple[int, int], ...] = ((50_000, 10), (100_000, 20), (300_000, 40))  # (amount over, points)
    history_days: int = 90
    refund_points: int = 20  # each refund or after-sales problem report within history_days
    accounts_per_phone: int = 3  # accounts sharing one phone for free; each more adds:
    shared_phone_points: int = 20
    review_hold_minutes: int = 1440  # how long stock stays held while an order waits for review
    challenge_minutes: int = 10  # how long a challenge can be answered
    pass_minutes: int = 60  # after a passed challenge, no challenge for this long (review/refuse still apply)

    @property
    def _lowest_step(self) -> int:
        return min((over for over, _ in self.value_steps), default=0) if self.value_steps else 1 << 62

    def decision(self, score: int) -> str:
        if score >= self.refuse_at:
            return REFUSE
        if score >= self.review_at:
            return REVIEW
        if score >= self.challenge_at:
            return CHALLENGE
        return ALLOW

    def value_points(self, amount: int) -> int:
        if amount <= self._lowest_step:
            return 0
        best = 0
        for over, pts in self.value_steps:
            if amount > over and pts > best:
                best = pts
        return best


@dataclass(frozen=True, slots=True)
class Reason:
    signal: str  # velocity_buyer | velocity_phone | velocity_chat | abandoned | new_account | value | refunds |
    #              blacklist | shared_phone
    points: int
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "points": self.points, "detail": self.detail}


@dataclass(slots=True)
class Assessment:
    score: int
    decision: str
    reasons: list[Reason] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Activity:
    """An identity's orders in the risk windows (from the orders index on buyer and time)."""

    recent: int = 0  # orders created within window_minutes
    abandoned: int = 0  # holds that lapsed unpaid within 24 h
    refunds: int = 0  # orders refunded (or refunding) within history_days, plus problems reported (after-sales)
    open_holds: int = 0  # unpaid orders still held (the store's hold cap is checked before scoring)


NO_ACTIVITY = Activity()
NO_FACTS = BuyerFacts()


@dataclass(frozen=True, slots=True)
class Profile:
    """One buyer as the risk check sees them in a batch (built once per buyer from the batch's reads)."""

    key: str  # channel:id
    who: str  # the person: phone:<phone> when a phone is bound, else the key
    phone: str
    recent: int  # this account's orders within the window
    phone_recent: int  # all linked accounts' orders within the window
    abandoned: int
    refunds: int
    open_holds: int
    accounts: int  # accounts sharing the phone (0: none bound)
    hits: tuple[str, ...]  # blacklist kinds that hit
    new: bool


@dataclass(frozen=True, slots=True)
class Intent:
    """One order to decide on (`Guard.screen`), whichever channel it came from."""

    buyer: Buyer  # whose order it is: the chat buyer, the group member, the reseller's api:<id>
    product_id: int
    qty: int
    amount: int  # what it is worth (minor units), for the value signal
    group: str = ""  # the group chat it was ordered in ("" for a private chat or the API)
    holds: bool = True  # False: paid at once from a wallet (no hold cap, no open_holds, no challenge or review)
    reseller: bool = False  # paid by a reseller's account: rule resellers_only lets it through
    exempt: frozenset[str] = frozenset()  # codes it skips (core/rules.py EXEMPTIBLE values; config resellers.*)


def _group_of(r: ReserveRequest) -> str:
    """The group chat a chat order came from: a chat that is not the buyer's private chat."""
    return r.chat_id if r.chat_id and r.chat_id != r.buyer.external_id else ""


_NEW: dict[int, Reason] = {}
_DICTS: dict[Reason, dict[str, Any]] = {}


def _as_dict(r: Reason) -> dict[str, Any]:
    d = _DICTS.get(r)
    if d is None:
        if len(_DICTS) > 4096:
            _DICTS.clear()
        d = _DICTS[r] = r.as_dict()
    return d


@dataclass(slots=True)
class OrderRisk:
    """What the risk check decided for one order (a row of order_risk)."""

    order_id: str
    buyer: Buyer
    decision: str
    score: int
    reasons: list[dict[str, Any]]
    review: str  # "" | pending | approved | rejected
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str = ""


@dataclass(slots=True)
class Challenge:
    token: str
    buyer: Buyer
    answer: str
    expires_at: datetime


@dataclass(slots=True)
class Ban:
    kind: str
    value: str
    reason: str
    actor: str
    at: datetime


class RiskRepo(LinkRepo, Protocol):
    """Storage for rules and risk (storage/risk.py), linked accounts included. Every read is set-based and
    indexed."""

    async def lock_buyers(self, keys: Sequence[str]) -> None:
        """PostgreSQL: the per-buyer (and per-phone) advisory locks the hold count takes; SQLite: nothing."""
    async def snapshot(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> tuple[dict[str, BuyerFacts], dict[str, Activity], set[tuple[str, str]]]:
        """buyer_facts + activity + the blacklist hits (user, payer, bound phone) of the buyers, in one read."""
    async def buyer_facts(self, buyers: Sequence[Buyer]) -> dict[str, BuyerFacts]: ...
    async def activity(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> dict[str, Activity]: ...
    async def product_counts(self, buyers: Sequence[Buyer], product_ids: Sequence[int], day_start: datetime,
                             now: datetime) -> dict[tuple[str, int], Counts]: ...
    async def chat_orders(self, chats: Sequence[str], since: datetime) -> dict[str, int]: ...
    async def blacklisted(self, entries: Sequence[tuple[str, str]]) -> set[tuple[str, str]]: ...
    async def passes(self, buyers: Sequence[Buyer], now: datetime) -> set[str]: ...
    async def add_challenges(self, challenges: Sequence[Challenge], now: datetime) -> None: ...
    async def answer_challenge(self, token: str, buyer: Buyer, answer: str, now: datetime,
                               valid_until: datetime) -> bool:
        """Use the challenge once: True (and a pass until valid_until) when the answer is right."""
    async def record(self, rows: Sequence[OrderRisk]) -> None: ...
    async def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRisk]: ...
    async def for_buyer(self, buyer: Buyer, limit: int) -> list[OrderRisk]: ...
    async def review_queue(self, limit: int) -> list[OrderRisk]: ...
    async def decide_review(self, order_id: str, review: str, actor: str, at: datetime) -> bool:
        """Move a pending review to approved/rejected; False when it was not pending (decided already)."""
    async def set_expiry(self, order_ids: Sequence[str], expires_at: datetime) -> None: ...
    async def ban(self, ban: Ban) -> None: ...
    async def unban(self, kind: str, value: str) -> bool: ...
    async def bans(self, limit: int) -> list[Ban]: ...
    async def set_phone(self, buyer: Buyer, phone: str, now: datetime) -> None: ...
    async def set_level(self, buyer: Buyer, level: int, reseller: bool, now: datetime) -> None: ...


InnerBatch = Callable[["UnitOfWork", Sequence["ReserveRequest"]], Awaitable[list[Any]]]


def _utc(zone: str) -> Any:
    try:
        return ZoneInfo(zone)
    except Exception:  # noqa: BLE001 - validated by settings; a bad zone here falls back to UTC
        return timezone.utc


class Guard:
    """Rules and risk: `screen` decides every order (chat, group, API); `reserve_batch` is the "reserve" batch
    handler around the order book's, `settle` stores the scores of the orders a caller made."""

    def __init__(self, clock: Clock, policy: RiskPolicy | None = None, zone: str = "UTC",
                 hold_cap: Callable[[], int] | None = None,
                 catalog: Callable[[], Awaitable[Sequence[Product]]] | None = None) -> None:
        self.clock = clock
        # The shop's catalogue cache (a few seconds old at most; this process's own changes at once): rules and
        # prices for scoring come from it. The order book still reads each product in the batch's transaction
        # for what decides a sale (on sale, quantity, price charged); a product the cache does not know yet is
        # read here too.
        self.catalog = catalog
        # The store's cap on open holds per buyer (store.max_open_holds): a request the order book would refuse
        # for it is refused before scoring, so a buyer at the cap is told so, never challenged.
        self.hold_cap = hold_cap
        self.policy = policy or RiskPolicy()
        self.zone = _utc(zone)
        # Whether the blacklist holds anything (core/payments.py BanGate; set by the shop): no ban reads when empty.
        self.bans: BanGate | None = None
        # When measured (bench/risk.py): (batch size, wall seconds, CPU seconds of this thread) the check added.
        self.timings: list[tuple[int, float, float]] | None = None

    def configure(self, policy: RiskPolicy, zone: str = "UTC") -> None:
        self.policy = policy
        self.zone = _utc(zone)

    def day_start(self, now: datetime) -> datetime:
        local = now.astimezone(self.zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)

    async def reserve_batch(self, uow: UnitOfWork, reqs: Sequence[ReserveRequest], inner: InnerBatch) -> list[Any]:
        """Chat orders: `screen` every request, hand the ones that may go on to the order book (which holds)."""
        t0, c0 = _time.perf_counter(), _time.thread_time()
        now = self.clock.now()
        wanted = {r.product_id for r in reqs}
        products: dict[int, Product] = {}
        if self.catalog is not None:
            products = {p.id: p for p in await self.catalog() if p.id in wanted}
        if len(products) < len(wanted):
            products = await uow.products.get_many(sorted(wanted))
        if not self.policy.enabled and not any(p.rules for p in products.values()):
            return await inner(uow, reqs)
        # A request whose order may have landed already comes back alone: the group committer retries items one by
        # one after a failed batch (an unknown commit outcome), so only a batch of one needs looking for it.
        landed = await uow.orders.get_many([r.order_id for r in reqs if r.order_id]) if len(reqs) == 1 else {}
        results: list[Any] = [None] * len(reqs)
        passing: list[int] = []
        todo: list[int] = []
        for i, r in enumerate(reqs):
            p = products.get(r.product_id)
            if r.order_id in landed or p is None or not p.active or not p.min_qty <= r.qty <= p.max_qty:
                passing.append(i)  # landed: found again by the book; else the book refuses it (not found, ...)
            else:
                todo.append(i)
        intents = [Intent(reqs[i].buyer, reqs[i].product_id, reqs[i].qty, products[reqs[i].product_id].price *
                          reqs[i].qty, group=_group_of(reqs[i])) for i in todo]
        assessed: dict[int, Assessment] = {}
        for i, verdict in zip(todo, await self.screen(uow, intents, products, now), strict=True):
            if isinstance(verdict, StoreError):
                results[i] = verdict
            else:
                assessed[i] = verdict
                passing.append(i)
        passing.sort()
        t_inner, c_inner = _time.perf_counter(), _time.thread_time()
        out = await inner(uow, [reqs[i] for i in passing]) if passing else []
        t_inner, c_inner = _time.perf_counter() - t_inner, _time.thread_time() - c_inner
        review = await self.settle(uow, [(assessed[i], res) for i, res in zip(passing, out, strict=True)
                                         if i in assessed and isinstance(res, Order)], now)
        for i, res in zip(passing, out, strict=True):
            results[i] = res
            if isinstance(res, Order) and res.id in review:
                a = assessed[i]
                # `held` marks the first answer for this order (the merchants are alerted once, by Shop).
                results[i] = StoreError(ErrorCode.UNDER_REVIEW, order_id=res.id, held=True, score=a.score,
                                        reasons=", ".join(f"{x.signal}+{x.points}" for x in a.reasons))
        # A retried batch finds orders that landed before: one still waiting for review is not payable.
        landed_ids = [reqs[i].order_id for i in range(len(reqs)) if reqs[i].order_id in landed]
        if landed_ids:
            risk = await uow.risk.get_many(landed_ids)
            for i, r in enumerate(reqs):
                row = risk.get(r.order_id)
                if row is not None and row.review == "pending":
                    results[i] = StoreError(ErrorCode.UNDER_REVIEW, order_id=r.order_id)
        if self.timings is not None:  # what the check added to this batch (bench/risk.py)
            self.timings.append((len(reqs), _time.perf_counter() - t0 - t_inner, _time.thread_time() - c0 - c_inner))
        return results

    async def screen(self, uow: UnitOfWork, intents: Sequence[Intent], products: Mapping[int, Product],
                     now: datetime, *, preview: bool = False) -> list[StoreError | Assessment]:
        """Whether each order may go on: the product's rules first, then risk. The one place this is decided, for
        every channel: chat orders (`reserve_batch`), B2B API and group orders (core/resellers.py, in their own
        batch). Returns per intent the refusal (nothing may be held or sold) or the assessment to go on with
        (ALLOW, or REVIEW for an order that holds). Runs inside the caller's write transaction: what one call
        accepts counts for the next intent of the same person in it. `products` must hold every intent's product
        (on sale, quantity checked by the caller). `preview` (a group quote, before anything is asked): no locks.

        Orders that hold nothing (`Intent.holds` False: paid at once from a wallet) skip the hold cap and the
        `open_holds` rule, and cannot be challenged (nobody could answer: an API) or held for review: a score
        that would do either refuses them (RISK_REFUSED). `Intent.exempt` names what the order skips (config
        `resellers.*_exempt`, core/rules.py EXEMPTIBLE); bans hold even for an order exempt from the score."""
        if not intents:
            return []
        policy = self.policy
        if not policy.enabled and not any(products[x.product_id].rules for x in intents):
            return [Assessment(0, ALLOW) for _ in intents]
        prules: dict[int, ProductRules] = {}
        for pid in {x.product_id for x in intents}:
            try:
                prules[pid] = rules_of(products[pid].rules)
            except RulesError:
                prules[pid] = NO_RULES  # unusable stored rules: the product is refused below
        keys = [x.buyer.key for x in intents]  # dicts below are keyed by these strings (a Buyer hashes slowly)
        by_key = {keys[i]: x.buyer for i, x in enumerate(intents)}
        scored = {keys[i] for i, x in enumerate(intents) if policy.enabled and RISK not in x.exempt}
        windows = (now - timedelta(minutes=policy.window_minutes), now - timedelta(hours=24),
                   now - timedelta(days=policy.history_days))
        activity: dict[str, Activity] = {}
        banned: set[tuple[str, str]] = set()
        facts: dict[str, BuyerFacts] = {}
        if scored:  # facts, activity and bans of the buyers to score: one read
            facts, activity, banned = await uow.risk.snapshot([by_key[k] for k in sorted(scored)], now, *windows)
        unscored = [b for k, b in by_key.items() if k not in scored]
        if unscored:
            facts.update(await uow.risk.buyer_facts(unscored))
            # exempt from the score, never from a ban (no read while the blacklist is empty)
            if policy.enabled and (self.bans is None or await self.bans.any(uow)):
                entries = [(kind, b.key) for b in unscored for kind in ("user", "payer")]
                entries += [("phone", facts[b.key].phone) for b in unscored if b.key in facts and facts[b.key].phone]
                banned |= await uow.risk.blacklisted(entries)
        # The person behind each account: accounts sharing a bound phone or linked by a code (core/links.py).
        people = await links.people(uow.risk, {k: links.identity_of(b, facts.get(k)) for k, b in by_key.items()})
        quota_buyers = sorted({keys[i] for i, x in enumerate(intents) if prules[x.product_id].counted})
        if quota_buyers and not preview:
            # Quotas are counted and then added to in this transaction: on PostgreSQL another process's batch
            # must not count the same people in between. So every buyer of the batch (the locks the hold cap
            # takes later, then already held) and the quota buyers' people (their phones and link ids) are
            # locked first, all in one sorted sweep: no two batches can wait for each other. Released at
            # commit. Risk signals take no lock: they are estimates, not limits.
            await uow.risk.lock_buyers([*by_key, *(tok for k in quota_buyers for tok in people[k].tokens)])
        grouped = any(len(p.accounts) > 1 for p in people.values())
        everyone = (list({x.key: x for p in people.values() for x in p.accounts}.values()) if grouped
                    else list(by_key.values()))
        counted = sorted({x.product_id for x in intents if prules[x.product_id].counted})
        pcounts = await uow.risk.product_counts(everyone, counted, self.day_start(now), now) if counted else {}
        profiles: dict[str, Profile] = {}
        chats: dict[str, int] = {}
        if policy.enabled and grouped and (self.bans is None or await self.bans.any(uow)):
            # A ban of any account (or phone) of a person refuses all of its accounts: the bans of the accounts
            # and phones the first read did not cover.
            extra = {(kind, x.key) for p in people.values() for x in p.accounts if x.key not in by_key
                     for kind in ("user", "payer")}
            extra |= {("phone", ph) for k, p in people.items() for ph in p.phones
                      if ph != facts.get(k, NO_FACTS).phone}
            if extra:
                banned = banned | await uow.risk.blacklisted(sorted(extra))
        if scored:
            # the people's other accounts, not scored in this call themselves
            others = list({x.key: x for k in scored for x in people[k].accounts if x.key not in scored}.values())
            if others:
                activity.update(await uow.risk.activity(others, now, *windows))
            group_chats = sorted({x.group for i, x in enumerate(intents) if x.group and keys[i] in scored})
            chats = (await uow.risk.chat_orders(group_chats, now - timedelta(minutes=policy.window_minutes))
                     if group_chats else {})
            profiles = {k: self.profile(by_key[k], facts.get(k, NO_FACTS), people[k], activity, banned, now, k)
                        for k in scored}
        passes: set[str] | None = None
        cap = self.hold_cap() if self.hold_cap is not None else None
        # What this call already accepted counts like stored orders (a burst lands in one batch).
        batch_qty: dict[tuple[str, int], int] = {}
        batch_holds: dict[tuple[str, int], int] = {}
        batch_orders: dict[str, int] = {}
        out: list[StoreError | Assessment] = []
        challenges: list[tuple[int, Challenge, dict[str, Any]]] = []
        for i, x in enumerate(intents):
            key = keys[i]
            p = products[x.product_id]
            rules = prules[p.id]
            if p.rules and rules is NO_RULES:
                out.append(StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku))
                continue
            person = people[key]
            who, ids = person.who, person.accounts
            if rules is not NO_RULES:
                counts = None
                if rules.counted:
                    day = total = holds = 0
                    for b in ids:
                        c = pcounts.get((b.key, p.id))
                        if c is not None:
                            day, total, holds = day + c.day_qty, total + c.total_qty, holds + c.open_holds
                    k = (who, p.id)
                    counts = Counts(day + batch_qty.get(k, 0), total + batch_qty.get(k, 0),
                                    holds + batch_holds.get(k, 0))
                f = facts.get(key, NO_FACTS)
                if person.phone != f.phone:  # a phone bound by a linked account counts as its own
                    f = replace(f, phone=person.phone)
                if x.reseller and not f.reseller:
                    f = replace(f, reseller=True)
                # An order that holds nothing cannot break a limit on unpaid holds.
                err = check(rules, x.qty, now, f, counts, x.exempt if x.holds else x.exempt | {OPEN_HOLDS})
                if err is not None:
                    out.append(err)
                    continue
            a = Assessment(0, ALLOW)
            if key in scored:
                prof = profiles[key]
                if x.holds and cap is not None and prof.open_holds >= cap:
                    out.append(StoreError(ErrorCode.HOLD_LIMIT, limit=cap))
                    continue
                a = self.assess(prof, x.amount, x.group, chats.get(x.group, 0) if x.group else 0, batch_orders,
                                None if cap is None or not x.holds else max(0, cap - prof.open_holds))
                if a.decision == CHALLENGE:
                    if passes is None:
                        passes = await uow.risk.passes(list(by_key.values()), now)
                    if prof.key in passes:
                        a.decision = ALLOW
                        a.reasons.append(Reason("challenge_passed", 0))
                if a.decision == REFUSE or (not x.holds and a.decision != ALLOW):
                    out.append(StoreError(ErrorCode.RISK_REFUSED))
                    continue
                if a.decision == CHALLENGE:
                    challenges.append((i, *self._challenge(x.buyer, now)))
                    out.append(StoreError(ErrorCode.CHALLENGE_REQUIRED))  # replaced below, with the token
                    continue
                batch_orders[prof.key] = batch_orders.get(prof.key, 0) + 1
                if who != prof.key:
                    batch_orders[who] = batch_orders.get(who, 0) + 1
                if x.group:
                    batch_orders["chat:" + x.group] = batch_orders.get("chat:" + x.group, 0) + 1
            elif banned and (any((kind, b.key) in banned for b in ids for kind in ("user", "payer")) or any(
                    ("phone", ph) in banned for ph in {facts.get(key, NO_FACTS).phone, person.phone, *person.phones}
                    if ph)):
                out.append(StoreError(ErrorCode.RISK_REFUSED))
                continue
            if rules.counted:
                k = (who, p.id)
                batch_qty[k] = batch_qty.get(k, 0) + x.qty
                batch_holds[k] = batch_holds.get(k, 0) + (1 if x.holds else 0)
            out.append(a)
        if challenges:
            if not preview:
                await uow.risk.add_challenges([c for _, c, _ in challenges], now)
            for i, c, shown in challenges:
                out[i] = StoreError(ErrorCode.CHALLENGE_REQUIRED, token=c.token, **shown)
        return out

    async def settle(self, uow: UnitOfWork, made: Sequence[tuple[Assessment, Order]], now: datetime) -> set[str]:
        """After the caller made the orders `screen` let through (same transaction): their scores are stored and
        those to review get the longer hold. Returns the ids of the orders held for review."""
        rows: list[OrderRisk] = []
        review_ids: list[str] = []
        for a, o in made:
            if a.decision == REVIEW:
                review_ids.append(o.id)
            if a.score > 0 or a.decision == REVIEW:
                rows.append(OrderRisk(o.id, o.buyer, a.decision, a.score, [_as_dict(x) for x in a.reasons],
                                      "pending" if a.decision == REVIEW else "", now))
        if rows:
            await uow.risk.record(rows)
        if review_ids:
            await uow.risk.set_expiry(review_ids, now + timedelta(minutes=self.policy.review_hold_minutes))
        return set(review_ids)

    def profile(self, b: Buyer, f: BuyerFacts, person: Person, activity: Mapping[str, Activity],
                banned: set[tuple[str, str]], now: datetime, key: str | None = None) -> Profile:
        """What the risk check knows about one buyer in this batch (from the batch's reads; no I/O)."""
        key = key or b.key
        own = activity.get(key, NO_ACTIVITY)
        ids = person.accounts
        if len(ids) <= 1:
            recent, abandoned, refunds = own.recent, own.abandoned, own.refunds
        else:
            acts = [activity.get(x.key, NO_ACTIVITY) for x in ids]
            recent = sum(a.recent for a in acts)
            abandoned = sum(a.abandoned for a in acts)
            refunds = sum(a.refunds for a in acts)
        hits: tuple[str, ...] = ()
        if banned:
            keys = [key] if len(ids) <= 1 else [x.key for x in ids]
            phones = {f.phone, person.phone, *person.phones} - {""}
            hits = tuple(kind for kind, values in (("user", keys), ("payer", keys), ("phone", phones))
                         if any((kind, v) in banned for v in values))
        new = f.created_at is None or now - f.created_at < timedelta(minutes=self.policy.new_account_minutes)
        phone = person.phone or f.phone
        accounts = (person.bound or 1) if phone else 0
        return Profile(key, person.who, phone, own.recent, recent, abandoned, refunds, own.open_holds, accounts, hits,
                       new)

    def assess(self, prof: Profile, amount: int, group: str, group_orders: int, batch: Mapping[str, int],
               room: int | None = None) -> Assessment:
        """Score one request (no I/O). `group`: the group chat it came from ("" for a private chat); `room`: the
        holds the buyer may still open: requests of one buyer in a batch beyond it are refused by the hold cap
        (or stand in for one that failed), so they never count as velocity."""
        pol = self.policy
        reasons: list[Reason] = []
        if prof.hits:
            reasons.append(Reason("blacklist", pol.refuse_at, ",".join(prof.hits)))
        in_batch = batch.get(prof.key, 0)
        n = prof.recent + (in_batch if room is None else min(in_batch, room)) + 1
        if n > pol.buyer_orders:
            reasons.append(Reason("velocity_buyer", pol.buyer_points * (n - pol.buyer_orders),
                                  f"{n}/{pol.window_minutes}min"))
        if prof.who != prof.key:  # a person: a bound phone, or accounts linked by a code (one signal for both)
            n = prof.phone_recent + batch.get(prof.who, 0) + 1
            if n > pol.phone_orders:
                reasons.append(Reason("velocity_phone", pol.phone_points * (n - pol.phone_orders),
                                      f"{n}/{pol.window_minutes}min"))
        if prof.phone:
            if prof.accounts > pol.accounts_per_phone:
                reasons.append(Reason("shared_phone",
                                      pol.shared_phone_points * (prof.accounts - pol.accounts_per_phone),
                                      str(prof.accounts)))
        if group:
            n = group_orders + batch.get("chat:" + group, 0) + 1
            if n > pol.chat_orders:
                reasons.append(Reason("velocity_chat", pol.chat_points * (n - pol.chat_orders),
                                      f"{n}/{pol.window_minutes}min"))
        if prof.abandoned > pol.abandoned:
            reasons.append(Reason("abandoned", pol.abandoned_points * (prof.abandoned - pol.abandoned),
                                  str(prof.abandoned)))
        if prof.new and pol.new_account_points:
            reasons.append(_NEW.get(pol.new_account_points) or _NEW.setdefault(
                pol.new_account_points, Reason("new_account", pol.new_account_points)))
        value = pol.value_points(amount)
        if value:
            reasons.append(Reason("value", value, str(amount)))
        if prof.refunds and pol.refund_points:
            reasons.append(Reason("refunds", pol.refund_points * prof.refunds, str(prof.refunds)))
        score = 0
        for x in reasons:
            score += x.points
        return Assessment(score, pol.decision(score), [x for x in reasons if x.points])

    def _challenge(self, buyer: Buyer, now: datetime) -> tuple[Challenge, dict[str, Any]]:
        """An in-chat check a person answers at a glance: a sum of two digits, four numbered choices."""
        a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
        answer = a + b
        options = {answer}
        while len(options) < 4:
            options.add(max(2, answer + secrets.choice([-3, -2, -1, 1, 2, 3, 4])))
        shown = sorted(options)
        rng = secrets.SystemRandom()
        rng.shuffle(shown)
        ch = Challenge(secrets.token_urlsafe(12), buyer, str(answer),
                       now + timedelta(minutes=self.policy.challenge_minutes))
        return ch, {"question": f"{a} + {b}", "options": [str(x) for x in shown],
                    "minutes": self.policy.challenge_minutes}


@dataclass(slots=True)
class RiskReport:
    """What /risk USER shows a merchant: the buyer, linked accounts, recent activity, bans, scored orders."""

    buyer: Buyer
    facts: BuyerFacts
    linked: list[Buyer]
    activity: Activity
    banned: list[str]  # the kinds that hit: user, payer, phone
    standing: Assessment  # the score a small order placed now would get
    orders: list[OrderRisk]


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
        prof = self.guard.profile(buyer, facts, person, act, banned, now)
        standing = self.guard.assess(prof, 0, "", 0, {})
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


def policy_from(section: Any) -> RiskPolicy:
    """A RiskPolicy from the validated `risk:` settings section (config.settings.Risk)."""
    data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
    steps = data.pop("value_steps", None)
    for key in [k for k in data if k.startswith("flood_")]:  # the incoming-update limit: core/flood.py
        data.pop(key)
    if steps is not None:
        data["value_steps"] = tuple(sorted((int(s["over"]), int(s["points"])) for s in steps))
    return RiskPolicy(**data)
