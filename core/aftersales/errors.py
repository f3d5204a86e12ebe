"""Why an after-sales use case refused: one code per refusal (`AftersalesCode`), raised as `AftersalesError`."""
from __future__ import annotations

from enum import StrEnum

from core.errors import Refused


class AftersalesCode(StrEnum):
    """Why an after-sales use case refused (a merchant's command shows it as `admin.error.<value>`)."""

    TICKET_CLOSED = "ticket_closed"  # params: ticket (T12), state (the status it was decided with)
    TICKET_NOT_FOUND = "ticket_not_found"  # params: ticket


class AftersalesError(Refused):
    """An after-sales use case refused; `code` is an AftersalesCode."""

    codes = AftersalesCode
    code: AftersalesCode
