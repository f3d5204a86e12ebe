"""May this order be made? `Guard.screen` decides it for every channel, the product's rules first, then risk.

`Guard.reserve_batch` calls it for chat orders (wrapping the order book's reserve batch inside the group commit),
core/resellers/ for B2B API and group orders in their wallet batch. For the whole batch it reads the buyers'
facts, their linked identities (a shared phone, or a link by code: core/links.py), their recent activity, the
blacklist and (for products with counted rules) their past orders of the product, each in one indexed, set-based
statement, then checks the product's rules (rules.py) and scores each request (scoring.py). Refused: a StoreError,
nothing held. Challenge: a StoreError(CHALLENGE_REQUIRED) carrying a token; `RiskDesk.pass_challenge` lets the buyer
through for a while. Review: the order is held (longer, `review_hold_minutes`) with a pending review, and the buyer
gets StoreError(UNDER_REVIEW); a merchant approves or rejects it (desk.py). `Guard.settle` stores the scores and
reasons of every order that scored anything in `order_risk` (migration 0003).
"""
from __future__ import annotations

import time as _time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from core import links
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.links import Person
from core.models import Order, Product
from core.payments import BanGate
from core.risk import scoring
from core.risk.models import Activity, Assessment, Challenge, Intent, OrderRisk, Profile, Reason
from core.risk.policy import ALLOW, CHALLENGE, REFUSE, REVIEW, RiskPolicy
from core.risk.rules import NO_RULES, OPEN_HOLDS, RISK, BuyerFacts, Counts, ProductRules, RulesError, check, rules_of

if TYPE_CHECKING:
    from core.orders import ReserveRequest
    from core.ports import UnitOfWork

NO_FACTS = BuyerFacts()


# The order book's reserve batch (core/orders.py): per request its order, or the exception refusing it
InnerBatch = Callable[["UnitOfWork", Sequence["ReserveRequest"]], Awaitable[list[Order | Exception | None]]]


def _utc(zone: str) -> tzinfo:
    try:
        return ZoneInfo(zone)
    except Exception:  # noqa: BLE001 - validated by settings; a bad zone here falls back to UTC
        return UTC


def _group_of(r: ReserveRequest) -> str:
    """The group chat a chat order came from: a chat that is not the buyer's private chat."""
    return r.chat_id if r.chat_id and r.chat_id != r.buyer.external_id else ""


_DICTS: dict[Reason, dict[str, Any]] = {}  # each reason's stored form, made once (`settle` writes many)


def _as_dict(r: Reason) -> dict[str, Any]:
    d = _DICTS.get(r)
    if d is None:
        if len(_DICTS) > 4096:
            _DICTS.clear()
        d = _DICTS[r] = r.as_dict()
    return d


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
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)

    async def reserve_batch(self, uow: UnitOfWork, reqs: Sequence[ReserveRequest], inner: InnerBatch
                            ) -> list[Order | Exception | None]:
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
        results: list[Order | Exception | None] = [None] * len(reqs)
        passing: list[int] = []
        todo: list[int] = []
        intents: list[Intent] = []
        for i, r in enumerate(reqs):
            p = products.get(r.product_id)
            if r.order_id in landed or p is None or not p.active or not p.min_qty <= r.qty <= p.max_qty:
                passing.append(i)  # landed: found again by the book; else the book refuses it (not found, ...)
            else:
                todo.append(i)
                intents.append(Intent(r.buyer, r.product_id, r.qty, p.price * r.qty, _group_of(r)))
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
        landed_ids = [r.order_id for r in reqs if r.order_id in landed] if landed else []
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
        every channel: chat orders (`reserve_batch`), B2B API and group orders (core/resellers/, in their own
        batch). Returns per intent the refusal (nothing may be held or sold) or the assessment to go on with
        (ALLOW, or REVIEW for an order that holds). Runs inside the caller's write transaction: what one call
        accepts counts for the next intent of the same person in it. `products` must hold every intent's product
        (on sale, quantity checked by the caller). `preview` (a group quote, before anything is asked): no locks.

        Orders that hold nothing (`Intent.holds` False: paid at once from a wallet) skip the hold cap and the
        `open_holds` rule, and cannot be challenged (nobody could answer: an API) or held for review: a score
        that would do either refuses them (RISK_REFUSED). `Intent.exempt` names what the order skips (config
        `resellers.*_exempt`, rules.py EXEMPTIBLE); bans hold even for an order exempt from the score."""
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
        counting = {pid for pid, r in prules.items() if r.counted}  # products whose rules count past orders
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
        # The person behind each account: accounts sharing a bound phone or linked by a code (core/links.py). When
        # no account of the batch has either (most batches), each is a person of its own: nothing to read or join.
        if any(f.phone or f.person for f in facts.values()):
            people = await links.people(uow.risk, {k: links.identity_of(b, facts.get(k)) for k, b in by_key.items()})
        else:
            people = {k: Person(k, [b]) for k, b in by_key.items()}
        quota_buyers = sorted({keys[i] for i, x in enumerate(intents) if x.product_id in counting}) if counting else []
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
        counted = sorted(counting)
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
            new_since = now - timedelta(minutes=policy.new_account_minutes)
            profiles = {k: scoring.profile(policy, by_key[k], facts.get(k, NO_FACTS), people[k], activity, banned,
                                           now, k, new_since) for k in scored}
        passes: set[str] | None = None
        cap = self.hold_cap() if self.hold_cap is not None else None
        # What this call already accepted counts like stored orders (a burst lands in one batch).
        batch_qty: dict[tuple[str, int], int] = {}
        batch_holds: dict[tuple[str, int], int] = {}
        batch_orders: dict[str, int] = {}
        out: list[StoreError | Assessment] = []
        challenges: list[tuple[int, Challenge, dict[str, Any]]] = []
        unusable = {pid for pid, r in prules.items() if r is NO_RULES and products[pid].rules}
        for i, x in enumerate(intents):
            key = keys[i]
            pid = x.product_id
            if pid in unusable:
                out.append(StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=products[pid].sku))
                continue
            rules = prules[pid]
            person = people[key]
            who, ids = person.who, person.accounts
            if rules is not NO_RULES:
                p = products[pid]
                counts = None
                if rules.counted:
                    day = total = holds = 0
                    for b in ids:
                        c = pcounts.get((b.key, p.id))
                        if c is not None:
                            day, total, holds = day + c.day_qty, total + c.total_qty, holds + c.open_holds
                    k = (who, pid)
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
            if key in scored:
                prof = profiles[key]
                room = None
                if x.holds and cap is not None:
                    if prof.open_holds >= cap:
                        out.append(StoreError(ErrorCode.HOLD_LIMIT, limit=cap))
                        continue
                    room = cap - prof.open_holds
                a = scoring.assess(policy, prof, x.amount, x.group, chats.get(x.group, 0) if x.group else 0,
                                   batch_orders, room)
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
                    challenges.append((i, *scoring.challenge(policy, x.buyer, now)))
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
            else:
                a = Assessment(0, ALLOW)
            if pid in counting:
                k = (who, pid)
                batch_qty[k] = batch_qty.get(k, 0) + x.qty
                batch_holds[k] = batch_holds.get(k, 0) + (1 if x.holds else 0)
            out.append(a)
        if challenges:
            if not preview:
                await uow.risk.add_challenges([ch for _, ch, _ in challenges], now)
            for i, ch, shown in challenges:
                out[i] = StoreError(ErrorCode.CHALLENGE_REQUIRED, token=ch.token, **shown)
        return out

    async def settle(self, uow: UnitOfWork, made: Sequence[tuple[Assessment, Order]], now: datetime) -> set[str]:
        """After the caller made the orders `screen` let through (same transaction): their scores are stored and
        those to review get the longer hold. Returns the ids of the orders held for review."""
        rows: list[OrderRisk] = []
        review_ids: list[str] = []
        stored: dict[int, dict[str, Any]] = {}  # each reason object's stored form by its id (most orders share one)
        for a, o in made:
            if a.decision == REVIEW:
                review_ids.append(o.id)
            if a.score > 0 or a.decision == REVIEW:
                reasons = []
                for x in a.reasons:
                    d = stored.get(id(x))
                    if d is None:
                        d = stored[id(x)] = _as_dict(x)
                    reasons.append(d)
                rows.append(OrderRisk(o.id, o.buyer, a.decision, a.score, reasons,
                                      "pending" if a.decision == REVIEW else "", now))
        if rows:
            await uow.risk.record(rows)
        if review_ids:
            await uow.risk.set_expiry(review_ids, now + timedelta(minutes=self.policy.review_hold_minutes))
        return set(review_ids)

