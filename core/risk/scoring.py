"""Scoring: the points one order gets from what the batch's reads found about its buyer (pure: no I/O).

Signals (points add up; thresholds in `RiskPolicy`): order velocity per buyer, per person (all accounts sharing
the bound phone or linked by a code) and per group chat within `window_minutes`; holds that lapsed unpaid in the
last 24 h; a new account; the order's value (steps: the higher, the more points); refunds and problem reports
(after-sales `report` entries of the buyer: bad codes claimed) in the last `history_days`; wrong coupon codes
typed in the last 24 h (`coupon_miss` audit entries, core/coupons.py); blacklist hits (user
id/openid, phone, payer id of any account of the person: refused); many accounts sharing one phone. `challenge`
makes the question a challenged buyer answers.
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from core.links import Person
from core.models import Buyer
from core.risk.models import NO_ACTIVITY, Activity, Assessment, Challenge, Profile, Reason
from core.risk.policy import RiskPolicy
from core.risk.rules import BuyerFacts

_NEW: dict[int, Reason] = {}  # the new_account reason per point value: one object, so its stored dict is cached


def profile(policy: RiskPolicy, b: Buyer, f: BuyerFacts, person: Person, activity: Mapping[str, Activity],
            banned: set[tuple[str, str]], now: datetime, key: str | None = None,
            new_since: datetime | None = None) -> Profile:
    """What the risk check knows about one buyer in this batch (from the batch's reads; no I/O). `new_since`: when
    an account first seen after it is new (now - new_account_minutes; a batch works it out once)."""
    key = key or b.key
    own = activity.get(key, NO_ACTIVITY)
    ids = person.accounts
    if len(ids) <= 1:
        recent, abandoned, refunds, guesses = own.recent, own.abandoned, own.refunds, own.guesses
    else:
        acts = [activity.get(x.key, NO_ACTIVITY) for x in ids]
        recent = sum(a.recent for a in acts)
        abandoned = sum(a.abandoned for a in acts)
        refunds = sum(a.refunds for a in acts)
        guesses = sum(a.guesses for a in acts)
    hits: tuple[str, ...] = ()
    if banned:
        keys = [key] if len(ids) <= 1 else [x.key for x in ids]
        phones = {f.phone, person.phone, *person.phones} - {""}
        hits = tuple(kind for kind, values in (("user", keys), ("payer", keys), ("phone", phones))
                     if any((kind, v) in banned for v in values))
    if new_since is None:
        new_since = now - timedelta(minutes=policy.new_account_minutes)
    created = f.created_at
    new = created is None or created > new_since  # now - created < new_account_minutes
    phone = person.phone or f.phone
    accounts = (person.bound or 1) if phone else 0
    return Profile(key, person.who, phone, own.recent, recent, abandoned, refunds, own.open_holds, accounts, hits,
                   new, guesses)


def assess(policy: RiskPolicy, prof: Profile, amount: int, group: str, group_orders: int, batch: Mapping[str, int],
           room: int | None = None) -> Assessment:
    """Score one request (no I/O). `group`: the group chat it came from ("" for a private chat); `room`: the
    holds the buyer may still open: requests of one buyer in a batch beyond it are refused by the hold cap
    (or stand in for one that failed), so they never count as velocity. Called for every order of a batch: kept
    to plain comparisons (no reason is made for a signal that adds nothing)."""
    reasons: list[Reason] = []
    if prof.hits:
        reasons.append(Reason("blacklist", policy.refuse_at, ",".join(prof.hits)))
    in_batch = batch.get(prof.key, 0) if batch else 0
    if room is not None and in_batch > room:
        in_batch = room
    n = prof.recent + in_batch + 1
    if n > policy.buyer_orders:
        reasons.append(Reason("velocity_buyer", policy.buyer_points * (n - policy.buyer_orders),
                              f"{n}/{policy.window_minutes}min"))
    if prof.who != prof.key:  # a person: a bound phone, or accounts linked by a code (one signal for both)
        n = prof.phone_recent + batch.get(prof.who, 0) + 1
        if n > policy.phone_orders:
            reasons.append(Reason("velocity_phone", policy.phone_points * (n - policy.phone_orders),
                                  f"{n}/{policy.window_minutes}min"))
    if prof.phone and prof.accounts > policy.accounts_per_phone:
        reasons.append(Reason("shared_phone", policy.shared_phone_points * (prof.accounts - policy.accounts_per_phone),
                              str(prof.accounts)))
    if group:
        n = group_orders + batch.get("chat:" + group, 0) + 1
        if n > policy.chat_orders:
            reasons.append(Reason("velocity_chat", policy.chat_points * (n - policy.chat_orders),
                                  f"{n}/{policy.window_minutes}min"))
    if prof.abandoned > policy.abandoned:
        reasons.append(Reason("abandoned", policy.abandoned_points * (prof.abandoned - policy.abandoned),
                              str(prof.abandoned)))
    if prof.new and policy.new_account_points:
        reasons.append(_NEW.get(policy.new_account_points) or _NEW.setdefault(
            policy.new_account_points, Reason("new_account", policy.new_account_points)))
    if policy.value_steps:
        value = policy.value_points(amount)
        if value:
            reasons.append(Reason("value", value, str(amount)))
    if prof.refunds and policy.refund_points:
        reasons.append(Reason("refunds", policy.refund_points * prof.refunds, str(prof.refunds)))
    if prof.guesses and policy.coupon_guess_points:
        reasons.append(Reason("coupon_guesses", policy.coupon_guess_points * prof.guesses, str(prof.guesses)))
    if not reasons:
        return Assessment(0, policy.decision(0), reasons)
    score = 0
    for x in reasons:
        score += x.points
    return Assessment(score, policy.decision(score), [x for x in reasons if x.points])


def challenge(policy: RiskPolicy, buyer: Buyer, now: datetime) -> tuple[Challenge, dict[str, Any]]:
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
                   now + timedelta(minutes=policy.challenge_minutes))
    return ch, {"question": f"{a} + {b}", "options": [str(x) for x in shown],
                "minutes": policy.challenge_minutes}

