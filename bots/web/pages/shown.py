"""What the console's pages share: a refusal as the page shows it (in the chat's words, handlers/errors.py, with its
code in `data-refusal`; on the work pages with an HTTP status by its kind and an audit entry like a refused chat
command), times in the store's zone, a product's title, whole numbers read from a form."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bots.web.kit import Req
from core.errors import Refused
from core.models import Product, localized
from handlers import errors

NOT_FOUND = frozenset({"order_not_found", "ticket_not_found", "not_found"})
TOO_MANY = frozenset({"reveal_limit", "rate_limited"})
BAD_INPUT = frozenset({"no_answer", "dates_backwards"})


@dataclass(frozen=True, slots=True)
class Shown:
    """A refusal as a page shows it."""

    code: str
    text: str
    status: int


def status_of(code: str) -> int:
    if code in NOT_FOUND:
        return 404
    if code in TOO_MANY:
        return 429
    if code.startswith("bad_") or code in BAD_INPUT:
        return 400
    return 409  # the order or ticket is not in a state for it (refunded already, closed, ...)


async def refused(req: Req, exc: Refused, command: str, **audit: str) -> Shown:
    """The refusal shown, and recorded as the chat records a refused merchant command (nothing else changed)."""
    code = exc.code.value
    params = {k: str(v)[:64] for k, v in {**exc.params, **audit}.items()}
    await req.web.admin.record(req.merchant, command, refused=code, via="console", **params)
    return Shown(code, errors.text(req.web.i18n, req.lang, exc), status_of(code))


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


def title(req: Req, product: Product | None) -> str:
    return localized(product.title, req.lang, req.web.shop.default_language) if product else ""
