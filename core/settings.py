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
from typing import Annotated, Any, Literal, Optional, Union

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

Loc = tuple[Union[str, int], ...]


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


def localized(value: Mapping[str, str], lang: str, fallback: str) -> str:
    """Pick the text for ``lang`` from a normalised localized field.

    Order: ``value[lang]``, ``value["*"]``, ``value[fallback]``, the first
    value, ``""``. Empty strings count as missing.
    """
    if isinstance(value, str):
        return value
    for key in (lang, "*", fallback):
        text = value.get(key)
        if text:
            return text
    for text in value.values():
        if text:
            return text
    return ""


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
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = "Card Shop"
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    default_language: str = "en"
    languages: list[str] = Field(default_factory=lambda: ["en", "zh_CN"], min_length=1)
    hold_minutes: int = Field(15, ge=1, le=1440)
    max_open_holds: int = Field(3, ge=1, le=100)
    low_stock_threshold: int = Field(5, ge=0)
    demo: Annotated[Literal["auto", True, False], BeforeValidator(_to_demo)] = "auto"
    support: str = ""

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_hint(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("must be a 3-letter uppercase currency code such as CNY or USD")
        return value

    @model_validator(mode="after")
    def _check_language(self) -> "Store":
        if self.default_language not in self.languages:
            _fail((("default_language",), f"must be one of store.languages ({', '.join(self.languages)})"))
        return self


_DB_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class Database(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    url: str = "sqlite+aiosqlite:///data/store.db"
    echo: bool = False
    sqlite_synchronous: Annotated[Literal["NORMAL", "FULL"], BeforeValidator(_upper)] = "FULL"
    pool_size: int = Field(5, ge=1, le=100)

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
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # The B2B API for resellers (bots/b2b_api.py, issue 8) under /api/v1 on this server.
    api: bool = False
    api_max_skew_seconds: int = Field(300, ge=30, le=3600)  # signed requests' timestamps within this of our clock
    api_rate_per_second: int = Field(20, ge=1, le=10_000)  # a new API key's rate limit (`reseller key --rate`)


_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Vault(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    key_file: str = "data/vault.key"
    keys: dict[str, Key32] = Field(default_factory=dict)
    current_key: Optional[str] = None
    fingerprint_key: Optional[Key32] = None

    @field_validator("keys")
    @classmethod
    def _check_key_ids(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        bad = [k for k in value if not _KEY_ID.match(k)]
        if bad:
            _fail(*(((k,), "key id must be 1-32 letters, digits, '_' or '-'") for k in bad))
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> "Vault":
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
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"


_SKU = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Restock(BaseModel):
    """Automatic restock of a code pool (the `restock` job): when fewer than `below` codes are available, buy
    up to `up_to` from `supplier` (default: the product's supplier), spending at most `daily_budget` (minor
    units of store.currency) a day on this product."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    below: int = Field(ge=1)
    up_to: int = Field(ge=1)
    supplier: str = ""
    daily_budget: int = Field(ge=0)

    @model_validator(mode="after")
    def _check_levels(self) -> "Restock":
        if self.up_to < self.below:
            _fail((("up_to",), f"must be at least below ({self.below})"))
        return self


class Aftersales(BaseModel):
    """When a buyer's report is answered by a new code at once (core/aftersales.py ReissuePolicy)."""

    model_config = ConfigDict(extra="forbid")

    auto: bool = True
    reissues_per_order: int = Field(1, ge=0)
    window_hours: int = Field(24, ge=0)
    max_reports: int = Field(2, ge=0)  # a clean history: fewer reports than this by the buyer in 30 days


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sku: str = Field(pattern=_SKU)
    title: Localized
    description: Localized = Field(default_factory=dict)
    category: Localized = Field(default_factory=dict)
    price: int = Field(ge=0)
    stars: Optional[int] = Field(None, ge=1)
    kind: Literal["code", "reusable", "supplier", "topup"] = "code"
    min_qty: int = Field(1, ge=1)
    max_qty: int = Field(10, ge=1)
    hold_minutes: Optional[int] = Field(None, ge=1, le=1440)
    active: bool = True
    rules: dict[str, Any] = Field(default_factory=dict)
    restock: Optional[Restock] = None  # automatic restock from a supplier (kind code; the restock job)
    # Where it comes from (suppliers:): required for kinds supplier and topup, optional for code (restock).
    supplier: str = ""
    supplier_sku: str = ""
    cost: Optional[int] = Field(None, ge=0)  # what one costs the shop, minor units of store.currency
    account_pattern: str = ""  # topup: the account must match this (e.g. ^1[3-9]\d{9}$, a mainland mobile)
    aftersales: Optional[Aftersales] = None  # buyers' reports: automatic reissue policy (issue 7)

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: Any) -> Any:
        # Sale rules (core/rules.py, issue 6): validated here, stored normalized (JSON) with the product.
        from core.rules import RulesError, normalize_rules

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
    def _check_supply(self) -> "Product":
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
    def _check_qty(self) -> "Product":
        if self.kind == "reusable":
            if self.min_qty != 1:
                _fail((("min_qty",), "must be 1 for kind reusable (one per order)"))
            self.max_qty = 1
        elif self.max_qty < self.min_qty:
            _fail((("max_qty",), f"must be at least min_qty ({self.min_qty})"))
        return self


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    url: str = ""
    secret: Secret = SecretStr("")

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        # Telegram accepts 1-256 of A-Z a-z 0-9 _ - as secret_token.
        text = value.get_secret_value()
        if text and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", text):
            raise ValueError("may only contain letters, digits, '_' and '-' (at most 256 characters)")
        return value


class TelegramLimits(BaseModel):
    """Outbound rates (Telegram's Bot FAQ); raise them only for a local test server or paid broadcasts."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    overall_per_second: float = Field(30, gt=0)
    per_chat_burst: int = Field(3, ge=1)  # then about one message a second per chat
    group_per_minute: int = Field(20, ge=1)


class TelegramGroups(BaseModel):
    """Reseller ordering in group chats (issue 8): how long a quote can be confirmed, how many /buy a minute."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    confirm_minutes: int = Field(10, ge=1, le=1440)
    buys_per_member_per_minute: int = Field(3, ge=1, le=60)
    # An order takes 2 group messages (the quote, then "delivered"): 8 a minute stays within Telegram's 20.
    buys_per_group_per_minute: int = Field(8, ge=1, le=600)


class Telegram(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    token: Secret = SecretStr("")
    api_base: str = "https://api.telegram.org"
    library: Literal["aiogram", "ptb"] = "aiogram"
    mode: Literal["polling", "webhook"] = "polling"
    webhook: Webhook = Field(default_factory=Webhook)
    admins: list[int] = Field(default_factory=list)
    delete_code_after: Optional[int] = Field(None, ge=1)
    limits: TelegramLimits = Field(default_factory=TelegramLimits)
    groups: TelegramGroups = Field(default_factory=TelegramGroups)

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())

    @model_validator(mode="after")
    def _check_webhook(self) -> "Telegram":
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
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    mch_id: str = ""
    api_key: Secret = SecretStr("")
    api_base: str = "https://api.mch.weixin.qq.com"
    notify_url: str = ""
    cert: str = ""
    key: str = Field("", repr=False)

    @model_validator(mode="after")
    def _check_required(self) -> "Pay":
        if self.mch_id:
            problems: list[tuple[Loc, str]] = []
            if not self.api_key.get_secret_value():
                problems.append((("api_key",), "required when wechat.pay.mch_id is set"))
            if not self.notify_url:
                problems.append((("notify_url",), "required when wechat.pay.mch_id is set"))
            if problems:
                _fail(*problems)
        return self


# What a WeChat custom-menu CLICK may ask for: the customer flow's entry screens (see handlers/customer.py).
MENU_ACTIONS = re.compile(r"^(menu|cat|help|lang|os:0|lang:[A-Za-z_]{2,10})$")


class MenuButton(BaseModel):
    """One button of the WeChat custom menu: a flow `action` (a CLICK), a web page `url`, or a `sub_button`
    list (top-level buttons only)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str
    action: str = ""
    url: str = ""
    sub_button: list["MenuButton"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_kind(self) -> "MenuButton":
        kinds = [k for k in ("action", "url", "sub_button") if getattr(self, k)]
        if len(kinds) != 1:
            _fail(((), "needs exactly one of action, url or sub_button"))
        if not self.name.strip():
            _fail((("name",), "must not be empty"))
        if self.action and not MENU_ACTIONS.match(self.action):
            _fail((("action",), "must be one of menu, cat, os:0, help, lang, lang:<code>"))
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
    return [MenuButton(name="商品", action="cat"), MenuButton(name="我的订单", action="os:0"),
            MenuButton(name="更多", sub_button=[MenuButton(name="帮助", action="help"),
                                              MenuButton(name="语言 Language", action="lang")])]


class Wechat(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    token: Secret = SecretStr("")
    appid: str = ""
    secret: Secret = SecretStr("")
    aes_key: Secret = SecretStr("")
    api_base: str = "https://api.weixin.qq.com"
    admins: list[str] = Field(default_factory=list)
    wecom_webhook: Secret = SecretStr("")  # the URL carries the robot's key: a secret
    menu: list[MenuButton] = Field(default_factory=_default_menu)
    pay: Pay = Field(default_factory=Pay)

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
    def _check_required(self) -> "Wechat":
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
    """Endpoint paths under base_url; "" = the supplier does not offer it."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    balance: str = "/api/balance"
    products: str = "/api/products"
    buy: str = "/api/buy"
    topup: str = "/api/topup"
    query: str = "/api/query"  # an order by request id: its status, and its codes for a purchase
    check: str = ""  # a code's status (valid / used / invalid)


class SupplierFields(BaseModel):
    """The request's parameter names at this supplier."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    app_key: str = "app_key"
    timestamp: str = "timestamp"
    nonce: str = "nonce"
    sign: str = "sign"
    sku: str = "sku"
    qty: str = "qty"
    request_id: str = "request_id"
    account: str = "account"
    code: str = "code"
    callback_url: str = "notify_url"


class SupplierAnswer(BaseModel):
    """Where things are in the supplier's JSON answers (and callbacks). Keys of `data` unless said."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    code: str = "code"  # top level: the result code
    ok: list[str] = Field(default_factory=lambda: ["0"])  # result codes that mean success
    retry: list[str] = Field(default_factory=list)  # result codes worth retrying (busy, try later)
    duplicate: list[str] = Field(default_factory=list)  # "request id used already": the store asks `query`
    message: str = "msg"  # top level
    data: str = "data"  # top level: the payload ("" = the top level itself)
    balance: str = "balance"
    codes: str = "cards"  # a list of strings, or of objects (then card_fields)
    card_fields: list[str] = Field(default_factory=list)  # e.g. [card_no, card_pwd]: joined by a space
    status: str = "status"
    upstream_id: str = "order_no"
    request_id: str = "request_id"  # in callbacks and query answers
    products: str = "list"
    product_sku: str = "sku"
    product_title: str = "name"
    product_price: str = "price"
    product_stock: str = "stock"
    done: list[str] = Field(default_factory=lambda: ["success"])  # order / top-up statuses
    pending: list[str] = Field(default_factory=lambda: ["processing"])
    failed: list[str] = Field(default_factory=lambda: ["failed"])
    valid: list[str] = Field(default_factory=lambda: ["valid"])  # code statuses (check)
    used: list[str] = Field(default_factory=lambda: ["used"])
    invalid: list[str] = Field(default_factory=lambda: ["invalid"])

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

    type: Literal["http", "store"] = "http"
    base_url: str = ""
    app_key: str = ""
    key_id: str = ""  # type store: the API key id the other store issued us (`run.py reseller key` there)
    secret: Secret = SecretStr("")
    sign: Literal["md5", "hmac-sha256"] = "md5"
    sign_case: Literal["upper", "lower"] = "upper"
    sign_key_param: str = "key"  # the string signed ends with &key=<secret>; "" = the secret appended as is
    body: Literal["form", "json"] = "form"
    timeout: float = Field(10.0, gt=0, le=30)  # seconds per attempt
    retries: int = Field(2, ge=0, le=5)  # more attempts of one call after a timeout, 5xx or lost answer
    backoff: float = Field(0.5, ge=0, le=10)  # seconds before the first retry; doubles
    amounts: Literal["yuan", "fen"] = "yuan"  # how the supplier writes money ("45.00" yuan, or 4500 fen)
    callback_url: str = ""  # sent with top-ups: the public URL of this store's /supplier/<name>/callback
    # A callback's `timestamp` (fields.timestamp; Unix seconds, or milliseconds when 13 digits) must be within this
    # many seconds of the store's clock, or it is refused; 0 = not checked (a supplier whose callbacks carry none).
    callback_max_skew: int = Field(300, ge=0, le=86400)
    max_attempts: int = Field(5, ge=1, le=50)  # tries of an order's purchase/top-up before it is refunded
    paths: SupplierPaths = Field(default_factory=SupplierPaths)
    fields: SupplierFields = Field(default_factory=SupplierFields)
    answer: SupplierAnswer = Field(default_factory=SupplierAnswer)

    @model_validator(mode="after")
    def _check(self) -> "Supplier":
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
    """A reseller's custom card face (定制卡面): its codes are also delivered drawn on this card (bots/cardface.py).
    Keyed by the reseller's name in `card_faces:`; paths relative to the config file; files checked at start."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    display_name: str = Field(min_length=1, max_length=32)
    background: str = "#1F2937"  # #RRGGBB
    background_image: str = ""  # PNG/JPEG, covers the card
    logo: str = ""  # PNG (transparency kept), drawn top left, at most 88 px
    font: str = ""  # a TTF/OTF with the name's glyphs (a CJK font for Chinese names); "" = built in

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
    """The scheduler (jobs/scheduler.py, core/jobs.py): intervals in seconds, the daily summary, code expiry."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    lease_seconds: float = Field(60, ge=1, le=3600)
    expire_holds_seconds: float = Field(30, gt=0)
    dispatch_outbox_seconds: float = Field(30, gt=0)
    reconcile_wechat_pay_seconds: float = Field(60, gt=0)
    reconcile_stars_seconds: float = Field(60, gt=0)
    restock_seconds: float = Field(60, gt=0)
    stock_alerts_seconds: float = Field(60, gt=0)
    expire_codes_seconds: float = Field(300, gt=0)
    poll_topups_seconds: float = Field(60, gt=0)
    expiry_margin_minutes: int = Field(60, ge=0)
    daily_summary_at: Annotated[str, AfterValidator(_check_hhmm)] = "09:00"
    timezone: Annotated[str, AfterValidator(_check_zone)] = "UTC"
    supplier_backoff_max_minutes: int = Field(60, ge=1)
    topup_stuck_minutes: int = Field(60, ge=1)


class ValueStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    over: int = Field(ge=0)  # an order worth more than this (minor units of store.currency) ...
    points: int = Field(ge=0)  # ... scores this many points (the highest step that applies)


class Risk(BaseModel):
    """The risk check of every order (core/risk.py, issue 6); see the README's "Rules and risk"."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    challenge_at: int = Field(30, ge=1)
    review_at: int = Field(60, ge=1)
    refuse_at: int = Field(90, ge=1)
    window_minutes: int = Field(10, ge=1, le=1440)
    buyer_orders: int = Field(5, ge=1)
    buyer_points: int = Field(30, ge=0)
    phone_orders: int = Field(8, ge=1)
    phone_points: int = Field(30, ge=0)
    chat_orders: int = Field(30, ge=1)
    chat_points: int = Field(10, ge=0)
    abandoned: int = Field(3, ge=0)
    abandoned_points: int = Field(15, ge=0)
    new_account_minutes: int = Field(10, ge=0)
    new_account_points: int = Field(10, ge=0)
    value_steps: list[ValueStep] = Field(default_factory=lambda: [
        ValueStep(over=50_000, points=10), ValueStep(over=100_000, points=20), ValueStep(over=300_000, points=40)])
    history_days: int = Field(90, ge=1, le=3650)
    refund_points: int = Field(20, ge=0)
    accounts_per_phone: int = Field(3, ge=1)
    shared_phone_points: int = Field(20, ge=0)
    review_hold_minutes: int = Field(1440, ge=1, le=10080)
    challenge_minutes: int = Field(10, ge=1, le=1440)
    pass_minutes: int = Field(60, ge=0, le=10080)
    # Incoming updates per user (core/flood.py): `flood_burst` at once, then `flood_per_minute`; an update up to
    # `flood_max_delay_seconds` early waits for its turn, later ones are dropped (the sender is told once).
    flood_per_minute: int = Field(60, ge=1, le=6000)
    flood_burst: int = Field(20, ge=1, le=1000)
    flood_max_delay_seconds: float = Field(5.0, ge=0, le=60)

    @model_validator(mode="after")
    def _check_order(self) -> "Risk":
        if not self.challenge_at <= self.review_at <= self.refuse_at:
            _fail((("review_at",), f"thresholds must rise: challenge_at ({self.challenge_at}) <= review_at "
                                   f"({self.review_at}) <= refuse_at ({self.refuse_at})"))
        return self


class TopupChoice(BaseModel):
    """One amount a reseller may top its wallet up by in the chat (issue 8)."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=1, le=100_000_000)  # credited, minor units of the reseller's currency (WeChat Pay: CNY fen)
    stars: int | None = Field(None, ge=1, le=100_000)  # its Telegram Stars price; none: not offered on Telegram


class Resellers(BaseModel):
    """Reseller wallets paid in the chat, the partial-stock wait and commissions (core/resellers.py, issue 8)."""

    model_config = ConfigDict(extra="forbid")

    topup_choices: list[TopupChoice] = Field(default_factory=list, max_length=8)  # none: no "Top up wallet" entry
    topup_minutes: int = Field(15, ge=1, le=1440)  # a top-up invoice / QR code may be paid this long
    wait_hours: float = Field(24, gt=0, le=720)  # rule partial: wait -- refunded when no stock came within this
    commission_bp: int = Field(0, ge=0, le=10_000)  # basis points (1/100 %) of a referred customer's paid order
    commissions: dict[str, int] = Field(default_factory=dict)  # reseller name -> its own rate in basis points
    # What B2B orders skip of the product rules and the risk score every order passes (core/rules.py EXEMPTIBLE:
    # per_day, per_buyer, phone_required, regions, min_level, risk). API orders skip the risk score by default (its
    # signals describe a person in a chat); group orders are their members' and skip nothing.
    api_exempt: list[str] = Field(default_factory=lambda: ["risk"], max_length=8)
    group_exempt: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("api_exempt", "group_exempt", mode="before")
    @classmethod
    def _exempt(cls, value: Any) -> Any:
        from core.rules import EXEMPTIBLE

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
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    store: Store = Field(default_factory=Store)
    database: Database = Field(default_factory=Database)
    server: Server = Field(default_factory=Server)
    vault: Vault = Field(default_factory=Vault)
    logging: Logging = Field(default_factory=Logging)
    catalog: list[Product] = Field(default_factory=list)
    telegram: Telegram = Field(default_factory=Telegram)
    wechat: Wechat = Field(default_factory=Wechat)
    jobs: Jobs = Field(default_factory=Jobs)
    suppliers: dict[str, Supplier] = Field(default_factory=dict)
    risk: Risk = Field(default_factory=Risk)
    resellers: Resellers = Field(default_factory=Resellers)
    card_faces: dict[str, CardFace] = Field(default_factory=dict)  # reseller name -> its card face

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
    def _check_catalog(self) -> "Settings":
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
    def _check_restock(self) -> "Settings":
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
