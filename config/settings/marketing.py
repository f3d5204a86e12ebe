"""Promotions (`marketing:`): coupons, flash sales, member levels and points, referrals, group-buy
([Operating: promotions](operating.md#promotions)). Every price they make is decided by the server in the order
pipeline (core/promotions.py); nothing here is trusted from a button."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Each promotion's section is its own model below; they are filled in by the promotion's own change.


class Coupons(BaseModel):
    """Coupons (core/coupons.py)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class FlashSales(BaseModel):
    """Flash sales (core/flash_sales.py)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Members(BaseModel):
    """Member levels, points, referrals and the new-buyer gift (core/members/)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class GroupBuy(BaseModel):
    """Group-buy, 拼团 (core/group_buy.py)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Marketing(BaseModel):
    """What the shop's promotions do; each is off until configured or created by a merchant."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    coupons: Coupons = Field(default_factory=Coupons, description="coupons")
    flash_sales: FlashSales = Field(default_factory=FlashSales, description="flash sales")
    members: Members = Field(default_factory=Members,
                             description="member levels, points, referral rewards and the new-buyer gift")
    group_buy: GroupBuy = Field(default_factory=GroupBuy, description="group-buy (拼团)")
