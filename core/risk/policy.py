"""The risk policy: how many points each signal adds and which total challenges, sends to review or refuses (the
`risk:` section of the config, handed in by the composition root through `policy_from`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

ALLOW, CHALLENGE, REVIEW, REFUSE = "allow", "challenge", "review", "refuse"


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
    coupon_guess_points: int = 5  # each wrong coupon code typed within 24 h (core/coupons.py)
    accounts_per_phone: int = 3  # accounts sharing one phone for free; each more adds:
    shared_phone_points: int = 20
    review_hold_minutes: int = 1440  # how long stock stays held while an order waits for review
    challenge_minutes: int = 10  # how long a challenge can be answered
    pass_minutes: int = 60  # after a passed challenge, no challenge for this long (review/refuse still apply)

    def decision(self, score: int) -> str:
        if score >= self.refuse_at:
            return REFUSE
        if score >= self.review_at:
            return REVIEW
        if score >= self.challenge_at:
            return CHALLENGE
        return ALLOW

    def value_points(self, amount: int) -> int:
        """The points of the highest step `amount` is over (0 under every step). Called for every order."""
        best = 0
        for over, pts in self.value_steps:
            if amount > over and pts > best:
                best = pts
        return best


class SettingsSection(Protocol):
    """A validated settings section (a pydantic model, config/settings/)."""

    def model_dump(self) -> dict[str, Any]: ...


def policy_from(section: SettingsSection | Mapping[str, Any]) -> RiskPolicy:
    """A RiskPolicy from the validated `risk:` settings section (config.settings.Risk), or its keys and values."""
    data = dict(section) if isinstance(section, Mapping) else section.model_dump()
    steps = data.pop("value_steps", None)
    for key in [k for k in data if k.startswith("flood_")]:  # the incoming-update limit: core/flood.py
        data.pop(key)
    if steps is not None:
        data["value_steps"] = tuple(sorted((int(s["over"]), int(s["points"])) for s in steps))
    return RiskPolicy(**data)
