"""The `telegram:` section: the bot, its library and mode (polling or webhook), its merchants, outbound rates
and reseller ordering in group chats."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.settings.fields import Loc, Secret, fail


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
    """Outbound rates (defaults from Telegram's Bot FAQ), for the bot as a whole: with `redis.url` every store process
    draws on the same buckets. Raise them only for a local test server or paid broadcasts."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    overall_per_second: float = Field(30, gt=0, description="outbound messages a second, all chats together")
    per_chat_burst: int = Field(3, ge=1, description="messages one private chat may get at once; then about one a "
                                                     "second")
    group_per_minute: int = Field(20, ge=1, description="messages a minute to one group")
    broadcast_share: float = Field(0.5, gt=0, le=1, description="the part of `overall_per_second` broadcasts may "
                                                               "use at most: deliveries and answers keep the rest")


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


class TelegramWebApp(BaseModel):
    """The Mini App's server side (`/app/api/` on the store's HTTP server, when `server.public_url` is set); see
    [Mini App (server side)](telegram.md#mini-app-server-side)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    enabled: bool = Field(True, description="serve the Mini App's API when Telegram is on and `server.public_url` "
                                            "is set; false: never")
    max_age_seconds: int = Field(3600, ge=60, le=86400,
                                 description="how old a Mini App's `initData` (its `auth_date`) may be; older "
                                             "requests are refused with 401")


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
    webapp: TelegramWebApp = Field(default_factory=TelegramWebApp, description="the Mini App's server side")

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
                fail(*problems)
        return self
