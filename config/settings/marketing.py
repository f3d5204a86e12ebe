"""Promotions (`marketing:`): coupons, flash sales, member levels and points, referrals, group-buy
([Promotions](promotions.md)). Every price they make is decided by the server in the order
pipeline (core/promotions.py); nothing here is trusted from a button."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Each promotion's section is its own model below; they are filled in by the promotion's own change.


class Coupons(BaseModel):
    """Coupons (core/coupons.py): campaigns are made by merchants (`run.py coupons`, `/coupons`); this is how they
    behave."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    enabled: bool = Field(True, description="buyers may enter coupon codes (off: the chat's action and the "
                                            "merchants' commands are gone, and every code is refused as unknown)")
    max_guesses_per_hour: int = Field(10, ge=1, le=1000, description="wrong codes a buyer may type an hour; then "
                                      "every code is refused until the hour is over (each wrong one also raises the "
                                      "buyer's risk score: `risk.coupon_guess_points`)")
    code_length: int = Field(10, ge=8, le=32, description="characters of each generated single-use code")
    alphabet: str = Field("ABCDEFGHJKMNPQRSTVWXYZ23456789", min_length=16, pattern=r"^[A-Z0-9]+$",
                          description="characters of generated codes (upper-case letters and digits; the default "
                                      "leaves out look-alikes 0/O, 1/I/L and U)")


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
