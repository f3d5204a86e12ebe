"""The `risk:` section: the points each signal of an order scores, the thresholds (challenge, review, refuse)
and the incoming flood limits. (Product sale rules are checked with the catalogue, config/settings/catalog.py.)"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.settings.fields import fail


class ValueStep(BaseModel):
    """One step of the order-value signal: the highest step the order's value passes scores its points."""

    model_config = ConfigDict(extra="forbid")

    over: int = Field(ge=0, description="an order worth more than this (minor units of `store.currency`) ...")
    points: int = Field(ge=0, description="... scores this many points")


class Risk(BaseModel):
    """The risk check of every order (core/risk/): points add up; the decision is taken on the total. See
    [Rules and risk](rules-and-risk.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="`false`: only the rules are checked")
    challenge_at: int = Field(30, ge=1, description="score from which an order is challenged (an in-chat question)")
    review_at: int = Field(60, ge=1, description="... held for a merchant's review")
    refuse_at: int = Field(90, ge=1, description="... refused (the three thresholds rise)")
    window_minutes: int = Field(10, ge=1, le=1440, description="the velocity window")
    buyer_orders: int = Field(5, ge=1, description="orders one account may place within the window for free")
    buyer_points: int = Field(30, ge=0, description="each more scores this")
    phone_orders: int = Field(8, ge=1, description="the same for all accounts of one person (sharing the bound "
                                                   "phone, or linked)")
    phone_points: int = Field(30, ge=0, description="each more scores this")
    chat_orders: int = Field(30, ge=1, description="the same for one group chat (a chat that is not the buyer's "
                                                   "private chat)")
    chat_points: int = Field(10, ge=0, description="each more scores this")
    abandoned: int = Field(3, ge=0, description="holds that lapsed unpaid in the last 24 h for free")
    abandoned_points: int = Field(15, ge=0, description="each more scores this")
    new_account_minutes: int = Field(10, ge=0, description="a buyer first seen this recently ...")
    new_account_points: int = Field(10, ge=0, description="... scores this")
    value_steps: list[ValueStep] = Field(default_factory=lambda: [
        ValueStep(over=50_000, points=10), ValueStep(over=100_000, points=20), ValueStep(over=300_000, points=40)],
        description="`{over: amount, points: n}` (minor units of `store.currency`): the highest step the order's "
                    "value passes")
    history_days: int = Field(90, ge=1, le=3650, description="each refund of the person's, and each problem they "
                                                             "reported (after-sales), in this many days ...")
    refund_points: int = Field(20, ge=0, description="... scores this")
    coupon_guess_points: int = Field(5, ge=0, description="each wrong coupon code the person typed in the last 24 "
                                                          "hours scores this (guessing codes; core/coupons.py)")
    accounts_per_phone: int = Field(3, ge=1, description="accounts bound to one phone for free")
    shared_phone_points: int = Field(20, ge=0, description="each more scores this")
    review_hold_minutes: int = Field(1440, ge=1, le=10080, description="how long stock stays held while an order "
                                                                       "waits for review (then it lapses like any "
                                                                       "hold)")
    challenge_minutes: int = Field(10, ge=1, le=1440, description="how long a challenge can be answered")
    pass_minutes: int = Field(60, ge=0, le=10080, description="after a right answer, no challenge for this long "
                                                              "(review and refusal still apply)")
    flood_per_minute: int = Field(60, ge=1, le=6000,
                                  description="incoming updates per user (Telegram user id, WeChat openid; "
                                              "merchants exempt) after the burst (core/flood.py)")
    flood_burst: int = Field(20, ge=1, le=1000, description="updates per user at once before `flood_per_minute` "
                                                            "applies")
    flood_max_delay_seconds: float = Field(5.0, ge=0, le=60,
                                           description="an update that comes too early waits up to this long for "
                                                       "its turn (slowed, in order); later ones are dropped and the "
                                                       "sender is told once to slow down. Payments and pre-checkout "
                                                       "queries are never held back")

    @model_validator(mode="after")
    def _check_order(self) -> Risk:
        if not self.challenge_at <= self.review_at <= self.refuse_at:
            fail((("review_at",), f"thresholds must rise: challenge_at ({self.challenge_at}) <= review_at "
                                   f"({self.review_at}) <= refuse_at ({self.refuse_at})"))
        return self
