"""Settings: loading YAML, ${VAR} interpolation, validation messages, path helpers."""
from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings, parse_settings
from core.models import localized

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
FP_KEY = base64.b64encode(b"F" * 32).decode()


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    return load_settings(write(tmp_path, text), env=env or {})


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return str(info.value)


# --------------------------------------------------------------------------- defaults


def test_empty_file_gives_all_defaults(tmp_path):
    s = load(tmp_path, "")
    assert s.store.name == "Card Shop"
    assert s.store.currency == "CNY"
    assert s.store.languages == ["en", "zh_CN"]
    assert s.store.hold_minutes == 15
    assert s.database.url == "sqlite+aiosqlite:///data/store.db"
    assert s.database.sqlite_synchronous == "FULL"
    assert s.server.port == 8080
    assert s.logging.level == "INFO"
    assert s.catalog == []
    assert s.telegram.mode == "polling"
    assert s.vault.keys == {}
    # no channel configured + demo "auto" -> demo mode
    assert s.channels_configured() is False
    assert s.demo_mode() is True


def test_configured_channel_turns_auto_demo_off(tmp_path):
    s = load(tmp_path, "telegram: {token: '123:abc'}")
    assert s.channels_configured() is True
    assert s.demo_mode() is False
    forced = load(tmp_path, "store: {demo: true}\ntelegram: {token: '123:abc'}")
    assert forced.demo_mode() is True


def test_case_insensitive_enums_are_normalised(tmp_path):
    s = load(tmp_path, "database: {sqlite_synchronous: normal}\nlogging: {level: debug}")
    assert s.database.sqlite_synchronous == "NORMAL"
    assert s.logging.level == "DEBUG"


# --------------------------------------------------------------------------- interpolation


def test_interpolation_plain_default_escape_and_inside_longer_string(tmp_path):
    s = load(
        tmp_path,
        """
        store:
          name: ${SHOP_NAME}
          support: ${SUPPORT:-@help_bot}
        server:
          port: ${PORT:-9000}
        database:
          url: postgresql+asyncpg://${DB_USER}@db.local/shop
        telegram:
          api_base: "https://x/$${NOT_A_VAR}"
        """,
        env={"SHOP_NAME": "Keys R Us", "DB_USER": "alice"},
    )
    assert s.store.name == "Keys R Us"
    assert s.store.support == "@help_bot"
    assert s.server.port == 9000
    assert s.database.url == "postgresql+asyncpg://alice@db.local/shop"
    assert s.telegram.api_base == "https://x/${NOT_A_VAR}"


def test_set_variable_wins_over_default(tmp_path):
    s = load(tmp_path, "server: {port: '${PORT:-9000}'}", env={"PORT": "7000"})
    assert s.server.port == 7000


def test_interpolation_reads_os_environ_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SETTINGS_TEST_NAME", "From Env")
    s = load_settings(write(tmp_path, "store: {name: '${SETTINGS_TEST_NAME}'}"))
    assert s.store.name == "From Env"


def test_unset_variable_names_key_and_variable(tmp_path):
    msg = error_of(tmp_path, "telegram:\n  token: ${TELEGRAM_TOKEN}\n")
    assert "telegram.token" in msg
    assert "TELEGRAM_TOKEN" in msg
    assert "not set" in msg


def test_unset_variable_inside_catalog_list_names_index(tmp_path):
    msg = error_of(
        tmp_path,
        """
        catalog:
          - {sku: a, title: A, price: 1}
          - {sku: b, title: "${TITLE_B}", price: 1}
        """,
    )
    assert "catalog[1].title" in msg
    assert "TITLE_B" in msg


# --------------------------------------------------------------------------- validation messages


def test_unknown_keys_are_named_by_dotted_path(tmp_path):
    msg = error_of(
        tmp_path,
        """
        database:
          urll: sqlite+aiosqlite:///x.db
        catalog:
          - {sku: a, title: A, price: 1, colour: red}
        """,
    )
    assert "database.urll: unknown key" in msg
    assert "did you mean 'url'" in msg
    assert "catalog[0].colour: unknown key" in msg


def test_wrong_type_names_the_path(tmp_path):
    msg = error_of(tmp_path, "server:\n  port: abc\n")
    assert "server.port:" in msg
    assert "valid integer" in msg


def test_all_errors_are_listed_at_once(tmp_path):
    msg = error_of(
        tmp_path,
        """
        server: {port: 70000}
        catalog:
          - {sku: a, title: A, price: -5}
          - {sku: "bad sku!", title: B, price: 1}
          - {sku: c, price: 1}
        """,
    )
    assert "server.port:" in msg
    assert "catalog[0].price:" in msg
    assert "catalog[1].sku:" in msg
    assert "catalog[2].title: required key is missing" in msg


def test_database_url_scheme_is_checked(tmp_path):
    msg = error_of(tmp_path, "database: {url: 'mysql://x/y'}")
    assert "database.url:" in msg
    assert "sqlite+aiosqlite://" in msg


def test_default_language_must_be_listed(tmp_path):
    msg = error_of(tmp_path, "store: {default_language: fr, languages: [en]}")
    assert "store.default_language:" in msg


def test_webhook_mode_requires_secret(tmp_path):
    msg = error_of(
        tmp_path,
        """
        telegram:
          token: "123:abc"
          mode: webhook
          webhook: {url: "https://shop.example/tg"}
        """,
    )
    assert "telegram.webhook.secret: required" in msg
    assert "telegram.webhook.url" not in msg


def test_webhook_settings_not_required_in_polling_mode(tmp_path):
    s = load(tmp_path, "telegram: {token: '123:abc', mode: polling}")
    assert s.telegram.mode == "polling"


def test_wechat_appid_requires_secret_and_token(tmp_path):
    msg = error_of(tmp_path, "wechat: {appid: wx123, token: tok}")
    assert "wechat.secret: required when wechat.appid is set" in msg
    assert "wechat.token" not in msg


def test_wechat_pay_requires_api_key_and_notify_url(tmp_path):
    msg = error_of(tmp_path, "wechat: {pay: {mch_id: 1900000109}}")
    assert "wechat.pay.api_key:" in msg
    assert "wechat.pay.notify_url:" in msg


def test_vault_keys_require_fingerprint_key(tmp_path):
    msg = error_of(tmp_path, f"vault:\n  keys: {{k1: '{KEY_A}'}}\n")
    assert "vault.fingerprint_key: required when vault.keys is set" in msg


def test_vault_key_must_be_32_bytes(tmp_path):
    short = base64.b64encode(b"x" * 16).decode()
    msg = error_of(tmp_path, f"vault:\n  keys: {{k1: '{short}'}}\n  fingerprint_key: '{FP_KEY}'\n")
    assert "vault.keys.k1:" in msg
    assert "32 bytes" in msg


def test_vault_current_key_defaults_to_last_and_must_exist(tmp_path):
    s = load(tmp_path, f"vault: {{keys: {{old: '{KEY_A}', new: '{KEY_B}'}}, fingerprint_key: '{FP_KEY}'}}")
    assert s.vault.current_key == "new"
    assert s.vault.decoded_keys() == {"old": b"A" * 32, "new": b"B" * 32}
    msg = error_of(
        tmp_path,
        f"vault: {{keys: {{old: '{KEY_A}'}}, current_key: nope, fingerprint_key: '{FP_KEY}'}}",
    )
    assert "vault.current_key:" in msg


def test_duplicate_sku_is_named(tmp_path):
    msg = error_of(
        tmp_path,
        """
        catalog:
          - {sku: steam-10, title: Steam 10, price: 1000}
          - {sku: steam-20, title: Steam 20, price: 2000}
          - {sku: steam-10, title: Again, price: 1000}
        """,
    )
    assert "catalog[2].sku:" in msg
    assert "duplicate" in msg


def test_yaml_syntax_error_mentions_line(tmp_path):
    msg = error_of(tmp_path, "store:\n  name: ok\n  bad: [unclosed\nserver:\n  port: 1\n")
    assert "line 3" in msg  # the unclosed bracket opens on line 3
    assert str(tmp_path / "config.yaml") in msg


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    assert str(missing) in str(info.value)


# --------------------------------------------------------------------------- secrets


def test_secrets_never_appear_in_errors_or_repr(tmp_path):
    secret = "SuperSecret_do-not-leak"
    # valid settings: secrets masked in repr/str
    s = load(
        tmp_path,
        f"""
        telegram:
          token: "{secret}"
          mode: webhook
          webhook: {{url: "https://shop.example/tg", secret: "{secret}"}}
        wechat:
          appid: wx1
          token: "{secret}"
          secret: "{secret}"
        database:
          url: "postgresql+asyncpg://shop:{secret}@db/shop"
        """,
    )
    assert secret not in repr(s)
    assert secret not in str(s)
    assert s.telegram.token.get_secret_value() == secret
    assert s.database.url.endswith(f"{secret}@db/shop")

    # invalid settings: the error lists problems, not the secret
    with pytest.raises(ConfigError) as info:
        load(
            tmp_path,
            f"""
            telegram:
              token: "{secret}"
              mode: webhook
              webhook: {{url: "https://x", secret: "{secret} with spaces"}}
            wechat:
              appid: wx1
              secret: "{secret}"
              aes_key: "{secret}"
            vault:
              keys: {{k1: "{secret}"}}
            """,
        )
    text = str(info.value)
    assert "telegram.webhook.secret:" in text
    assert "wechat.aes_key:" in text
    assert "vault.keys.k1:" in text
    assert secret not in text
    assert secret not in repr(info.value)


# --------------------------------------------------------------------------- catalog and localized text


def test_product_localized_fields_and_defaults(tmp_path):
    s = load(
        tmp_path,
        """
        catalog:
          - sku: netflix-1m
            title: {en: Netflix 1 month, zh_CN: 网飞一个月}
            category: Streaming
            price: 4500
          - sku: shared-vpn
            title: Shared VPN
            kind: reusable
            price: 100
        """,
    )
    netflix, vpn = s.catalog
    assert netflix.title == {"en": "Netflix 1 month", "zh_CN": "网飞一个月"}
    assert netflix.category == {"*": "Streaming"}
    assert netflix.description == {}
    assert (netflix.min_qty, netflix.max_qty, netflix.kind, netflix.active) == (1, 10, "code", True)
    assert localized(netflix.title, "zh_CN", "en") == "网飞一个月"
    assert localized(netflix.category, "zh_CN", "en") == "Streaming"
    assert vpn.max_qty == 1  # reusable: one per order


def test_max_qty_below_min_qty_is_rejected(tmp_path):
    msg = error_of(tmp_path, "catalog: [{sku: a, title: A, price: 1, min_qty: 5, max_qty: 2}]")
    assert "catalog[0].max_qty:" in msg


def test_localized_fallback_order():
    value = {"zh_CN": "中文", "*": "any", "en": "English"}
    assert localized(value, "zh_CN", "en") == "中文"  # exact language
    assert localized(value, "ru", "en") == "any"  # then "*"
    assert localized({"en": "English", "de": "Deutsch"}, "ru", "en") == "English"  # then fallback
    assert localized({"de": "Deutsch", "fr": "Français"}, "ru", "en") == "Deutsch"  # then first
    assert localized({}, "ru", "en") == ""


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_config_directory(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(write(conf_dir, "vault: {key_file: keys/vault.key}"), env={})
    assert s.vault.key_file == "keys/vault.key"  # stays as written
    assert s.resolve_path(s.vault.key_file) == conf_dir.resolve() / "keys" / "vault.key"
    assert s.resolve_path("/abs/file") == Path("/abs/file")
    assert s.database.url == "sqlite+aiosqlite:///data/store.db"
    assert s.database_url_resolved() == f"sqlite+aiosqlite:///{conf_dir.resolve() / 'data' / 'store.db'}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:////var/lib/shop/store.db",
        "postgresql+asyncpg://shop@db/shop",
    ],
)
def test_database_url_resolved_leaves_memory_absolute_and_postgres_alone(tmp_path, url):
    s = parse_settings({"database": {"url": url}}, tmp_path, env={})
    assert s.database_url_resolved() == url
