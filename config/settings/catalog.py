"""The catalogue: one `catalog:` entry per product (kind, prices, quantities, sale rules, where it is supplied
from), with its automatic `restock` and its after-sales reissue policy (`aftersales`)."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.settings.fields import Localized, fail, num_to_str
from core.risk import RulesError, normalize_rules

_SKU = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Restock(BaseModel):
    """Automatic restock of a `code` pool (the `restock` job, see [Restock](operating.md#restock)):
    `{below: N, up_to: M, supplier: X, daily_budget: Y}`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    below: int = Field(ge=1, description="when fewer than `below` codes are available, buy `up_to − available`")
    up_to: int = Field(ge=1, description="the level a restock buys up to (at least `below`)")
    supplier: str = Field("", description="a name under `suppliers:`; `\"\"`: the product's `supplier`. What is "
                                          "bought is the product's `supplier_sku` (default: its `sku`) at its `cost` "
                                          "(default: the supplier's listed price)")
    daily_budget: int = Field(ge=0, description="most spent on this product's restock a day (`jobs.timezone`'s "
                                                "day), minor units of `store.currency`")

    @model_validator(mode="after")
    def _check_levels(self) -> Restock:
        if self.up_to < self.below:
            fail((("up_to",), f"must be at least below ({self.below})"))
        return self


class Aftersales(BaseModel):
    """When a buyer's problem report is answered by a new code at once (core/aftersales/tickets.py ReissuePolicy); see
    [Report a problem](aftersales.md#report-a-problem)."""

    model_config = ConfigDict(extra="forbid")

    auto: bool = Field(True, description="automatic reissue on or off (off: every report is a ticket)")
    reissues_per_order: int = Field(1, ge=0, description="how many times one order may be reissued automatically")
    window_hours: int = Field(24, ge=0, description="hours after delivery a report may be reissued automatically")
    max_reports: int = Field(2, ge=0, description="a clean history: fewer reports than this by the buyer in the "
                                                  "last 30 days (this one not counted)")


class Images(BaseModel):
    """Product pictures (`catalog[].image` and the console's upload), checked before they are kept: PNG, JPEG, WebP
    or GIF, re-encoded without their metadata; see [Images](storefront.md#images)."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(1024 * 1024, ge=1024, le=16 * 1024 * 1024,
                           description="largest picture file accepted, in bytes (default 1 MiB)")
    max_side: int = Field(4096, ge=16, le=8192, description="widest and highest picture accepted, in pixels (read "
                                                            "from the file's header before it is decoded)")


class BundlePart(BaseModel):
    """One part of a `bundle` product: `{sku: GAME, qty: 1}`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sku: str = Field(pattern=_SKU, description="a `code` product of the catalogue (its pool gives the codes)")
    qty: int = Field(1, ge=1, le=100, description="codes of that product in one bundle")


class Product(BaseModel):
    """The products, applied at every start by `sku`: created or updated; a product no longer listed is taken
    off sale but never deleted (its orders, codes and history stay; listing it again puts it back). Products
    made with the merchant command `/product new` are never taken off sale by this list."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sku: str = Field(pattern=_SKU, description="`A-Z a-z 0-9 _ . -`, up to 64")
    title: Localized = Field(description="a string or a per-language map `{en: ..., zh_CN: ...}`")
    description: Localized = Field(default_factory=dict, description="string or per-language map")
    category: Localized = Field(default_factory=dict, description="string or per-language map")
    price: int = Field(ge=0, description="minor units of `store.currency`")
    stars: int | None = Field(None, ge=1, description="price in Telegram Stars; none: not sold in Telegram")
    kind: Literal["code", "reusable", "supplier", "topup", "bundle"] = Field(
        "code", description="`code` (unique codes, each sold once), `reusable` (one code sold to many; quantity 1), "
                            "`supplier` (bought from a supplier when sold), `topup` (the supplier recharges the "
                            "buyer's account; quantity 1): see [Suppliers](suppliers.md); `bundle` (the codes of "
                            "several `code` products together, all or none: `bundle:`; see "
                            "[Bundles](promotions.md#bundles))")
    bundle: list[BundlePart] = Field(default_factory=list,
                                     description="kind `bundle`: its parts, `[{sku: GAME, qty: 1}, {sku: VIP, qty: "
                                                 "2}]`; each a `code` product of this catalogue")
    min_qty: int = Field(1, ge=1, description="least quantity per order")
    max_qty: int = Field(10, ge=1, description="most per order (chat buyers; a B2B order takes up to 1,000)")
    hold_minutes: int | None = Field(None, ge=1, le=1440, description="per-product hold; none: "
                                                                         "`store.hold_minutes`")
    active: bool = Field(True, description="on sale")
    rules: dict[str, Any] = Field(default_factory=dict,
                                  description="sale rules: limits per person, sale window, phone, region, member "
                                              "level (keys: [Product rules](rules-and-risk.md#product-rules))")
    restock: Restock | None = Field(None, description="automatic restock of a `code` pool from a supplier; "
                                                         "none: off")
    supplier: str = Field("", description="a name under `suppliers:`; required for kinds `supplier` and `topup`, "
                                          "optional for `code` (where `restock` buys)")
    supplier_sku: str = Field("", description="the product's SKU at the supplier; required with `supplier` for "
                                              "those kinds")
    cost: int | None = Field(None, ge=0, description="what one costs the shop (minor units of "
                                                        "`store.currency`): the reports' cost of goods and "
                                                        "margin, restock budgets; none: the reports price it by "
                                                        "its restock purchases")
    account_pattern: str = Field("", description="`topup`: a regular expression the account must match, e.g. "
                                                 "`^1[3-9]\\d{9}$` (a mainland mobile number)")
    aftersales: Aftersales | None = Field(None, description="buyers' problem reports answered by an automatic "
                                                               "reissue; none: the defaults of its section")
    image: str = Field("", description="a picture file (PNG, JPEG, WebP or GIF; limits: `store.images`), relative "
                                       "to the config file's folder, checked at every start and shown in the Mini "
                                       "App; \"\": none from the config (one uploaded in the console stays)")

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: Any) -> Any:
        # Sale rules (core/risk/rules.py): validated here, stored normalized (JSON) with the product.
        try:
            return normalize_rules(value or {})
        except RulesError as exc:
            fail(((exc.key,), exc.message))

    @field_validator("account_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return value

    @field_validator("sku", mode="before")
    @classmethod
    def _sku_hint(cls, value: Any) -> Any:
        value = num_to_str(value)
        if isinstance(value, str) and not re.match(_SKU, value):
            raise ValueError(
                "must be 1-64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("title")
    @classmethod
    def _title_not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not any(v.strip() for v in value.values()):
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _check_supply(self) -> Product:
        if self.kind in ("supplier", "topup"):
            missing = [((k,), f"required for kind {self.kind}") for k in ("supplier", "supplier_sku")
                       if not getattr(self, k)]
            if missing:
                fail(*missing)
        elif self.supplier_sku and not self.supplier:
            fail((("supplier",), "required with supplier_sku"))
        if self.kind == "bundle" and not self.bundle:
            fail((("bundle",), "required for kind bundle (its parts)"))
        if self.bundle and self.kind != "bundle":
            fail((("bundle",), "only for kind bundle"))
        if self.account_pattern and self.kind != "topup":
            fail((("account_pattern",), "only for kind topup"))
        if self.kind == "topup":
            if self.min_qty != 1:
                fail((("min_qty",), "must be 1 for kind topup (one account per order)"))
            self.max_qty = 1
        return self

    @model_validator(mode="after")
    def _check_qty(self) -> Product:
        if self.kind == "reusable":
            if self.min_qty != 1:
                fail((("min_qty",), "must be 1 for kind reusable (one per order)"))
            self.max_qty = 1
        elif self.max_qty < self.min_qty:
            fail((("max_qty",), f"must be at least min_qty ({self.min_qty})"))
        return self
