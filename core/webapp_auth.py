"""Telegram Mini App `initData`: checked as Telegram specifies, framework-free.

Telegram's algorithm (core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app):
    secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)
    hash       = hex(HMAC_SHA256(key=secret_key, msg=data_check_string))
where data_check_string is every received field but `hash` as `key=value` (values URL-decoded), sorted by key and
joined by "\\n". The hash is compared in constant time; `auth_date` may be at most `max_age` old and at most `skew`
in the future (clocks drift a little, not an hour). A key given twice is refused: which copy Telegram signed cannot
be told. Anything wrong raises InitDataRefused with a reason from InitDataRefusal; nothing is trusted before the hash
matches.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

MAX_LENGTH = 8192  # Telegram's initData is well under 1 KB; longer is not Telegram's
DEFAULT_SKEW = timedelta(seconds=60)


class InitDataRefusal(StrEnum):
    MISSING = "missing"  # no initData at all
    MALFORMED = "malformed"  # not a query string, or too long
    DUPLICATE_KEY = "duplicate_key"  # a key given twice
    NO_HASH = "no_hash"
    BAD_HASH = "bad_hash"  # forged, tampered with, or signed for another bot
    NO_AUTH_DATE = "no_auth_date"  # absent or not a number
    EXPIRED = "expired"  # auth_date older than max_age
    FUTURE = "future"  # auth_date later than now + skew
    NO_USER = "no_user"  # no `user` field, or not a JSON object with an integer id


class InitDataRefused(Exception):
    def __init__(self, reason: InitDataRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebAppUser:
    id: int
    language_code: str | None
    first_name: str = ""
    username: str = ""


@dataclass(frozen=True, slots=True)
class WebAppInit:
    """initData that passed the check."""

    user: WebAppUser
    auth_date: datetime
    query_id: str
    fields: Mapping[str, str]  # every signed field, as received (URL-decoded)


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")


def sign_fields(fields: Mapping[str, str], bot_token: str) -> str:
    """The hex hash Telegram puts in `hash` for these fields (every key but `hash`)."""
    return hmac.new(_secret(bot_token), data_check_string(fields).encode(), hashlib.sha256).hexdigest()


def sign_init_data(fields: Mapping[str, str], bot_token: str) -> str:
    """A signed initData query string (as Telegram.WebApp.initData carries it): for tests and local stand-ins."""
    return urlencode({**fields, "hash": sign_fields(fields, bot_token)})


def check_init_data(init_data: str | None, bot_token: str, now: datetime, max_age: timedelta,
                    skew: timedelta = DEFAULT_SKEW) -> WebAppInit:
    """The verified initData, or InitDataRefused."""
    if not init_data:
        raise InitDataRefused(InitDataRefusal.MISSING)
    if len(init_data) > MAX_LENGTH:
        raise InitDataRefused(InitDataRefusal.MALFORMED)
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True, errors="strict",
                          max_num_fields=64)
    except (ValueError, UnicodeDecodeError):
        raise InitDataRefused(InitDataRefusal.MALFORMED) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise InitDataRefused(InitDataRefusal.DUPLICATE_KEY)
        fields[key] = value
    given = fields.get("hash")
    if not given:
        raise InitDataRefused(InitDataRefusal.NO_HASH)
    if not hmac.compare_digest(sign_fields(fields, bot_token).encode(), given.lower().encode()):
        raise InitDataRefused(InitDataRefusal.BAD_HASH)
    try:
        auth = datetime.fromtimestamp(int(fields.get("auth_date", "")), UTC)
    except (ValueError, OverflowError, OSError):
        raise InitDataRefused(InitDataRefusal.NO_AUTH_DATE) from None
    if auth < now - max_age:
        raise InitDataRefused(InitDataRefusal.EXPIRED)
    if auth > now + skew:
        raise InitDataRefused(InitDataRefusal.FUTURE)
    return WebAppInit(_user(fields.get("user")), auth, fields.get("query_id", ""),
                      {k: v for k, v in fields.items() if k != "hash"})


def _user(raw: str | None) -> WebAppUser:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise InitDataRefused(InitDataRefusal.NO_USER)
    uid = data.get("id")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        raise InitDataRefused(InitDataRefusal.NO_USER)
    lang = data.get("language_code")
    return WebAppUser(uid, lang if isinstance(lang, str) and lang else None,
                      str(data.get("first_name") or ""), str(data.get("username") or ""))
