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

One module per group of sections; code outside imports from here (``from config.settings import Settings``):

    fields.py     ConfigError, `fail` (a problem at a dotted key), the field types (secrets, keys, per-language text)
    store.py      store, database, server, vault, logging
    catalog.py    catalog[] (products), their restock and after-sales policy
    telegram.py   telegram (webhook, limits, groups)
    wechat.py     wechat (the custom menu, WeChat Pay)
    suppliers.py  suppliers.<name> (paths, parameter names, answers)
    jobs.py       jobs (the scheduler)
    risk.py       risk (the order's score, flood limits)
    resellers.py  resellers, card_faces
    model.py      Settings: every section, the checks across sections
    loading.py    load_settings / parse_settings: YAML, ${VAR}, validation errors as ConfigError
"""
from __future__ import annotations

from config.settings.catalog import Aftersales, Product, Restock
from config.settings.fields import ConfigError
from config.settings.jobs import Jobs
from config.settings.loading import load_settings, parse_settings
from config.settings.model import Settings
from config.settings.resellers import CardFace, Resellers, TopupChoice
from config.settings.risk import Risk, ValueStep
from config.settings.store import Database, Logging, Redis, Server, Store, Vault
from config.settings.suppliers import Supplier, SupplierAnswer, SupplierFields, SupplierPaths
from config.settings.telegram import Telegram, TelegramGroups, TelegramLimits, TelegramWebApp, Webhook
from config.settings.wechat import MenuButton, Pay, Wechat
from core.models import localized  # exported from here before (the products' per-language text is read with it)

__all__ = [
    "Aftersales",
    "CardFace",
    "ConfigError",
    "Database",
    "Jobs",
    "Logging",
    "Redis",
    "MenuButton",
    "Pay",
    "Product",
    "Resellers",
    "Restock",
    "Risk",
    "Server",
    "Settings",
    "Store",
    "Supplier",
    "SupplierAnswer",
    "SupplierFields",
    "SupplierPaths",
    "Telegram",
    "TelegramGroups",
    "TelegramLimits",
    "TelegramWebApp",
    "TopupChoice",
    "ValueStep",
    "Vault",
    "Webhook",
    "Wechat",
    "load_settings",
    "localized",
    "parse_settings",
]
