"""How the work pages (orders, tickets, reviews) show core's answers: a refusal in the chat's words
(handlers/errors.py) with its code in `data-refusal`, an HTTP status by its kind, and an audit entry like a refused
chat command; times in the store's zone (`jobs.timezone`)."""
from __future__ import annotations

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


def when(req: Req, at: datetime | None) -> str:
    """A time in the store's zone, to the minute ("-" for none)."""
    if at is None:
        return "-"
    return at.astimezone(ZoneInfo(req.web.shop.reports.zone)).strftime("%Y-%m-%d %H:%M")


def title(req: Req, product: Product | None) -> str:
    return localized(product.title, req.lang, req.web.shop.default_language) if product else ""
