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
    sku: str
    points: int  # per unit
    reward: str = "product"  # "coupon": the seam for coupons in the mall (a later change fills it)


@dataclass(frozen=True, slots=True)
class MemberPolicy:
    levels: tuple[Level, ...] = ()  # ordered by level
    points_per_unit: int = 0
    points_days: int = 365
    mall: tuple[MallItem, ...] = ()
    referral_points: int = 0
    gift_points: int = 0
    gift_on: str = "start"  # start | purchase

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
        return next((m for m in self.mall if m.sku == sku), None)

    def earned(self, amount: int) -> int:
        """Points an order paid `amount` (store currency, minor units) earns."""
        return amount * self.points_per_unit // UNIT if amount > 0 else 0
