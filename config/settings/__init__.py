"""The store's one typed settings object, loaded from a YAML file.

Usage::

    settings = load_settings("config.yaml")          # raises ConfigError
    settings.store.currency, settings.catalog[0].price, ...

Loading steps: read the file, ``yaml.safe_load`` it, replace ``${VAR}`` /
``${VAR:-default}`` in every string value (``$${`` is a literal ``${``), then
validate with the pydantic models below. Every problem is reported as a
:class:`ConfigError` whose message names the key as a dotted path
(``catalog[2].price``) and says what is wrong; secret values never appear in
messages or in ``repr(settings)``.
"""
from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.models import localized  # noqa: F401 - the settings model uses it, callers import it from here too

__all__ = [
    "ConfigError",
    "Database",
    "Logging",
    "Pay",
    "Product",
    "Server",
    "Settings",
    "Store",
    "Supplier",
    "Telegram",
    "Vault",
    "MenuButton",
    "Webhook",
    "Wechat",
    "Jobs",
    "Restock",
    "load_settings",
    "localized",
    "parse_settings",
]

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """The settings are unusable.

    ``str(err)`` lists every problem as ``dotted.path: what is wrong``;
    ``err.errors`` holds the same as ``(path, message)`` pairs and
    ``err.source`` the settings file (or ``None``).
    """

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {path}: {msg}" if path else f"  {msg}" for path, msg in self.errors)
        super().__init__(f"invalid settings{where}:\n{lines}")


def format_loc(loc: Loc) -> str:
    """``('catalog', 2, 'price')`` -> ``'catalog[2].price'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_ERRORS_TYPE = "config_errors"


def _fail(*problems: tuple[Loc, str]) -> typing.NoReturn:
    """Raise one or more problems from inside a validator.

    Each problem's location is relative to the model (or field) being
    validated; :func:`_convert_validation_error` appends it to pydantic's
    location so the final message names the exact key.
    """
    summary = "; ".join(f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in problems)
    raise PydanticCustomError(_ERRORS_TYPE, "{summary}", {"summary": summary, "problems": list(problems)})


# --------------------------------------------------------------------------- field types


def _num_to_str(value: Any) -> Any:
    # YAML turns `secret: 12345` into an int; a secret is still a string.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(_num_to_str)]


def _decode_key(text: str) -> bytes | None:
    text = text.strip()
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _check_key32(value: SecretStr) -> SecretStr:
    raw = _decode_key(value.get_secret_value())
    if raw is None:
        raise ValueError("must be base64 (it does not decode)")
    if len(raw) != 32:
        raise ValueError(f"must be base64 of exactly 32 bytes (it decodes to {len(raw)} bytes)")
    return value


Key32 = Annotated[SecretStr, BeforeValidator(_num_to_str), AfterValidator(_check_key32)]


def _to_localized(value: Any) -> Any:
    """A plain string becomes ``{"*": text}``; a mapping is kept (values checked by pydantic)."""
    value = _num_to_str(value)
    if value is None:
        return {}
    if isinstance(value, str):
        return {"*": value}
    if isinstance(value, Mapping):
        return {(_num_to_str(k)): _num_to_str(v) for k, v in value.items()}
    raise ValueError("must be a string or a mapping of language code to string")


Localized = Annotated[dict[str, str], BeforeValidator(_to_localized)]



def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _to_demo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low == "auto":
            return "auto"
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ValueError('must be "auto", true or false')


# --------------------------------------------------------------------------- models

class Store(BaseModel):
    """The shop itself: its name, money, languages and how long stock is held for a buyer."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = Field("Card Shop", description="shown in the welcome message")
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$",
                          description="ISO code; all `price` values are minor units (fen) of it")
    default_language: str = Field("en", description="language for buyers whose app language we do not speak; "
                                                    "one of `store.languages`")
    languages: list[str] = Field(default_factory=lambda: ["en", "zh_CN"], min_length=1,
                                 description="languages offered (catalogues in `locales/`)")
    hold_minutes: int = Field(15, ge=1, le=1440, description="how long stock is held for an unpaid order")
    max_open_holds: int = Field(3, ge=1, le=100, description="unpaid orders one buyer may hold at once")
    low_stock_threshold: int = Field(5, ge=0, description='"only N left" at or below this; the `stock-alerts` job '
                                                          "tells the merchants when a pool falls to it")
    demo: Annotated[Literal["auto", True, False], BeforeValidator(_to_demo)] = Field(
        "auto", description="`auto`: the terminal demo when no channel (`telegram.token`, `wechat.appid`) is "
                            "configured; `true` / `false`: demo or not")
    support: str = Field("", description="support contact shown in Help")

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_hint(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("must be a 3-letter uppercase currency code such as CNY or USD")
        return value

    @model_validator(mode="after")
    def _check_language(self) -> Store:
        if self.default_language not in self.languages:
            _fail((("default_language",), f"must be one of store.languages ({', '.join(self.languages)})"))
        return self


_DB_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class Database(BaseModel):
    """Where the store keeps its data: SQLite (embedded, one process) or PostgreSQL (several processes)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    url: str = Field("sqlite+aiosqlite:///data/store.db",
                     description="or `postgresql+asyncpg://user@host:5432/db`. A new SQLite file is created 0600 "
                                 "(its `-wal`/`-shm` follow it) and a new directory for it 0700; existing ones keep "
                                 "their permissions")
    echo: bool = Field(False, description="log SQL statements (never contains codes: they are encrypted before SQL)")
    sqlite_synchronous: Annotated[Literal["NORMAL", "FULL"], BeforeValidator(_upper)] = Field(
        "FULL", description="`FULL` (every commit is durable) or `NORMAL`")
    pool_size: int = Field(5, ge=1, le=100, description="connection pool size")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(_DB_PREFIXES):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    def __repr_args__(self) -> Any:
        # The URL may carry a password: show it masked.
        for name, value in super().__repr_args__():
            if name == "url" and isinstance(value, str):
                value = re.sub(r"(://[^/:@]*:)[^@]*@", r"\1***@", value)
            yield name, value


class Server(BaseModel):
    """The HTTP server: Telegram webhooks, the WeChat callback, WeChat Pay and supplier notices, the B2B API."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    host: str = Field("127.0.0.1", description="the address the HTTP server listens on")
    port: int = Field(8080, ge=1, le=65535, description="its port")
    api: bool = Field(False, description="serve the B2B API for resellers (bots/b2b_api.py) under `/api/v1` on this "
                                         "server (the server starts for it); see [the API](resellers.md#the-api)")
    api_max_skew_seconds: int = Field(300, ge=30, le=3600,
                                      description="signed requests whose `X-Timestamp` is further than this from "
                                                  "the store's clock are refused")
    api_rate_per_second: int = Field(20, ge=1, le=10_000,
                                     description="the rate limit a new API key gets (`reseller key --rate N` sets "
                                                 "another); each key has its own")


_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Vault(BaseModel):
    """The keys the codes are encrypted with (AES-256-GCM): a key file, or the keys themselves (from the
    environment). Rotating them: [Keys and backups](operating.md#keys-and-backups)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    key_file: str = Field("data/vault.key",
                          description="key ring file, created 0600 (a new directory 0700) on first run. **Back it "
                                      "up**: without it the codes cannot be read")
    keys: dict[str, Key32] = Field(default_factory=dict,
                                   description="alternatively the keys themselves: `{key_id: base64 of 32 bytes}` "
                                               "(e.g. `k1: ${STORE_VAULT_K1}`); key ids are 1–32 letters, digits, "
                                               "`_` or `-`")
    current_key: str | None = Field(None, description="the key new codes are encrypted with; none: the last of "
                                                         "`keys`")
    fingerprint_key: Key32 | None = Field(None, description="base64 of 32 bytes; required with `vault.keys` "
                                                               "(duplicate detection; never rotates)")

    @field_validator("keys")
    @classmethod
    def _check_key_ids(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        bad = [k for k in value if not _KEY_ID.match(k)]
        if bad:
            _fail(*(((k,), "key id must be 1-32 letters, digits, '_' or '-'") for k in bad))
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> Vault:
        problems: list[tuple[Loc, str]] = []
        if self.keys:
            if self.fingerprint_key is None:
                problems.append((("fingerprint_key",), "required when vault.keys is set"))
            if self.current_key is None:
                self.current_key = list(self.keys)[-1]
            elif self.current_key not in self.keys:
                problems.append(
                    (("current_key",), f"must be one of vault.keys ({', '.join(self.keys)})")
                )
        if problems:
            _fail(*problems)
        return self

    def decoded_keys(self) -> dict[str, bytes]:
        """``key_id -> 32 raw bytes`` for every key in ``keys`` (mapping order kept)."""
        return {k: _decode_key(v.get_secret_value()) or b"" for k, v in self.keys.items()}

    def fingerprint_key_bytes(self) -> bytes | None:
        """The 32 raw bytes of ``fingerprint_key``, or ``None`` when not set."""
        if self.fingerprint_key is None:
            return None
        return _decode_key(self.fingerprint_key.get_secret_value())


class Logging(BaseModel):
    """The store's log (stderr). Codes and tokens never reach it; see [Logs](operating.md#logs)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        "INFO", description="the least severe messages logged")


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
            _fail((("up_to",), f"must be at least below ({self.below})"))
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
    kind: Literal["code", "reusable", "supplier", "topup"] = Field(
        "code", description="`code` (unique codes, each sold once), `reusable` (one code sold to many; quantity 1), "
                            "`supplier` (bought from a supplier when sold), `topup` (the supplier recharges the "
                            "buyer's account; quantity 1): see [Suppliers](suppliers.md)")
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
                                                        "`store.currency`): margin, restock budgets")
    account_pattern: str = Field("", description="`topup`: a regular expression the account must match, e.g. "
                                                 "`^1[3-9]\\d{9}$` (a mainland mobile number)")
    aftersales: Aftersales | None = Field(None, description="buyers' problem reports answered by an automatic "
                                                               "reissue; none: the defaults of its section")

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: Any) -> Any:
        # Sale rules (core/risk/rules.py): validated here, stored normalized (JSON) with the product.
        from core.risk import RulesError, normalize_rules

        try:
            return normalize_rules(value or {})
        except RulesError as exc:
            _fail(((exc.key,), exc.message))

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
        value = _num_to_str(value)
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
                _fail(*missing)
        elif self.supplier_sku and not self.supplier:
            _fail((("supplier",), "required with supplier_sku"))
        if self.account_pattern and self.kind != "topup":
            _fail((("account_pattern",), "only for kind topup"))
        if self.kind == "topup":
            if self.min_qty != 1:
                _fail((("min_qty",), "must be 1 for kind topup (one account per order)"))
            self.max_qty = 1
        return self

    @model_validator(mode="after")
    def _check_qty(self) -> Product:
        if self.kind == "reusable":
            if self.min_qty != 1:
                _fail((("min_qty",), "must be 1 for kind reusable (one per order)"))
            self.max_qty = 1
        elif self.max_qty < self.min_qty:
            _fail((("max_qty",), f"must be at least min_qty ({self.min_qty})"))
        return self


class Webhook(BaseModel):
    """Telegram's webhook mode (`telegram.mode: webhook`): both keys are required then."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    url: str = Field("", description="the public URL Telegram posts updates to; the store serves its path on "
                                     "`server.host:server.port` and registers the webhook at start")
    secret: Secret = Field(SecretStr(""), description="the secret token Telegram sends with every update (letters, "
                                                      "digits, `_`, `-`; at most 256): updates without it are refused")

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        # Telegram accepts 1-256 of A-Z a-z 0-9 _ - as secret_token.
        text = value.get_secret_value()
        if text and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", text):
            raise ValueError("may only contain letters, digits, '_' and '-' (at most 256 characters)")
        return value


class TelegramLimits(BaseModel):
    """Outbound rates (leaky buckets; defaults from Telegram's Bot FAQ); raise them only for a local test server or
    paid broadcasts."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    overall_per_second: float = Field(30, gt=0, description="outbound messages a second, all chats together")
    per_chat_burst: int = Field(3, ge=1, description="messages one private chat may get at once; then about one a "
                                                     "second")
    group_per_minute: int = Field(20, ge=1, description="messages a minute to one group")


class TelegramGroups(BaseModel):
    """Reseller ordering in group chats: how long a quote can be confirmed, how many `/buy` a minute; see
    [Ordering in a Telegram group](resellers.md#ordering-in-a-telegram-group)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    confirm_minutes: int = Field(10, ge=1, le=1440, description="how long a group order's summary can be confirmed")
    buys_per_member_per_minute: int = Field(3, ge=1, le=60,
                                            description="`/buy` a member may type in a group a minute (refused ones "
                                                        'count); more are slowed: one "wait a minute" per group, then '
                                                        "silence")
    buys_per_group_per_minute: int = Field(8, ge=1, le=600,
                                           description="`/buy` a group may type a minute: an order takes two group "
                                                       'messages (the summary, then "delivered"), so 8 stays within '
                                                       "Telegram's 20")


class Telegram(BaseModel):
    """The Telegram bot; see [Selling on Telegram](telegram.md)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    token: Secret = Field(SecretStr(""), description="BotFather token; empty = Telegram off")
    api_base: str = Field("https://api.telegram.org", description="Bot API server")
    library: Literal["aiogram", "ptb"] = Field("aiogram", description="`aiogram` or `ptb` (python-telegram-bot): "
                                                                      "the same storefront on either")
    mode: Literal["polling", "webhook"] = Field("polling", description="`polling` or `webhook`")
    webhook: Webhook = Field(default_factory=Webhook, description="required in webhook mode")
    admins: list[int] = Field(default_factory=list, description="merchant user ids")
    delete_code_after: int | None = Field(None, ge=1, description="minutes after which code messages are "
                                                                     "deleted; none: kept")
    limits: TelegramLimits = Field(default_factory=TelegramLimits, description="outbound message rates")
    groups: TelegramGroups = Field(default_factory=TelegramGroups, description="reseller ordering in group chats")

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())

    @model_validator(mode="after")
    def _check_webhook(self) -> Telegram:
        if self.enabled and self.mode == "webhook":
            problems: list[tuple[Loc, str]] = []
            if not self.webhook.url:
                problems.append((("webhook", "url"), "required when telegram.mode is webhook"))
            if not self.webhook.secret.get_secret_value():
                problems.append((("webhook", "secret"), "required when telegram.mode is webhook"))
            if problems:
                _fail(*problems)
        return self


class Pay(BaseModel):
    """WeChat Pay API v2 in Native mode; see [WeChat Pay](wechat-pay.md)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    mch_id: str = Field("", description="the merchant id; empty = WeChat Pay off. Then `api_key` and `notify_url` "
                                        "are required")
    api_key: Secret = Field(SecretStr(""), description="the APIv2 key (32 characters)")
    api_base: str = Field("https://api.mch.weixin.qq.com", description="pay API server (a proxy, the tests' fake)")
    notify_url: str = Field("", description="the public URL of this store's `POST /wechat/pay/notify`")
    cert: str = Field("", description="merchant API certificate file (`apiclient_cert.pem`), for refunds")
    key: str = Field("", repr=False, description="its private key file (`apiclient_key.pem`), for refunds; a "
                                                 "missing file, or only one of the two, is refused at start")

    @model_validator(mode="after")
    def _check_required(self) -> Pay:
        if self.mch_id:
            problems: list[tuple[Loc, str]] = []
            if not self.api_key.get_secret_value():
                problems.append((("api_key",), "required when wechat.pay.mch_id is set"))
            if not self.notify_url:
                problems.append((("notify_url",), "required when wechat.pay.mch_id is set"))
            if problems:
                _fail(*problems)
        return self


# What a WeChat custom-menu CLICK may ask for: the customer flow's entry screens (handlers/actions.py), by today's
# names or the old ones a menu made before may still carry (cat, os:0, lang).
MENU_ACTIONS = re.compile(r"^(menu|catalog|orders|orders:0|help|language|language:[A-Za-z_]{2,10}"
                          r"|cat|os:0|lang|lang:[A-Za-z_]{2,10})$")


class MenuButton(BaseModel):
    """One button of the WeChat custom menu: a flow `action` (a CLICK), a web page `url`, or a `sub_button`
    list (top-level buttons only)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = Field(description="the label: at most 16 bytes at the top (5 Chinese characters), 60 below")
    action: str = Field("", description="a CLICK opening a screen: `menu`, `catalog`, `orders`, `help`, "
                                        "`language`, `language:<code>`")
    url: str = Field("", description="a web page (`http://` or `https://`)")
    sub_button: list[MenuButton] = Field(default_factory=list, description="top-level buttons only: at most 5 "
                                                                             "buttons with `action` or `url`")

    @model_validator(mode="after")
    def _check_kind(self) -> MenuButton:
        kinds = [k for k in ("action", "url", "sub_button") if getattr(self, k)]
        if len(kinds) != 1:
            _fail(((), "needs exactly one of action, url or sub_button"))
        if not self.name.strip():
            _fail((("name",), "must not be empty"))
        if self.action and not MENU_ACTIONS.match(self.action):
            _fail((("action",), "must be one of menu, catalog, orders, help, language, language:<code>"))
        if self.url and not re.match(r"^https?://", self.url):
            _fail((("url",), "must start with http:// or https://"))
        if len(self.sub_button) > 5:
            _fail((("sub_button",), "at most 5 buttons (WeChat's limit)"))
        for i, sub in enumerate(self.sub_button):
            if sub.sub_button:
                _fail((("sub_button", i, "sub_button"), "menus have two levels at most"))
            if len(sub.name.encode()) > 60:
                _fail((("sub_button", i, "name"), "at most 60 bytes (20 Chinese characters)"))
        return self


def _default_menu() -> list[MenuButton]:
    return [MenuButton(name="商品", action="catalog"), MenuButton(name="我的订单", action="orders"),
            MenuButton(name="更多", sub_button=[MenuButton(name="帮助", action="help"),
                                              MenuButton(name="语言 Language", action="language")])]


class Wechat(BaseModel):
    """The WeChat Official Account (a verified service account); see [Selling on WeChat](wechat.md)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    token: Secret = Field(SecretStr(""), description='the callback token (公众号 → 基本配置 → 服务器配置 "Token"): '
                                                     "signs every callback")
    appid: str = Field("", description="Official Account appid; empty = WeChat off. Then `token` and `secret` are "
                                       "required")
    secret: Secret = Field(SecretStr(""), description="the AppSecret: fetches the access token for the API")
    aes_key: Secret = Field(SecretStr(""), description="the EncodingAESKey (43 characters) for safe mode (安全模式): "
                                                       "set it. Empty = plain-text mode, in which merchant commands "
                                                       'and "show codes again" are refused (see [Use safe mode]'
                                                       "(wechat.md#use-safe-mode))")
    api_base: str = Field("https://api.weixin.qq.com", description="API server (a proxy, the tests' fake); the token "
                                                                   "URL and wechatpy's absolute URLs follow it")
    admins: list[str] = Field(default_factory=list, description="merchant openids: they get the merchant commands "
                                                                "and alerts")
    # The URL carries the robot's key: a secret.
    wecom_webhook: Secret = Field(SecretStr(""), description="a WeCom (企业微信) group robot's webhook URL "
                                                             "(`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
                                                             "...`; the key is a secret): merchant alerts also go "
                                                             "there, at most 20 a minute")
    menu: list[MenuButton] = Field(default_factory=_default_menu,
                                   description="the custom menu `run.py wechat menu` creates: at most 3 buttons")
    pay: Pay = Field(default_factory=Pay, description="WeChat Pay")

    @field_validator("wecom_webhook")
    @classmethod
    def _check_webhook(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not re.match(r"^https?://", text):
            raise ValueError("must be the robot's URL (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)")
        return value

    @field_validator("menu")
    @classmethod
    def _check_menu(cls, value: list[MenuButton]) -> list[MenuButton]:
        if len(value) > 3:
            raise ValueError("at most 3 top-level buttons (WeChat's limit)")
        for button in value:
            if len(button.name.encode()) > 16:
                raise ValueError(f"top-level name {button.name!r} is longer than 16 bytes (5 Chinese characters)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.appid)

    @field_validator("aes_key")
    @classmethod
    def _check_aes_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and len(text) != 43:
            raise ValueError("must be exactly 43 characters (the EncodingAESKey from the WeChat console)")
        return value

    @model_validator(mode="after")
    def _check_required(self) -> Wechat:
        if self.enabled:
            problems: list[tuple[Loc, str]] = []
            if not self.token.get_secret_value():
                problems.append((("token",), "required when wechat.appid is set"))
            if not self.secret.get_secret_value():
                problems.append((("secret",), "required when wechat.appid is set"))
            if problems:
                _fail(*problems)
        return self


_SUPPLIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SupplierPaths(BaseModel):
    """Endpoint paths under `base_url`; `""` = the supplier does not offer it."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    balance: str = Field("/api/balance", description="the shop's balance at the supplier")
    products: str = Field("/api/products", description="the supplier's product list (with prices)")
    buy: str = Field("/api/buy", description="buy N codes")
    topup: str = Field("/api/topup", description="top an account up")
    query: str = Field("/api/query", description="an order by request id: its status, and its codes for a purchase")
    check: str = Field("", description="a code's status (valid / used / invalid): the after-sales check")


class SupplierFields(BaseModel):
    """The supplier's parameter names, in requests (and the callback's timestamp)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    app_key: str = Field("app_key", description="the shop's key at the supplier")
    timestamp: str = Field("timestamp", description="Unix seconds; in callbacks too (`callback_max_skew`)")
    nonce: str = Field("nonce", description="a fresh random string per request")
    sign: str = Field("sign", description="the signature")
    sku: str = Field("sku", description="the product's `supplier_sku`")
    qty: str = Field("qty", description="how many codes")
    request_id: str = Field("request_id", description="the store's request id (`B<order>`, `T<order>`, a restock "
                                                      "plan's id): a supplier never buys twice for one")
    account: str = Field("account", description="the account a top-up recharges")
    code: str = Field("code", description="the code to check")
    callback_url: str = Field("notify_url", description="where the supplier posts a top-up's result "
                                                        "(`callback_url`)")


class SupplierAnswer(BaseModel):
    """Where things are in the supplier's JSON answers `{code, msg, data}` (and callbacks), and which values mean
    ok / retry / duplicate, done / pending / failed, valid / used / invalid. Keys of `data` unless said; a single
    value may stand for a list of one."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    code: str = Field("code", description="top level: the result code")
    ok: list[str] = Field(default_factory=lambda: ["0"], description="result codes that mean success")
    retry: list[str] = Field(default_factory=list, description="result codes worth retrying (busy, try later)")
    duplicate: list[str] = Field(default_factory=list, description='"request id used already": the store asks '
                                                                   "`query` for that order instead")
    message: str = Field("msg", description="top level: the message")
    data: str = Field("data", description='top level: the payload (`""` = the top level itself)')
    balance: str = Field("balance", description="the shop's balance")
    codes: str = Field("cards", description="the codes: a list of strings, or of objects (then `card_fields`)")
    card_fields: list[str] = Field(default_factory=list, description="e.g. `[card_no, card_pwd]`: joined by a space")
    status: str = Field("status", description="an order's or top-up's status (`done`, `pending`, `failed`), or a "
                                              "code's (`valid`, `used`, `invalid`)")
    upstream_id: str = Field("order_no", description="the supplier's order number")
    request_id: str = Field("request_id", description="the store's request id, in callbacks and query answers")
    products: str = Field("list", description="the product list")
    product_sku: str = Field("sku", description="a listed product's SKU")
    product_title: str = Field("name", description="its name")
    product_price: str = Field("price", description="its price (see `amounts`)")
    product_stock: str = Field("stock", description="its stock")
    done: list[str] = Field(default_factory=lambda: ["success"], description="order / top-up statuses: done")
    pending: list[str] = Field(default_factory=lambda: ["processing"], description="... still under way")
    failed: list[str] = Field(default_factory=lambda: ["failed"], description="... failed (refunded)")
    valid: list[str] = Field(default_factory=lambda: ["valid"], description="code statuses (check): valid, unused")
    used: list[str] = Field(default_factory=lambda: ["used"], description="... used")
    invalid: list[str] = Field(default_factory=lambda: ["invalid"], description="... invalid")

    @field_validator("ok", "retry", "duplicate", "done", "pending", "failed", "valid", "used", "invalid",
                     mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        return [_num_to_str(v) for v in value] if isinstance(value, list) else value


class Supplier(BaseModel):
    """One upstream supplier (货源). type http: a signed JSON/form API in the common style of card suppliers;
    type store: another instance of this store through its B2B API (base_url, key_id, secret; suppliers/store.py)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    type: Literal["http", "store"] = Field("http", description="`http`; `store`: another instance of this store "
                                                               "through its B2B API (`base_url`, `key_id`, `secret`)")
    base_url: str = Field("", description="**required**: the API address (`http://` or `https://`); paths are added "
                                          "to it. Type `store`: the other store's server, without `/api/v1`")
    app_key: str = Field("", description="the shop's key at the supplier")
    key_id: str = Field("", description="required for type `store`: the API key id (`rk_...`) the upstream store "
                                        "issued you (`run.py reseller key` there); `secret` is its secret")
    secret: Secret = Field(SecretStr(""), description="**required**: the signing secret (put it in the "
                                                      "environment)")
    sign: Literal["md5", "hmac-sha256"] = Field("md5", description="how requests are signed")
    sign_case: Literal["upper", "lower"] = Field("upper", description="the signature's hex case")
    sign_key_param: str = Field("key", description="the name in `&key=<secret>` at the end of the signed string "
                                                   '(`""`: the secret appended as is)')
    body: Literal["form", "json"] = Field("form", description="request bodies")
    timeout: float = Field(10.0, gt=0, le=30, description="seconds per attempt. timeout × (retries + 1) plus the "
                                                           "backoffs: at most 40 s in all")
    retries: int = Field(2, ge=0, le=5, description="more attempts of one call after a timeout, 5xx or lost answer")
    backoff: float = Field(0.5, ge=0, le=10, description="seconds before the first retry (doubles)")
    amounts: Literal["yuan", "fen"] = Field("yuan", description='how the supplier writes money: `yuan` (`"45.00"`) '
                                                                "or `fen` (`4500`)")
    callback_url: str = Field("", description="sent with top-ups: the public URL of this store's "
                                              "`POST /supplier/<name>/callback`")
    callback_max_skew: int = Field(300, ge=0, le=86400,
                                   description="a callback whose `timestamp` (Unix seconds, or milliseconds when 13 "
                                               "digits) is missing or further than this many seconds from the "
                                               "store's clock is refused (403); `0` = not checked, only for a "
                                               "supplier whose callbacks carry no timestamp")
    max_attempts: int = Field(5, ge=1, le=50, description="outbox tries of an order's purchase or top-up before it "
                                                          "is refunded")
    paths: SupplierPaths = Field(default_factory=SupplierPaths, description="endpoint paths")
    fields: SupplierFields = Field(default_factory=SupplierFields, description="the supplier's parameter names")
    answer: SupplierAnswer = Field(default_factory=SupplierAnswer, description="where things are in its answers")

    @model_validator(mode="after")
    def _check(self) -> Supplier:
        problems: list[tuple[Loc, str]] = []
        if not re.match(r"^https?://", self.base_url):
            problems.append((("base_url",), "required: the supplier's API address (http:// or https://)"
                             + (", the other store's server without /api/v1" if self.type == "store" else "")))
        if not self.secret.get_secret_value():
            problems.append((("secret",), "required: the key requests are signed with"))
        if self.type == "store" and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.key_id):
            problems.append((("key_id",), "required for type store: the API key id the other store gave you "
                                          "(rk_...)"))
        if self.type == "http" and self.key_id:
            problems.append((("key_id",), "only for type store (type http signs with app_key and secret)"))
        if self.callback_url and not re.match(r"^https?://", self.callback_url):
            problems.append((("callback_url",), "must start with http:// or https://"))
        worst = self.timeout * (self.retries + 1) + self.backoff * (2 ** self.retries - 1)
        if worst > 40:
            problems.append((("timeout",), f"timeout × (retries + 1) plus backoff is {worst:g} s; at most 40 s "
                                           "(one supplier call must end well inside the outbox's 45 s send limit)"))
        if problems:
            _fail(*problems)
        return self


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


def _check_hhmm(value: str) -> str:
    if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError('must be a time of day "HH:MM" (24-hour), or "" for none')
    return value


def _check_zone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as UTC or Asia/Shanghai") from None
    return value


class Jobs(BaseModel):
    """The scheduler (jobs/scheduler.py, jobs/store.py): intervals in seconds, the daily summary, code expiry; see
    [The scheduler](operating.md#the-scheduler)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    lease_seconds: float = Field(60, ge=1, le=3600, description="the scheduler lease: a process that stops renewing "
                                                                "it (crashed) is replaced after this long")
    expire_holds_seconds: float = Field(30, gt=0, description="how often lapsed holds are released (and the buyers "
                                                              "told)")
    dispatch_outbox_seconds: float = Field(30, gt=0, description="how often the outbox is swept for retries (sends "
                                                                 "also start on every commit)")
    reconcile_wechat_pay_seconds: float = Field(60, gt=0, description="how often WeChat Pay is asked about unpaid "
                                                                      "orders (with `wechat.pay.mch_id`)")
    reconcile_stars_seconds: float = Field(60, gt=0, description="how often the bot's Star transactions are read for "
                                                                 "payments the store missed (with `telegram.token`)")
    restock_seconds: float = Field(60, gt=0, description="how often pools with `restock` are checked and bought up")
    stock_alerts_seconds: float = Field(60, gt=0, description="how often low / out-of-stock alerts are checked")
    expire_codes_seconds: float = Field(300, gt=0, description="how often codes near their `expires_at` are "
                                                               "withdrawn")
    poll_topups_seconds: float = Field(60, gt=0, description="how often pending top-ups are asked about at their "
                                                             "suppliers")
    expiry_margin_minutes: int = Field(60, ge=0, description="codes are withdrawn this long before their "
                                                             "`expires_at`")
    daily_summary_at: Annotated[str, AfterValidator(_check_hhmm)] = Field(
        "09:00", description='time of day (`HH:MM`, `jobs.timezone`) of the daily summary to the merchants; `""`: '
                             "none")
    timezone: Annotated[str, AfterValidator(_check_zone)] = Field(
        "UTC", description="IANA zone (e.g. `Asia/Shanghai`) for the summary's time, the restock budget's day and "
                           "the `per_day` rule's day")
    supplier_backoff_max_minutes: int = Field(60, ge=1, description="a failing supplier is left alone 1 minute after "
                                                                    "the first failure, doubling up to this")
    topup_stuck_minutes: int = Field(60, ge=1, description="a paid top-up the supplier has not finished after this "
                                                           "long is reported to the merchants once (never refunded "
                                                           "automatically: the supplier may still top the account up)")


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
            _fail((("review_at",), f"thresholds must rise: challenge_at ({self.challenge_at}) <= review_at "
                                   f"({self.review_at}) <= refuse_at ({self.refuse_at})"))
        return self


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
        from core.risk import EXEMPTIBLE

        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            bad = [(i, x) for i, x in enumerate(value) if x not in EXEMPTIBLE]
            if bad:
                _fail(*(((i,), f"{x!r} cannot be exempted (one of: {', '.join(EXEMPTIBLE)}; the sale window, "
                                "resellers_only and deliver_on_effective hold for every order)") for i, x in bad))
        return value

    @field_validator("commissions")
    @classmethod
    def _rates(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if not 0 <= v <= 10_000]
        if bad:
            _fail(*(((k,), "basis points from 0 to 10000") for k in bad))
        return value


class Settings(BaseModel):
    """`config.yaml` next to `run.py` is the documented default (`run.py --config PATH` reads another). Any string
    may use `${VAR}` or `${VAR:-default}` (environment variables; `$${` is a literal `${`) — put secrets there, not
    in the file. The settings are validated at start: an unknown key, a wrong type or a missing required secret
    stops the start (exit 2) with a message naming the key (e.g. `catalog[2].price`); secret values never appear
    in messages. Relative paths are relative to the config file's folder."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    store: Store = Field(default_factory=Store, description="the shop")
    database: Database = Field(default_factory=Database, description="the database")
    server: Server = Field(default_factory=Server, description="the HTTP server")
    vault: Vault = Field(default_factory=Vault, description="the code vault's keys")
    logging: Logging = Field(default_factory=Logging, description="the log")
    catalog: list[Product] = Field(default_factory=list, description="the products")
    telegram: Telegram = Field(default_factory=Telegram, description="the Telegram bot")
    wechat: Wechat = Field(default_factory=Wechat, description="the WeChat Official Account and WeChat Pay")
    jobs: Jobs = Field(default_factory=Jobs, description="the scheduler")
    suppliers: dict[str, Supplier] = Field(default_factory=dict,
                                           description="upstream suppliers by name (1–32 letters, digits, `_` or `-`)")
    risk: Risk = Field(default_factory=Risk, description="the risk check of every order")
    resellers: Resellers = Field(default_factory=Resellers, description="reseller wallets, commissions, exemptions")
    card_faces: dict[str, CardFace] = Field(default_factory=dict,
                                            description="resellers' card faces, by reseller name")

    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("store", "database", "server", "vault", "logging", "telegram", "wechat", "jobs", "risk",
                     "resellers", mode="before")
    @classmethod
    def _null_section(cls, value: Any) -> Any:
        # `telegram:` with nothing under it is YAML null: treat as "all defaults".
        return {} if value is None else value

    @field_validator("card_faces", mode="before")
    @classmethod
    def _null_card_faces(cls, value: Any) -> Any:
        return {} if value is None else value

    def card_face_file_problems(self) -> list[tuple[str, str]]:
        """card_faces.<name>.<file>: files that do not exist (checked once the config's directory is known)."""
        return [(f"card_faces.{name}.{key}", f"no such file: {self.resolve_path(getattr(face, key))}")
                for name, face in self.card_faces.items() for key in ("background_image", "logo", "font")
                if getattr(face, key) and not self.resolve_path(getattr(face, key)).is_file()]

    @field_validator("suppliers", mode="before")
    @classmethod
    def _null_suppliers(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            bad = [k for k in value if not isinstance(k, str) or not _SUPPLIER_NAME.match(k)]
            if bad:
                _fail(*(((str(k),), "supplier name must be 1-32 letters, digits, '_' or '-'") for k in bad))
        return value

    @field_validator("catalog", mode="before")
    @classmethod
    def _null_catalog(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _check_catalog(self) -> Settings:
        seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for i, product in enumerate(self.catalog):
            if product.sku in seen:
                problems.append(
                    (("catalog", i, "sku"), f"duplicate sku {product.sku!r} (already used by catalog[{seen[product.sku]}])")
                )
            else:
                seen[product.sku] = i
            if product.supplier and product.supplier not in self.suppliers:
                known = ", ".join(self.suppliers) or "none configured"
                problems.append((("catalog", i, "supplier"), f"unknown supplier {product.supplier!r} "
                                                            f"(suppliers: {known})"))
        if problems:
            _fail(*problems)
        return self

    @model_validator(mode="after")
    def _check_restock(self) -> Settings:
        problems: list[tuple[Loc, str]] = []
        known = getattr(self, "suppliers", None) or {}
        for i, product in enumerate(self.catalog):
            rs = product.restock
            if rs is None:
                continue
            if product.kind != "code":
                problems.append((("catalog", i, "restock"), "only for kind code (a pool of codes)"))
            name = rs.supplier or getattr(product, "supplier", "")
            if not name:
                problems.append((("catalog", i, "restock", "supplier"), "required (or set the product's supplier)"))
            elif name not in known:
                problems.append((("catalog", i, "restock", "supplier"),
                                 f"no supplier {name!r} in suppliers:" + (f" ({', '.join(known)})" if known else "")))
        if problems:
            _fail(*problems)
        return self

    # -- helpers -------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        """Directory of the settings file; relative paths are resolved against it."""
        return self._config_dir

    def resolve_path(self, p: str | os.PathLike[str]) -> Path:
        """Absolute path for ``p``; a relative ``p`` is taken relative to the config directory."""
        path = Path(p).expanduser()
        if path.is_absolute():
            return path
        return self._config_dir / path

    def database_url_resolved(self) -> str:
        """``database.url`` with a relative sqlite file path made absolute (config dir based).

        ``sqlite+aiosqlite:///data/store.db`` -> ``sqlite+aiosqlite:////<config dir>/data/store.db``;
        ``:memory:``, absolute paths and PostgreSQL URLs are returned unchanged.
        """
        url = self.database.url
        prefix = "sqlite+aiosqlite:///"
        if not url.startswith(prefix):
            return url
        rest = url[len(prefix):]
        path, sep, query = rest.partition("?")
        if not path or path == ":memory:" or path.startswith("/") or path.startswith("file:"):
            return url
        return prefix + str(self.resolve_path(path)) + sep + query

    def channels_configured(self) -> bool:
        """True when a Telegram token or a WeChat appid is set."""
        return self.telegram.enabled or self.wechat.enabled

    def demo_mode(self) -> bool:
        """``store.demo`` true, or ``"auto"`` with no channel configured."""
        if self.store.demo == "auto":
            return not self.channels_configured()
        return bool(self.store.demo)


# --------------------------------------------------------------------------- interpolation

_VAR = re.compile(
    r"\$\$\{"  # escaped literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{"  # anything else starting with ${ is malformed
)


def _interpolate(data: Any, env: Mapping[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []

    def sub(text: str, loc: Loc) -> str:
        def repl(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "$${":
                return "${"
            name = m.group("name")
            if name is None:
                problems.append(
                    (format_loc(loc), "malformed ${...} reference (use ${NAME} or ${NAME:-default}; write $${ for a literal ${)")
                )
                return token
            default = m.group("default")
            value = env.get(name)
            if default is not None:
                return value if value else default
            if value is None:
                problems.append((format_loc(loc), f"environment variable {name} is not set (referenced as ${{{name}}})"))
                return ""
            return value

        return _VAR.sub(repl, text)

    def walk(node: Any, loc: Loc) -> Any:
        if isinstance(node, str):
            return sub(node, loc)
        if isinstance(node, dict):
            return {k: walk(v, loc + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, loc + (i,)) for i, v in enumerate(node)]
        return node

    return walk(data, ()), problems


# --------------------------------------------------------------------------- validation errors


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for "did you mean" hints)."""
    cls: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        found = _find_model(field.annotation)
        if found is None:
            return None
        cls = found
    return cls


def _find_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _convert_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc: Loc = tuple(err["loc"])
        etype = err["type"]
        if etype == _ERRORS_TYPE:
            for sub_loc, msg in err["ctx"]["problems"]:
                out.append((format_loc(loc + tuple(sub_loc)), msg))
            continue
        if etype == "extra_forbidden":
            msg = "unknown key"
            model = _model_at(loc)
            if model is not None and isinstance(loc[-1], str):
                close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
                if close:
                    msg += f" (did you mean {close[0]!r}?)"
        elif etype == "missing":
            msg = "required key is missing"
        else:
            msg = _clean_message(err["msg"])
        out.append((format_loc(loc), msg))
    # keep order, drop repeats
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- entry points


def _parse(data: Any, base_dir: Path, env: Mapping[str, str] | None, source: str | None) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a mapping of sections (store:, database:, ...)")], source)
    data, problems = _interpolate(data, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems, source)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        # `from None`: the pydantic error would print input values (secrets).
        raise ConfigError(_convert_validation_error(exc), source) from None
    settings._config_dir = Path(base_dir).expanduser().resolve()
    problems = settings.card_face_file_problems()
    if problems:
        raise ConfigError(problems, source)
    return settings


def parse_settings(data: dict, base_dir: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Validate already-parsed settings; relative paths resolve against ``base_dir``."""
    return _parse(data, base_dir, env, None)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate (from ``env``, default ``os.environ``) and validate a YAML settings file."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"settings file {source} does not exist")], source) from None
    except IsADirectoryError:
        raise ConfigError([("", f"settings path {source} is a directory, not a file")], source) from None
    except UnicodeDecodeError:
        raise ConfigError([("", f"settings file {source} is not valid UTF-8")], source) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read settings file {source}: {exc.strerror or exc}")], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("", _yaml_message(exc))], source) from None
    return _parse(data, file.parent, env, source)


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or "could not parse"
    context = getattr(exc, "context", None)
    what = f"{context}, {problem}" if context else problem
    if context_mark is not None and mark is not None and context_mark.line != mark.line:
        what += f" (the construct started at line {context_mark.line + 1})"
    if mark is not None:
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return f"YAML syntax error: {what}"
