"""What the commands share: their voice (every message through locales/), the files of codes they read, the times
they print."""
from __future__ import annotations

import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from core.errors import Refused
from core.supply import looks_binary
from handlers import errors
from locales import Translator


class Voice:
    """The command line's words: the `cli` room of locales/ (cli.po) in one language, the merchant's
    `store.default_language`, or English before the settings are read, and the refusals' room (errors.po) and
    the coupons' (coupons.po: `run.py coupons` and its refusals). Help
    texts, messages and errors all go through it; what is data (SKUs, ids, codes' counts, other systems' error
    codes) is passed in as it is."""

    def __init__(self, language: str = "en") -> None:
        self.language = language
        self._i18n = Translator(dict.fromkeys(("en", language)), default="en",
                                rooms=("cli", "errors", "coupons", "privacy"))

    def t(self, message: str, /, **params: object) -> str:
        return self._i18n.t(self.language, message, **params)

    def out(self, message: str, /, **params: object) -> None:
        print(self.t(message, **params))

    def err(self, message: str, /, **params: object) -> None:
        print(self.t(message, **params), file=sys.stderr)

    def refused(self, exc: Refused) -> None:
        """A refusal of the core, in words (handlers/errors.py) and with its code for scripts."""
        self.err("cli.refused", message=errors.text(self._i18n, self.language, exc), code=exc.code.value)


def cells(text: str) -> int:
    """The terminal columns `text` takes: wide and full-width characters (Chinese) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - cells(text))


def rjust(text: str, width: int) -> str:
    return " " * max(0, width - cells(text)) + text


def open_codes_file(path: Path, nothing: str, say: Voice) -> IO[bytes] | None:
    """A file of codes opened for reading, or None after saying why not (missing, empty, binary):
    `codes import` and `codes burn` refuse the same files the same way (`nothing`: "nothing imported", ...)."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        say.err("cli.codes.unreadable", path=path, reason=exc.strerror, nothing=nothing)
        return None
    head = fh.read(8192)
    problem = "cli.codes.empty" if not head else "cli.codes.binary" if looks_binary(head) else ""
    if problem:
        fh.close()
        say.err(problem, path=path, nothing=nothing)
        return None
    fh.seek(0)
    return fh


def when(value: Any) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M:%S}Z"
