"""The shop's own sections: `store` (name, money, languages, holds), `database`, `server` (the HTTP server),
`vault` (the keys codes are encrypted with) and `logging`."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.settings.catalog import Images
from config.settings.fields import Key32, Loc, Localized, Secret, decode_key, fail


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
    terms: Localized = Field(default_factory=dict,
                             description="the shop's terms of sale, answered to `/terms` (Telegram asks sellers of "
                                         "digital goods for it): a string or a per-language map `{en: ..., "
                                         "zh_CN: ...}`; empty: a short default text from locales/")
    images: Images = Field(default_factory=Images, description="limits of product pictures")

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_hint(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("must be a 3-letter uppercase currency code such as CNY or USD")
        return value

    @model_validator(mode="after")
    def _check_language(self) -> Store:
        if self.default_language not in self.languages:
            fail((("default_language",), f"must be one of store.languages ({', '.join(self.languages)})"))
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
    pool_size: int = Field(5, ge=1, le=100, description="connection pool size: PostgreSQL keeps up to this many "
                           "writer connections and twice as many reader connections (made as needed, kept); "
                           "SQLite one writer and twice this many readers")

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
    public_url: str = Field("", description="the store's public address as buyers and merchants reach it (e.g. "
                                            "`https://shop.example.com`, behind a TLS proxy): the console's login "
                                            "links are built from it; empty: `http://host:port`")
    api: bool = Field(False, description="serve the B2B API for resellers (bots/b2b_api.py) under `/api/v1` on this "
                                         "server (the server starts for it); see [the API](resellers.md#the-api)")
    api_max_skew_seconds: int = Field(300, ge=30, le=3600,
                                      description="signed requests whose `X-Timestamp` is further than this from "
                                                  "the store's clock are refused")
    api_rate_per_second: int = Field(20, ge=1, le=10_000,
                                     description="the rate limit a new API key gets (`reseller key --rate N` sets "
                                                 "another); each key has its own")
    ops: bool = Field(False, description="start the HTTP server for `/healthz`, `/readyz` and `/metrics` even when "
                                         "nothing else needs it (Telegram polling alone); they are served whenever "
                                         "the server runs. Off by default: no port is opened that was not asked "
                                         "for. See [Health and metrics](operating.md#health-and-metrics)")
    metrics_token: Secret = Field(SecretStr(""), description="`/metrics` answers loopback clients, and others only "
                                                             "with `Authorization: Bearer <this>`; empty: loopback "
                                                             "only. A request a proxy forwarded (`X-Forwarded-For`, "
                                                             "`Forwarded`, `X-Real-IP`) needs the token too")
    ready_max_backlog: int = Field(1000, ge=1, le=10_000_000,
                                   description="`/readyz` fails while this many outbox rows (or more) are due and "
                                               "unsent")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http:// or https:// address (e.g. https://shop.example.com)")
        return value

    def base_url(self) -> str:
        """Where the store's pages are reached from outside: `public_url`, else this server's own address."""
        return self.public_url or f"http://{self.host}:{self.port}"


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
            fail(*(((k,), "key id must be 1-32 letters, digits, '_' or '-'") for k in bad))
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
            fail(*problems)
        return self

    def decoded_keys(self) -> dict[str, bytes]:
        """``key_id -> 32 raw bytes`` for every key in ``keys`` (mapping order kept)."""
        return {k: decode_key(v.get_secret_value()) or b"" for k, v in self.keys.items()}

    def fingerprint_key_bytes(self) -> bytes | None:
        """The 32 raw bytes of ``fingerprint_key``, or ``None`` when not set."""
        if self.fingerprint_key is None:
            return None
        return decode_key(self.fingerprint_key.get_secret_value())


class Logging(BaseModel):
    """The store's log (stderr). Codes and tokens never reach it; see [Logs](operating.md#logs)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        "INFO", description="the least severe messages logged")
    format: Literal["text", "json"] = Field(
        "text", description="`text`: one readable line per message; `json`: one JSON object per line (time, level, "
                            "logger, message, and order_id, channel, update_id when known) for a log collector")


class Redis(BaseModel):
    """Several store processes share Telegram's send limits, the flood and rate limits, update de-duplication, the
    WeChat access token and cache invalidation through Redis (see [Several processes](deployment.md)). Empty
    `url`: one process, everything in its own memory, no Redis needed."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    url: Secret = Field(SecretStr(""), description="e.g. `redis://127.0.0.1:6379/0` (a password goes in the URL: "
                                                   "use `${REDIS_URL}`); empty: single process, no Redis")
    prefix: str = Field("store:", pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                        description="every key and channel starts with it, so two shops can share one Redis")
    start_without: bool = Field(False, description="Redis unreachable at start: `false` refuses to start naming "
                                                   "`redis.url`; `true` starts with this process's own limits and "
                                                   "uses Redis once it answers")
    timeout_seconds: float = Field(2.0, gt=0, le=10, description="how long a Redis call may take before it counts "
                                                                 "as slow: a send-limit turn or a claim then waits "
                                                                 "up to 4 times this for Redis's answer, other "
                                                                 "calls are answered from the process's own memory; "
                                                                 "no answer within 4 times this, or three slow "
                                                                 "moments in a row: Redis counts as away for a "
                                                                 "moment")
