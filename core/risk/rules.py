"""Sale rules: who may buy a product, how much and when (`rules:` on a catalogue product).

A product's rules are stored as a JSON dict on the product (products.rules). `parse_rules` turns that dict into a
`ProductRules` and names the key of anything wrong (the config validation and the merchant's `RiskDesk.set_rules` use
the same function); `normalize_rules` gives the dict to store. `check` is pure: the counts it needs are read by
`Guard.screen` (guard.py) in one set-based statement per batch, inside the write transaction. Every order goes
through that one function: chat orders (the reserve batch), B2B API and group orders (core/resellers/batch.py).

Every refusal is a StoreError(ErrorCode.RULE_REFUSED, rule=<code>, ...) whose message is `rules.refused.<code>`
(handlers/errors.py): the buyer reads which rule stopped the order, in their language.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from core.errors import ErrorCode, StoreError

# The rule codes a refusal can name (message keys rules.refused.<code>).
SALE_NOT_STARTED = "sale_not_started"
SALE_ENDED = "sale_ended"
PER_DAY = "per_day"
PER_BUYER = "per_buyer"
OPEN_HOLDS = "open_holds"
PHONE_REQUIRED = "phone_required"
REGION = "region"
MEMBER_LEVEL = "member_level"
RESELLERS_ONLY = "resellers_only"
RULE_CODES = (SALE_NOT_STARTED, SALE_ENDED, PER_DAY, PER_BUYER, OPEN_HOLDS, PHONE_REQUIRED, REGION, MEMBER_LEVEL,
              RESELLERS_ONLY)
RISK = "risk"  # not a rule: the risk score (scoring.py), exemptible like one

# What resellers' orders may be exempted from (config `resellers.api_exempt` / `resellers.group_exempt`), by the
# name the merchant writes -> the code `check` skips. Not here, so kept for every order: the sale window (a sale
# that has not started has not started for anyone), resellers_only (a wallet order is a reseller's) and
# deliver_on_effective (codes are not handed out before the goods start).
EXEMPTIBLE = {"per_day": PER_DAY, "per_buyer": PER_BUYER, "phone_required": PHONE_REQUIRED, "regions": REGION,
              "min_level": MEMBER_LEVEL, RISK: RISK}

KEYS = ("per_day", "per_buyer", "open_holds", "sale_start", "sale_end", "effective_from", "deliver_on_effective",
        "phone_required", "regions", "min_level", "resellers_only", "coupon_stacking", "partial")
PARTIAL = ("refuse", "partial", "wait")  # a B2B order larger than the stock (core/resellers/batch.py)


class RulesError(ValueError):
    """A rules dict that cannot be used; `key` names the rule (e.g. `regions.allow`)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True, slots=True)
class ProductRules:
    per_day: int | None = None  # units one buyer (all identities sharing a phone) may buy a day (jobs.timezone)
    per_buyer: int | None = None  # units one buyer may ever buy
    open_holds: int | None = None  # unpaid orders of this product one buyer may hold at once
    sale_start: datetime | None = None
    sale_end: datetime | None = None
    effective_from: datetime | None = None  # the goods start then (a membership from next month): shown, stored
    deliver_on_effective: bool = False  # codes paid before effective_from are sent (and shown) from then on
    phone_required: bool = False
    regions_allow: tuple[str, ...] = ()  # calling codes (or longer prefixes) of the bound phone, digits only
    regions_block: tuple[str, ...] = ()
    min_level: int = 0
    resellers_only: bool = False
    coupon_stacking: bool = True  # used by coupons (marketing): may a coupon be combined with other discounts
    partial: str = "refuse"  # B2B orders larger than the stock: refuse | partial (deliver, refund the rest) | wait

    @property
    def counted(self) -> bool:
        """True when checking needs the buyer's past orders of this product (one query per batch)."""
        return self.per_day is not None or self.per_buyer is not None or self.open_holds is not None

    def delivery_due(self, paid_at: datetime) -> datetime | None:
        """When codes paid at `paid_at` may be sent and shown: None for at once."""
        if self.deliver_on_effective and self.effective_from is not None and self.effective_from > paid_at:
            return self.effective_from
        return None

    @property
    def needs_phone(self) -> bool:
        return self.phone_required or bool(self.regions_allow or self.regions_block)


NO_RULES = ProductRules()


@dataclass(frozen=True, slots=True)
class BuyerFacts:
    """What the rules and the risk check know about a buyer (the customers row)."""

    phone: str = ""  # E.164 digits without '+', "" when none is bound
    level: int = 0
    reseller: bool = False
    created_at: datetime | None = None  # first contact; None: not stored yet (a new customer)
    person: str = ""  # the person id of linked accounts (core/links.py), "" when never linked
    link_set: str = ""  # the live link it belongs to ("" when not linked now): shares history and the phone


@dataclass(frozen=True, slots=True)
class Counts:
    """A buyer's (and their linked identities') orders of one product that still count."""

    day_qty: int = 0
    total_qty: int = 0
    open_holds: int = 0


# -- parsing ----------------------------------------------------------------------------------------------

def _int(data: Mapping[str, Any], key: str, minimum: int) -> int | None:
    v = data.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RulesError(key, "must be a whole number")
    if v < minimum:
        raise RulesError(key, f"must be at least {minimum}")
    return v


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    v = data.get(key, default)
    if not isinstance(v, bool):
        raise RulesError(key, "must be true or false")
    return v


def _when(data: Mapping[str, Any], key: str) -> datetime | None:
    v = data.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        dt = v
    elif isinstance(v, date):
        dt = datetime.combine(v, time())
    elif isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise RulesError(key, "must be an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T10:00:00+08:00"
                             ) from None
    else:
        raise RulesError(key, "must be an ISO 8601 date or time")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def calling_prefix(value: object, key: str) -> str:
    text = str(value).strip().lstrip("+")
    if text.startswith("00"):
        text = text[2:]
    if not re.fullmatch(r"[1-9]\d{0,5}", text):
        raise RulesError(key, f"{value!r} is not a calling code (digits, e.g. 86 or +852)")
    return text


def _codes(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    v = data.get(key)
    if v is None:
        return ()
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list):
        raise RulesError(f"regions.{key}", "must be a list of calling codes, e.g. [86, 852]")
    return tuple(dict.fromkeys(calling_prefix(x, f"regions.{key}") for x in v))


def parse_rules(data: Mapping[str, Any] | None) -> ProductRules:
    """A product's rules from their dict (config or stored); RulesError names the key of the first problem."""
    if not data:
        return NO_RULES
    if not isinstance(data, Mapping):
        raise RulesError("rules", "must be a mapping of rule names to values")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise RulesError(str(unknown[0]), f"unknown rule (rules: {', '.join(KEYS)})")
    regions = data.get("regions") or {}
    if not isinstance(regions, Mapping):
        raise RulesError("regions", "must be a mapping with allow and/or block lists")
    bad = [k for k in regions if k not in ("allow", "block")]
    if bad:
        raise RulesError(f"regions.{bad[0]}", "unknown key (allow, block)")
    rules = ProductRules(
        per_day=_int(data, "per_day", 1), per_buyer=_int(data, "per_buyer", 1),
        open_holds=_int(data, "open_holds", 1), sale_start=_when(data, "sale_start"),
        sale_end=_when(data, "sale_end"), effective_from=_when(data, "effective_from"),
        deliver_on_effective=_bool(data, "deliver_on_effective", False),
        phone_required=_bool(data, "phone_required", False), regions_allow=_codes(regions, "allow"),
        regions_block=_codes(regions, "block"), min_level=_int(data, "min_level", 0) or 0,
        resellers_only=_bool(data, "resellers_only", False), coupon_stacking=_bool(data, "coupon_stacking", True),
        partial=_partial(data),
    )
    if rules.deliver_on_effective and rules.effective_from is None:
        raise RulesError("deliver_on_effective", "needs effective_from (the date to deliver on)")
    if rules.sale_start and rules.sale_end and rules.sale_end <= rules.sale_start:
        raise RulesError("sale_end", "must be after sale_start")
    if rules.per_day and rules.per_buyer and rules.per_day > rules.per_buyer:
        raise RulesError("per_day", f"must not be more than per_buyer ({rules.per_buyer})")
    if rules.regions_allow and rules.regions_block:
        raise RulesError("regions", "give allow or block, not both")
    return rules


def normalize_rules(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dict to store for a product's rules (validated; times as ISO 8601 in UTC; defaults left out)."""
    r = parse_rules(data)
    out: dict[str, Any] = {}
    for key in ("per_day", "per_buyer", "open_holds"):
        if getattr(r, key) is not None:
            out[key] = getattr(r, key)
    for key in ("sale_start", "sale_end", "effective_from"):
        v = getattr(r, key)
        if v is not None:
            out[key] = v.astimezone(UTC).isoformat()
    if r.deliver_on_effective:
        out["deliver_on_effective"] = True
    if r.phone_required:
        out["phone_required"] = True
    if r.regions_allow or r.regions_block:
        out["regions"] = {"allow": list(r.regions_allow)} if r.regions_allow else {"block": list(r.regions_block)}
    if r.min_level:
        out["min_level"] = r.min_level
    if r.resellers_only:
        out["resellers_only"] = True
    if not r.coupon_stacking:
        out["coupon_stacking"] = False
    if r.partial != "refuse":
        out["partial"] = r.partial
    return out


def _partial(data: Mapping[str, Any]) -> str:
    v = data.get("partial", "refuse")
    if v not in PARTIAL:
        raise RulesError("partial", f"must be one of {', '.join(PARTIAL)}")
    return str(v)


_PARSED: dict[str, ProductRules] = {}


def rules_of(stored: Mapping[str, Any] | None) -> ProductRules:
    """Parsed rules of a stored product (cached by content: a batch reads the same few products again and
    again). A stored dict that no longer parses is treated as "no rules" only if empty; otherwise it raises."""
    if not stored:
        return NO_RULES
    key = repr(sorted(stored.items()))
    hit = _PARSED.get(key)
    if hit is None:
        if len(_PARSED) > 1024:
            _PARSED.clear()
        hit = _PARSED[key] = parse_rules(stored)
    return hit


# -- phones -------------------------------------------------------------------------------------------------

# E.164 country calling codes are prefix-free: 1 and 7 are the one-digit codes, these the two-digit ones, and
# every other code has three digits.
_TWO_DIGIT = frozenset([
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
    "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
    "86", "90", "91", "92", "93", "94", "95", "98"
])


def normalize_phone(raw: str) -> str | None:
    """International phone number as digits without '+' (E.164), or None when it is not one. A number needs its
    country code ('+86 138 0013 8000', '008613800138000' and '8613800138000' all give '8613800138000')."""
    text = re.sub(r"[\s().-]", "", raw or "")
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not re.fullmatch(r"[1-9]\d{6,14}", text):
        return None
    return text


def calling_code(phone: str) -> str:
    """The country calling code of a normalized phone number ('8613800138000' -> '86')."""
    if phone[:1] in ("1", "7"):
        return phone[:1]
    return phone[:2] if phone[:2] in _TWO_DIGIT else phone[:3]


# -- the check ----------------------------------------------------------------------------------------------

def refuse(rule: str, **params: Any) -> StoreError:
    return StoreError(ErrorCode.RULE_REFUSED, rule=rule, **params)


def exemptions(names: Iterable[str]) -> frozenset[str]:
    """The codes `check` (and the risk check, for "risk") skip for the EXEMPTIBLE names given; ValueError names
    one that is not exemptible."""
    out = set()
    for name in names:
        if name not in EXEMPTIBLE:
            raise ValueError(f"{name!r} cannot be exempted (one of: {', '.join(EXEMPTIBLE)})")
        out.add(EXEMPTIBLE[name])
    return frozenset(out)


def check(rules: ProductRules, qty: int, now: datetime, buyer: BuyerFacts, counts: Counts | None,
          skip: frozenset[str] = frozenset()) -> StoreError | None:
    """The first rule the order breaks, as the error the buyer is shown; None when every rule allows it.
    `counts` must include the orders earlier in the same batch (the caller adds them as it accepts orders).
    `skip`: rule codes this order is exempt from (see EXEMPTIBLE; OPEN_HOLDS for an order that holds nothing)."""
    if rules is NO_RULES:
        return None
    if rules.sale_start is not None and now < rules.sale_start:
        return refuse(SALE_NOT_STARTED, start=rules.sale_start.strftime("%Y-%m-%d %H:%M UTC"))
    if rules.sale_end is not None and now >= rules.sale_end:
        return refuse(SALE_ENDED, end=rules.sale_end.strftime("%Y-%m-%d %H:%M UTC"))
    if rules.resellers_only and not buyer.reseller:
        return refuse(RESELLERS_ONLY)
    if buyer.level < rules.min_level and MEMBER_LEVEL not in skip:
        return refuse(MEMBER_LEVEL, level=rules.min_level)
    regions = bool(rules.regions_allow or rules.regions_block) and REGION not in skip
    if ((rules.phone_required and PHONE_REQUIRED not in skip) or regions) and not buyer.phone:
        return refuse(PHONE_REQUIRED)
    if regions and rules.regions_allow and not any(buyer.phone.startswith(c) for c in rules.regions_allow):
        return refuse(REGION, prefix="+" + calling_code(buyer.phone))
    if regions and rules.regions_block and any(buyer.phone.startswith(c) for c in rules.regions_block):
        return refuse(REGION, prefix="+" + calling_code(buyer.phone))
    c = counts or Counts()
    if rules.open_holds is not None and c.open_holds >= rules.open_holds and OPEN_HOLDS not in skip:
        return refuse(OPEN_HOLDS, limit=rules.open_holds)
    if rules.per_buyer is not None and c.total_qty + qty > rules.per_buyer and PER_BUYER not in skip:
        return refuse(PER_BUYER, limit=rules.per_buyer, left=max(0, rules.per_buyer - c.total_qty))
    if rules.per_day is not None and c.day_qty + qty > rules.per_day and PER_DAY not in skip:
        return refuse(PER_DAY, limit=rules.per_day, left=max(0, rules.per_day - c.day_qty))
    return None
