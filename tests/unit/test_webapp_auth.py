"""Mini App initData (core/webapp_auth.py): what Telegram signed with this bot's token, recent enough, passes; a
forged, tampered, other-bot, stale or user-less one is refused with its reason. The initData here is built by
Telegram's documented algorithm written out in the test, not by the code under test."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest

from core.webapp_auth import InitDataRefusal, InitDataRefused, check_init_data, sign_init_data

TOKEN = "123456:TEST-token"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
USER = {"id": 4242, "first_name": "Li", "language_code": "zh-hans", "username": "li"}


def telegram_signs(fields: dict[str, str], token: str = TOKEN) -> str:
    """Telegram's algorithm: secret = HMAC_SHA256("WebAppData", token); hash = HMAC_SHA256(secret, dcs)."""
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    dcs = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return hmac.new(secret, dcs.encode(), hashlib.sha256).hexdigest()


def init_data(*, token: str = TOKEN, at: datetime = NOW, user: dict[str, object] | None = USER,
              **extra: str) -> str:
    fields = {"auth_date": str(int(at.timestamp())), "query_id": "AAH-q", **extra}
    if user is not None:
        fields["user"] = json.dumps(user, separators=(",", ":"), ensure_ascii=False)
    return urlencode({**fields, "hash": telegram_signs(fields, token)})


def refused(data: str | None, **kw: object) -> InitDataRefusal:
    with pytest.raises(InitDataRefused) as caught:
        check_init_data(data, TOKEN, NOW, HOUR, **kw)  # type: ignore[arg-type]
    return caught.value.reason


def test_valid_init_data_gives_the_user_and_language() -> None:
    got = check_init_data(init_data(at=NOW - timedelta(minutes=59)), TOKEN, NOW, HOUR)
    assert got.user.id == 4242
    assert got.user.language_code == "zh-hans"
    assert got.user.username == "li"
    assert got.query_id == "AAH-q"
    assert got.auth_date == NOW - timedelta(minutes=59)
    assert "hash" not in got.fields


def test_the_module_signer_agrees_with_telegrams_algorithm() -> None:
    fields = {"auth_date": str(int(NOW.timestamp())), "user": json.dumps(USER)}
    assert check_init_data(sign_init_data(fields, TOKEN), TOKEN, NOW, HOUR).user.id == 4242


def test_a_wrong_hash_is_refused() -> None:
    data = init_data()
    forged = data[: data.index("hash=") + 5] + "0" * 64
    assert refused(forged) is InitDataRefusal.BAD_HASH


def test_init_data_signed_for_another_bot_is_refused() -> None:
    assert refused(init_data(token="999999:other-bot")) is InitDataRefusal.BAD_HASH


def test_a_tampered_field_breaks_the_hash() -> None:
    data = init_data()
    other = quote(json.dumps({**USER, "id": 1}, separators=(",", ":")), safe="")
    original = quote(json.dumps(USER, separators=(",", ":"), ensure_ascii=False), safe="")
    tampered = data.replace(original, other)
    assert tampered != data
    assert refused(tampered) is InitDataRefusal.BAD_HASH
    assert refused(init_data() + "&chat_type=private") is InitDataRefusal.BAD_HASH  # an added field too


def test_expired_init_data_is_refused_and_the_age_is_configurable() -> None:
    old = init_data(at=NOW - timedelta(hours=1, seconds=1))
    assert refused(old) is InitDataRefusal.EXPIRED
    assert check_init_data(old, TOKEN, NOW, timedelta(hours=2)).user.id == 4242


def test_init_data_from_the_future_is_refused_beyond_a_small_skew() -> None:
    assert check_init_data(init_data(at=NOW + timedelta(seconds=30)), TOKEN, NOW, HOUR).user.id == 4242
    assert refused(init_data(at=NOW + timedelta(minutes=5))) is InitDataRefusal.FUTURE


def test_missing_user_is_refused() -> None:
    assert refused(init_data(user=None)) is InitDataRefusal.NO_USER
    assert refused(init_data(user={"first_name": "no id"})) is InitDataRefusal.NO_USER


def test_duplicated_keys_are_refused() -> None:
    data = init_data()
    assert refused(data + "&auth_date=1") is InitDataRefusal.DUPLICATE_KEY
    assert refused(data + "&hash=" + "0" * 64) is InitDataRefusal.DUPLICATE_KEY


def test_missing_or_malformed_init_data_is_refused() -> None:
    assert refused(None) is InitDataRefusal.MISSING
    assert refused("") is InitDataRefusal.MISSING
    assert refused("no-equals-sign") is InitDataRefusal.MALFORMED
    assert refused("a=1&" * 5000) is InitDataRefusal.MALFORMED
    fields = {"auth_date": str(int(NOW.timestamp())), "user": json.dumps(USER)}
    assert refused(urlencode(fields)) is InitDataRefusal.NO_HASH
    no_date = {"user": json.dumps(USER)}
    assert refused(urlencode({**no_date, "hash": telegram_signs(no_date)})) is InitDataRefusal.NO_AUTH_DATE
