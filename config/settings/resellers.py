"""The resellers' sections: `resellers:` (wallet top-ups in the chat, the partial-stock wait, commissions, what B2B
and group orders skip of the checks) and `card_faces:` (each reseller's custom card face)."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.settings.fields import fail
from core.risk import EXEMPTIBLE


class TopupChoice(BaseModel):
    """One amount a reseller may top its wallet up by in the chat."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=1, le=100_000_000, description="credited, minor units of the reseller's currency (WeChat "
                                                          "Pay: CNY fen)")
    stars: int | None = Field(None, ge=1, le=100_000, description="its Telegram Stars price; none: not offered on "
                                                                  "Telegram (WeChat Pay only)")


class Resellers(BaseModel):
    """Reseller wallets paid in the chat, the partial-stock wait, commissions, and what B2B orders skip of the
    checks (core/resellers/batch.py); see [Resellers and the B2B API](resellers.md)."""

    model_config = ConfigDict(extra="forbid")

    topup_choices: list[TopupChoice] = Field(default_factory=list, max_length=8,
                                             description="amounts a reseller may top its wallet up by in the "
                                                         "chat, e.g. `{amount: 10000, stars: 700}`; empty: no "
                                                         "top-up buttons")
    topup_minutes: int = Field(15, ge=1, le=1440, description="a top-up invoice / QR code may be paid this long")
    wait_hours: float = Field(24, gt=0, le=720, description="product rule `partial: wait`: a B2B order still waiting "
                                                            "for stock after this is refunded to the wallet")
    commission_bp: int = Field(0, ge=0, le=10_000, description="commission on a referred customer's paid order, "
                                                               "basis points (1/100 %; 1000 = 10 %), rounded down "
                                                               "to the fen")
    commissions: dict[str, int] = Field(default_factory=dict, description="per reseller name its own rate in basis "
                                                                          "points, e.g. `{Acme: 1500}`")
    # Why the default: the risk score's signals describe a person in a chat (orders in ten minutes, a new account, a
    # large order), and a reseller's system places hundreds of large orders an hour from a prepaid wallet.
    api_exempt: list[str] = Field(default_factory=lambda: ["risk"], max_length=8,
                                  description="what B2B API orders skip of the product rules and risk every order "
                                              "passes, by name: `per_day`, `per_buyer`, `phone_required`, "
                                              "`regions`, `min_level`, `risk` (the score; bans still apply). "
                                              "Default: the score only (see [Rules and risk](rules-and-risk.md))")
    group_exempt: list[str] = Field(default_factory=list, max_length=8,
                                    description="the same for orders members place in a reseller's group chat "
                                                "(checked for the member)")

    @field_validator("api_exempt", "group_exempt", mode="before")
    @classmethod
    def _exempt(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            bad = [(i, x) for i, x in enumerate(value) if x not in EXEMPTIBLE]
            if bad:
                fail(*(((i,), f"{x!r} cannot be exempted (one of: {', '.join(EXEMPTIBLE)}; the sale window, "
                                "resellers_only and deliver_on_effective hold for every order)") for i, x in bad))
        return value

    @field_validator("commissions")
    @classmethod
    def _rates(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if not 0 <= v <= 10_000]
        if bad:
            fail(*(((k,), "basis points from 0 to 10000") for k in bad))
        return value


class CardFace(BaseModel):
    """A reseller's custom card face (定制卡面): its codes are also delivered drawn on this card (bots/cardface.py);
    see [Custom card faces](resellers.md#custom-card-faces). Keyed by the reseller's name in `card_faces:`;
    paths relative to the config file; files checked at start. Wins over `run.py reseller cardface`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    display_name: str = Field(min_length=1, max_length=32, description="the name drawn on the card")
    background: str = Field("#1F2937", description='the card\'s colour, `"#RRGGBB"`')
    background_image: str = Field("", description="PNG/JPEG, covers the card")
    logo: str = Field("", description="PNG (transparency kept), drawn top left, at most 88 px")
    font: str = Field("", description="a TTF/OTF with the name's glyphs (a CJK font for Chinese names: the built-in "
                                      'font has none); `""` = built in')

    @field_validator("background")
    @classmethod
    def _check_colour(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
            raise ValueError('must be a colour "#RRGGBB", e.g. "#1E3A8A"')
        return value.upper()
