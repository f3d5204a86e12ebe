"""The `wechat:` section: the Official Account (callback token, appid, safe mode), its merchants, the custom
menu and WeChat Pay (`wechat.pay`)."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.settings.fields import Loc, Secret, fail


class Pay(BaseModel):
    """WeChat Pay, API v2 or v3, Native (QR code) and JSAPI (inside WeChat); see [WeChat Pay](wechat-pay.md)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    mch_id: str = Field("", description="the merchant id; empty = WeChat Pay off. Then `notify_url` and (v2) "
                                        "`api_key` or (v3) `apiv3_key`, `cert_serial_no` and `key` are required")
    version: Literal[2, 3] = Field(2, description="the pay API: 2 (XML, MD5 with `api_key`) or 3 (JSON, RSA "
                                                  "signatures with the merchant key, AES-GCM notices; through "
                                                  "wechatpayv3)")
    api_key: Secret = Field(SecretStr(""), description="the APIv2 key (32 characters); v2")
    api_base: str = Field("https://api.mch.weixin.qq.com", description="pay API server (a proxy, the tests' fake)")
    notify_url: str = Field("", description="the public URL of this store's `POST /wechat/pay/notify`")
    cert: str = Field("", description="merchant API certificate file (`apiclient_cert.pem`), for refunds")
    key: str = Field("", repr=False, description="its private key file (`apiclient_key.pem`): v2 refunds; v3 signs "
                                                 "every request and the JSAPI paySign with it. A missing file, or "
                                                 "(v2) only one of cert/key, is refused at start")
    apiv3_key: Secret = Field(SecretStr(""), description="v3: the APIv3 key (32 characters, 商户平台 → API安全 → "
                                                         "APIv3密钥): decrypts notices and downloaded platform "
                                                         "certificates")
    cert_serial_no: str = Field("", description="v3: the serial number of the merchant API certificate "
                                                "(`openssl x509 -noout -serial -in apiclient_cert.pem`)")
    platform_public_key: str = Field("", description="v3: the WeChat Pay platform public key file (`pub_key.pem`, "
                                                     "商户平台 → API安全 → 微信支付公钥) with "
                                                     "`platform_public_key_id`; empty = platform certificates are "
                                                     "downloaded from `/v3/certificates` and verified")
    platform_public_key_id: str = Field("", description="v3: its id (`PUB_KEY_ID_...`)")
    platform_cert_dir: str = Field("", description="v3 without a platform public key: a directory where downloaded "
                                                   "platform certificates are kept between starts (optional)")

    @model_validator(mode="after")
    def _check_required(self) -> Pay:
        if self.mch_id:
            problems: list[tuple[Loc, str]] = []
            if self.version == 2 and not self.api_key.get_secret_value():
                problems.append((("api_key",), "required when wechat.pay.mch_id is set (version 2)"))
            if self.version == 3:
                problems += [((name,), "required for WeChat Pay API v3 (wechat.pay.version: 3)")
                             for name in ("apiv3_key", "cert_serial_no", "key") if not _value(getattr(self, name))]
                if len(self.apiv3_key.get_secret_value().encode()) not in (0, 32):
                    problems.append((("apiv3_key",), "must be 32 characters (the APIv3 key from the merchant "
                                                     "platform)"))
                if bool(self.platform_public_key) != bool(self.platform_public_key_id):
                    problems.append((("platform_public_key_id" if self.platform_public_key
                                      else "platform_public_key",),
                                     "platform_public_key and platform_public_key_id go together"))
            if not self.notify_url:
                problems.append((("notify_url",), "required when wechat.pay.mch_id is set"))
            if problems:
                fail(*problems)
        return self


def _value(v: str | SecretStr) -> str:
    return v.get_secret_value() if isinstance(v, SecretStr) else v


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
            fail(((), "needs exactly one of action, url or sub_button"))
        if not self.name.strip():
            fail((("name",), "must not be empty"))
        if self.action and not MENU_ACTIONS.match(self.action):
            fail((("action",), "must be one of menu, catalog, orders, help, language, language:<code>"))
        if self.url and not re.match(r"^https?://", self.url):
            fail((("url",), "must start with http:// or https://"))
        if len(self.sub_button) > 5:
            fail((("sub_button",), "at most 5 buttons (WeChat's limit)"))
        for i, sub in enumerate(self.sub_button):
            if sub.sub_button:
                fail((("sub_button", i, "sub_button"), "menus have two levels at most"))
            if len(sub.name.encode()) > 60:
                fail((("sub_button", i, "name"), "at most 60 bytes (20 Chinese characters)"))
        return self


class H5(BaseModel):
    """The WeChat H5 shop at `/h5/` (OAuth2 `snsapi_base`, JSAPI payment); see [The H5 shop](wechat.md#the-h5-shop)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="serve the H5 shop at `<server.public_url>/h5/` and the Mini App API for "
                                            "it (needs `server.public_url`); `run.py wechat menu` adds a Shop button")
    session_hours: int = Field(12, ge=1, le=720, description="how long a page's session (after the silent OAuth2 "
                                                             "login) is good for; then the page logs in again")
    oauth_base: str = Field("https://open.weixin.qq.com", description="where buyers are sent to authorize "
                                                                    "(`/connect/oauth2/authorize`; the tests' fake)")

    @field_validator("oauth_base")
    @classmethod
    def _check_oauth_base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s?#]+$", value):
            raise ValueError("must be an http:// or https:// address without a path (https://open.weixin.qq.com)")
        return value


class BroadcastTemplate(BaseModel):
    """A template message (模板消息) for broadcasts to buyers outside the 48-hour customer-service window; see
    [Broadcasts on WeChat](wechat.md#broadcasts-outside-the-48-hour-window). WeChat's rules forbid marketing in
    template messages: pick a service-notice template (e.g. 服务通知 / 公告通知) and keep announcements to what
    buyers asked for (restocks, service changes)."""

    model_config = ConfigDict(extra="forbid")

    template_id: str = Field("", description="the template's id (公众号 → 广告与服务 → 模板消息); empty = none: "
                                             "broadcasts reach only buyers who wrote in the last 48 hours")
    text_field: str = Field("keyword1", description="the template field that carries the announcement's text")
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="the template's other fields and their text (`{date}`: the day "
                                               "sent, `{shop}`: the bot's name), e.g. `{first: 店铺公告, keyword2: "
                                               "'{date}', remark: 回复 /stop_news 退订}`")
    url: str = Field("", description="where tapping the message leads (e.g. the H5 shop); empty = nowhere")

    @field_validator("template_id", "text_field")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value and not re.match(r"^[A-Za-z0-9_-]{1,64}$", value):
            raise ValueError("letters, digits, '_' or '-' (1-64)")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://\S+$", value):
            raise ValueError("must be an http:// or https:// address")
        return value


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
    h5: H5 = Field(default_factory=H5, description="the H5 shop opened from the menu (`/h5/`)")
    # The URL carries the robot's key: a secret.
    wecom_webhook: Secret = Field(SecretStr(""), description="a WeCom (企业微信) group robot's webhook URL "
                                                             "(`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
                                                             "...`; the key is a secret): merchant alerts also go "
                                                             "there, at most 20 a minute")
    menu: list[MenuButton] = Field(default_factory=_default_menu,
                                   description="the custom menu `run.py wechat menu` creates: at most 3 buttons")
    pay: Pay = Field(default_factory=Pay, description="WeChat Pay")
    broadcast_template: BroadcastTemplate = Field(default_factory=BroadcastTemplate,
                                                  description="broadcasts outside the 48-hour window, by template "
                                                              "message")

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
                fail(*problems)
        return self
