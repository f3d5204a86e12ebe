"""Promotions (`marketing:`): coupons, flash sales, member levels and points, referrals, group-buy
([Operating: promotions](operating.md#promotions)). Every price they make is decided by the server in the order
pipeline (core/promotions.py); nothing here is trusted from a button."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.settings.fields import fail

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


class GroupOffer(BaseModel):
    """One product's group price: `{sku: GAME, price: 2000, stars: 130, size: 3, hours: 24}`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sku: str = Field(description="a `code` or `bundle` product of the catalogue")
    price: int = Field(ge=0, description="the group price of one, minor units of `store.currency`")
    stars: int | None = Field(None, ge=1, description="the group price in Telegram Stars; none: the product's Stars "
                                                      "price scaled like the amount")
    size: int = Field(ge=2, le=100, description="members who must pay for the group to complete (the opener "
                                                "included)")
    hours: int = Field(ge=1, le=720, description="hours from the opening for the group to fill; then it fails and "
                                                 "every paid member is refunded")


class GroupBuy(BaseModel):
    """Group-buy, 拼团 (core/group_buy.py): a buyer opens a group at the group price, others join by the shared link;
    codes are delivered when `size` members paid within `hours`, else everyone is refunded by the `group-buy-expiry`
    job ([Group-buy](promotions.md#group-buy))."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    offers: list[GroupOffer] = Field(default_factory=list, description="the products with a group price, one entry "
                                                                       "each; none: no group-buy")
    expiry_seconds: float = Field(60, ge=5, description="how often the `group-buy-expiry` job looks for groups whose "
                                                        "time ran out")

    @model_validator(mode="after")
    def _one_offer_a_product(self) -> GroupBuy:
        seen: set[str] = set()
        for i, offer in enumerate(self.offers):
            if offer.sku in seen:
                fail((("offers", i, "sku"), f"{offer.sku!r} has a group price already"))
            seen.add(offer.sku)
        return self


class Marketing(BaseModel):
    """What the shop's promotions do; each is off until configured or created by a merchant."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    coupons: Coupons = Field(default_factory=Coupons, description="coupons")
    flash_sales: FlashSales = Field(default_factory=FlashSales, description="flash sales")
    members: Members = Field(default_factory=Members,
                             description="member levels, points, referral rewards and the new-buyer gift")
    group_buy: GroupBuy = Field(default_factory=GroupBuy, description="group-buy (拼团)")
