"""Promotions (`marketing:`): coupons, flash sales, member levels and points, referrals, group-buy
([Operating: promotions](operating.md#promotions)). Every price they make is decided by the server in the order
pipeline (core/promotions.py); nothing here is trusted from a button."""
from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Each promotion's section is its own model below; they are filled in by the promotion's own change.


class Coupons(BaseModel):
    """Coupons (core/coupons.py)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class FlashSale(BaseModel):
    """One flash sale: a product at a price of its own between `starts` and `ends`, at most `units` units, at most
    `per_buyer` to one person (linked accounts are one person)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sku: str = Field(description="the product (its SKU in the catalogue)", min_length=1)
    price: int = Field(description="the flash price per unit, minor units of the store currency (fen)", ge=0)
    stars: int | None = Field(None, description="the flash price in Telegram Stars per unit (default: the "
                                                "product's Stars price scaled like the amount)", gt=0)
    units: int = Field(description="units on sale at the flash price (the cap; exact however many buy at once)",
                       gt=0)
    per_buyer: int = Field(1, description="units one buyer may have at the flash price", gt=0)
    starts: AwareDatetime = Field(description="when the sale starts, with its zone (2026-12-12T20:00:00+08:00)")
    ends: AwareDatetime = Field(description="when it ends; unsold units are back at the ordinary price")

    @model_validator(mode="after")
    def _window(self) -> FlashSale:
        if self.ends <= self.starts:
            raise ValueError(f"flash sale of {self.sku}: ends must be after starts")
        if self.per_buyer > self.units:
            raise ValueError(f"flash sale of {self.sku}: per_buyer is more than units")
        return self


class FlashSales(BaseModel):
    """Flash sales (core/flash_sales.py); merchants also make them in the chat (/flash)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sales: list[FlashSale] = Field(default_factory=list, description="the flash sales of the config: each made "
                                   "once at start (by SKU and start time), changed when its line changes, ended "
                                   "when its line is removed")


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
