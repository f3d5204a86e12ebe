"""Promotions (`marketing:`): coupons, flash sales, member levels and points, referrals, group-buy
([Promotions](promotions.md)). Every price they make is decided by the server in the order
pipeline (core/promotions.py); nothing here is trusted from a button."""
from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from config.settings.fields import Localized, fail

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


class MemberLevel(BaseModel):
    """One member level: reached by cumulative spend, with its discount and perks."""

    model_config = ConfigDict(extra="forbid")

    level: int = Field(ge=1, le=99, description="the level's number (what the `min_level` rule and `/broadcast "
                                                "level=N` compare with); higher is better")
    name: Localized = Field(description="its name, a string or a per-language map `{en: Gold, zh_CN: 黄金会员}`")
    min_spend: int = Field(ge=0, description="cumulative spend that reaches it (store currency, minor units; "
                                             "refunded orders do not count; linked accounts count together)")
    discount_percent: int = Field(0, ge=0, le=90, description="percent off the listed price of every order")
    perks: Localized = Field(default_factory=dict, description="what else it brings, shown in the profile")


class MallItem(BaseModel):
    """A product of the points mall (积分商城): bought with points only."""

    model_config = ConfigDict(extra="forbid")

    sku: str = Field("", description="the catalogue product's SKU (its codes are delivered as usual); reward "
                                     "`product` only")
    points: int = Field(ge=1, description="its price in points, per unit")
    reward: str = Field("product", description="`product` (the SKU's codes) or `coupon` (one new single-use code of "
                                               "the campaign `coupon`, kept in the buyer's My coupons)")
    coupon: str = Field("", description="reward `coupon`: the name of a single-use campaign (`run.py coupons "
                                        "generate`); it must be active when bought")

    @field_validator("reward")
    @classmethod
    def _reward(cls, value: str) -> str:
        if value not in ("product", "coupon"):
            raise ValueError("reward is product or coupon")
        return value

    @field_validator("coupon")
    @classmethod
    def _coupon(cls, value: str) -> str:
        return value.strip().upper()

    @model_validator(mode="after")
    def _what(self) -> MallItem:
        if self.reward == "product" and (not self.sku or self.coupon):
            fail((("sku",), "a product reward names its sku (and no coupon)"))
        if self.reward == "coupon" and (not self.coupon or self.sku):
            fail((("coupon",), "a coupon reward names its coupon campaign (and no sku)"))
        return self


class Members(BaseModel):
    """Member levels, points, referrals and the new-buyer gift (core/members/)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    levels: list[MemberLevel] = Field(default_factory=list, description="member levels (会员等级) by cumulative "
                                      "spend; none: no levels")
    points_per_unit: int = Field(0, ge=0, description="points earned per currency unit paid (100 minor units: 1 "
                                 "CNY); Stars orders earn by their price in the store currency; 0: no points earned")
    points_days: int = Field(365, ge=1, description="days after which earned points expire")
    mall: list[MallItem] = Field(default_factory=list, description="the points mall (积分商城): products priced in "
                                 "points")
    referral_points: int = Field(0, ge=0, description="points for the referrer when a referred buyer's first paid "
                                 "order is delivered (邀请有礼); 0: no referral rewards")
    gift_points: int = Field(0, ge=0, description="the new-buyer gift (新人礼包) in points, once per person; 0: none")
    gift_on: str = Field("start", description="when the new-buyer gift is given: `start` (first /start) or "
                         "`purchase` (first paid order)")
    referral_coupon: str = Field("", description="a single-use coupon campaign: the referrer also (or, with "
                                 "`referral_points: 0`, only) gets one new code of it, once per referred person")
    gift_coupon: str = Field("", description="a single-use coupon campaign: the new-buyer gift also (or, with "
                             "`gift_points: 0`, only) is one new code of it, once per person")

    @field_validator("referral_coupon", "gift_coupon")
    @classmethod
    def _campaign(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("gift_on")
    @classmethod
    def _gift_on(cls, value: str) -> str:
        if value not in ("start", "purchase"):
            raise ValueError("gift_on is start or purchase")
        return value

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[MemberLevel]) -> list[MemberLevel]:
        numbers = [lv.level for lv in value]
        if len(set(numbers)) != len(numbers):
            raise ValueError("two levels with the same number")
        ordered = sorted(value, key=lambda lv: lv.level)
        spends = [lv.min_spend for lv in ordered]
        if spends != sorted(spends) or len(set(spends)) != len(spends):
            raise ValueError("a higher level needs a higher min_spend")
        return ordered

    @field_validator("mall")
    @classmethod
    def _mall(cls, value: list[MallItem]) -> list[MallItem]:
        skus = [m.sku for m in value if m.reward == "product"]
        if len(set(skus)) != len(skus):
            raise ValueError("a SKU twice in the mall")
        names = [m.coupon for m in value if m.reward == "coupon"]
        if len(set(names)) != len(names):
            raise ValueError("a coupon twice in the mall")
        return value


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
