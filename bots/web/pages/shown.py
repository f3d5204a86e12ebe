"""What the owner pages (resellers, jobs, audit, sessions, reports) share: a refusal as the page shows it, times in
the store's zone, whole numbers read from a form."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bots.web.kit import Req
from core.errors import Refused
from handlers import errors


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal on a page: its stable code (`data-refusal`, for tests and scripts) and its words."""

    code: str
    text: str


def refusal(req: Req, exc: Refused) -> Refusal:
    """A core refusal in the reader's language (handlers/errors.py words every refusal)."""
    return Refusal(exc.code.value, errors.text(req.web.i18n, req.lang, exc))


def page_refusal(req: Req, code: str, key: str, /, **params: object) -> Refusal:
    """A refusal of the page itself (no such session, a bad id), worded from its own room."""
    return Refusal(code, req.t(key, **params))


def when(req: Req, at: datetime | str | None) -> str:
    """A time in the store's zone (`jobs.timezone`), to the second; "-" for none."""
    if at is None or at == "":
        return "-"
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value.astimezone(ZoneInfo(req.web.settings.jobs.timezone)).strftime("%Y-%m-%d %H:%M:%S")


def whole(text: str | None, *, most: int = 10**12) -> int | None:
    """A whole number 0..most typed in a form ("" is None); ValueError for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 13 or int(text) > most:
        raise ValueError(text)
    return int(text)


def detail_text(value: object) -> str:
    """An audit detail's value as text (JSON for lists and maps); the template escapes it."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
