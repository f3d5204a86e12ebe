"""Message catalogues (gettext .po, read with Babel) and money formatting.

Message ids are stable keys (`menu.catalog`); the .po files under locales/<lang>/LC_MESSAGES/ carry the
text: `messages.po` for the storefront and one file per room (`risk.po`, `aftersales.po`, `wallet.po`, ...; `cli.po`
for the command line), all read into one catalogue per language (a key may live in only one file). Add a key to
both languages; tests check the two stay in step.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po
from babel.numbers import format_currency, get_currency_precision

HERE = Path(__file__).parent


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Translator:
    def __init__(self, languages: Iterable[str] = ("en", "zh_CN"), default: str = "en", directory: Path = HERE,
                 rooms: Iterable[str] | None = None) -> None:
        """`rooms`: read only these catalogue files (`cli` for the command line, which needs no chat text)."""
        self.default = default
        self.catalogs: dict[str, dict[str, str]] = {}
        only = None if rooms is None else {f"{room}.po" for room in rooms}
        for lang in languages:
            merged: dict[str, str] = {}
            for path in sorted((directory / lang / "LC_MESSAGES").glob("*.po")):
                if only is not None and path.name not in only:
                    continue
                with path.open("rb") as fh:
                    cat = read_po(fh, locale=lang)
                entries = {m.id: m.string for m in cat if m.id and m.string}
                twice = merged.keys() & entries.keys()
                if twice:
                    raise ValueError(f"{path}: keys also in another catalogue: {sorted(twice)[:5]}")
                merged.update(entries)
            self.catalogs[lang] = merged
        self.languages = list(self.catalogs)

    def t(self, lang: str | None, key: str, /, **params: object) -> str:  # a message may have a {key} of its own
        text = self.catalogs.get(lang or self.default, {}).get(key) or self.catalogs[self.default].get(key) or key
        return text.format_map(_Params(params)) if params else text

    def language_name(self, lang: str) -> str:
        return self.t(lang, "language.name")

    @staticmethod
    @functools.lru_cache(maxsize=4096)  # prices repeat on every screen; Babel's formatting is not cheap
    def money(amount_minor: int, currency: str, lang: str | None) -> str:
        if currency == "XTR":
            return f"⭐{amount_minor}"
        digits = get_currency_precision(currency)
        value = Decimal(amount_minor).scaleb(-digits)
        return format_currency(value, currency, locale=Locale.parse(lang or "en"))
