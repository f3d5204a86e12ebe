"""The whole file: the Settings model holding every section, the checks across sections (a product's supplier
and restock against `suppliers:`) and the helpers the store reads it with (paths, the database URL, demo mode)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from config.settings.catalog import Product
from config.settings.console import Console
from config.settings.fields import Loc, fail
from config.settings.jobs import Jobs
from config.settings.marketing import Marketing
from config.settings.resellers import CardFace, Resellers
from config.settings.risk import Risk
from config.settings.store import Database, Logging, Redis, Server, Store, Vault
from config.settings.suppliers import SUPPLIER_NAME, Supplier
from config.settings.telegram import Telegram
from config.settings.wechat import Wechat


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
    redis: Redis = Field(default_factory=Redis, description="several processes: what they share through Redis")
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
    console: Console = Field(default_factory=Console, description="the merchant's web console")
    marketing: Marketing = Field(default_factory=Marketing, description="promotions: coupons, flash sales, members")

    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("store", "database", "server", "vault", "logging", "redis", "telegram", "wechat", "jobs", "risk",
                     "resellers", "console", "marketing", mode="before")
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
            bad = [k for k in value if not isinstance(k, str) or not SUPPLIER_NAME.match(k)]
            if bad:
                fail(*(((str(k),), "supplier name must be 1-32 letters, digits, '_' or '-'") for k in bad))
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
                problems.append((("catalog", i, "sku"),
                                 f"duplicate sku {product.sku!r} (already used by catalog[{seen[product.sku]}])"))
            else:
                seen[product.sku] = i
            problems.extend(self._bundle_problems(i, product))
            if product.supplier and product.supplier not in self.suppliers:
                known = ", ".join(self.suppliers) or "none configured"
                problems.append((("catalog", i, "supplier"), f"unknown supplier {product.supplier!r} "
                                                            f"(suppliers: {known})"))
        if problems:
            fail(*problems)
        return self

    def _bundle_problems(self, i: int, product: Product) -> list[tuple[Loc, str]]:
        """A bundle's parts are `code` products of the catalogue (reusable, supplier and top-up parts are refused:
        a bundle is held whole from pools when ordered, and those kinds hold nothing), each named once."""
        kinds = {p.sku: p.kind for p in self.catalog}
        out: list[tuple[Loc, str]] = []
        named: set[str] = set()
        for j, part in enumerate(product.bundle):
            loc: Loc = ("catalog", i, "bundle", j, "sku")
            if part.sku in named:
                out.append((loc, f"{part.sku!r} is named twice (give it a qty instead)"))
            named.add(part.sku)
            if part.sku not in kinds:
                out.append((loc, f"no product {part.sku!r} in the catalogue"))
            elif kinds[part.sku] != "code":
                out.append((loc, f"{part.sku!r} is a {kinds[part.sku]} product; a bundle's parts are code products"))
        return out

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
            fail(*problems)
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
        if not path or path == ":memory:" or path.startswith(("/", "file:")):
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
