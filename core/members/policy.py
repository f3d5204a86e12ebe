"""What the merchant configured for members (config `marketing.members`, converted by app/bootstrap.py): plain data,
so the core reads no config module."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

UNIT = 100  # minor units in one currency unit: points are earned per unit paid (1 CNY = 100 fen)


@dataclass(frozen=True, slots=True)
class Level:
    level: int
    name: dict[str, str]
    min_spend: int  # store currency, minor units
    discount_percent: int = 0
    perks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MallItem:
    sku: str  # reward "product": the catalogue product sold for points ("" for a coupon)
    points: int  # per unit
    reward: str = "product"  # "product" | "coupon": one new code of campaign `coupon` (core/members/coupons.py)
    coupon: str = ""  # the campaign's name (reward "coupon")


@dataclass(frozen=True, slots=True)
class MemberPolicy:
    levels: tuple[Level, ...] = ()  # ordered by level
    points_per_unit: int = 0
    points_days: int = 365
    mall: tuple[MallItem, ...] = ()
    referral_points: int = 0
    gift_points: int = 0
    gift_on: str = "start"  # start | purchase
    referral_coupon: str = ""  # a campaign whose new code rewards the referrer (with or instead of points)
    gift_coupon: str = ""  # a campaign whose new code is the new-buyer gift (with or instead of points)

    @property
    def points_life(self) -> timedelta:
        return timedelta(days=self.points_days)

    def level_for(self, spend: int) -> Level | None:
        """The highest level `spend` reaches (None: below every level)."""
        reached = [lv for lv in self.levels if spend >= lv.min_spend]
        return reached[-1] if reached else None

    def level(self, number: int) -> Level | None:
        return next((lv for lv in self.levels if lv.level == number), None)

    def next_level(self, number: int) -> Level | None:
        return next((lv for lv in self.levels if lv.level > number), None)

    def mall_item(self, sku: str) -> MallItem | None:
        return next((m for m in self.mall if m.reward == "product" and m.sku == sku), None)

    def mall_coupon(self, name: str) -> MallItem | None:
        return next((m for m in self.mall if m.reward == "coupon" and m.coupon == name), None)

    @property
    def referral_reward(self) -> bool:
        return bool(self.referral_points or self.referral_coupon)

    @property
    def gift(self) -> bool:
        return bool(self.gift_points or self.gift_coupon)

    @property
    def coupon_rewards(self) -> tuple[str, ...]:
        """The campaigns named as rewards (they need coupons on)."""
        names = [m.coupon for m in self.mall if m.reward == "coupon"] + [self.referral_coupon, self.gift_coupon]
        return tuple(n for n in names if n)

    def earned(self, amount: int) -> int:
        """Points an order paid `amount` (store currency, minor units) earns."""
        return amount * self.points_per_unit // UNIT if amount > 0 else 0
