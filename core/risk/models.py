"""What the risk check works with and records: an order to decide (`Intent`), a buyer as the check sees them
(`Profile`, `Activity`), its verdict (`Assessment`, `Reason`), the stored rows (`OrderRisk`, `Challenge`, `Ban`)
and what a merchant's /risk shows (`RiskReport`). Data only: no I/O, no decisions."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.models import Buyer
from core.risk.rules import BuyerFacts

BAN_KINDS = ("user", "phone", "payer")  # user: channel:id (a Telegram user id or a WeChat openid)


@dataclass(frozen=True, slots=True)
class Reason:
    signal: str  # velocity_buyer | velocity_phone | velocity_chat | abandoned | new_account | value | refunds |
    #              blacklist | shared_phone | coupon_guesses
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
    guesses: int = 0  # wrong coupon codes typed within 24 h (core/coupons.py)


NO_ACTIVITY = Activity()


@dataclass(slots=True)  # not frozen: one per buyer of every batch, and a frozen dataclass is 5x slower to make
class Profile:
    """One buyer as the risk check sees them in a batch (built once per buyer from the batch's reads; not changed
    after)."""

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
    guesses: int = 0  # wrong coupon codes of the person within 24 h


@dataclass(slots=True)  # not frozen: one per order of every batch (see Profile)
class Intent:
    """One order to decide on (`Guard.screen`), whichever channel it came from (not changed once made)."""

    buyer: Buyer  # whose order it is: the chat buyer, the group member, the reseller's api:<id>
    product_id: int
    qty: int
    amount: int  # what it is worth (minor units), for the value signal
    group: str = ""  # the group chat it was ordered in ("" for a private chat or the API)
    holds: bool = True  # False: paid at once from a wallet (no hold cap, no open_holds, no challenge or review)
    reseller: bool = False  # paid by a reseller's account: rule resellers_only lets it through
    exempt: frozenset[str] = frozenset()  # codes it skips (rules.py EXEMPTIBLE values; config resellers.*)


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
