"""The `suppliers:` section: one upstream supplier per name, how it is called (paths, parameter names,
signing, retries) and how its answers are read."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.settings.fields import Loc, Secret, fail, num_to_str

SUPPLIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


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
        return [num_to_str(v) for v in value] if isinstance(value, list) else value


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
            fail(*problems)
        return self
