"""What the current update or order is, for the log: `logging.format: json` adds it to every line logged while it
is set (app/logs.py). Context variables, so each update's and each delivery's task carries its own.

    with log_context(channel="telegram", update_id=42):
        ...  # every line logged here carries channel and update_id

Only ids that are not secrets: an order id, a channel name, an update id. Never a code, token or openid.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

FIELDS = ("order_id", "channel", "update_id")
_VARS: dict[str, ContextVar[str | int | None]] = {name: ContextVar(f"log_{name}", default=None) for name in FIELDS}


def current() -> dict[str, str | int]:
    """The fields set now (those that are set)."""
    out: dict[str, str | int] = {}
    for name, var in _VARS.items():
        value = var.get()
        if value is not None:
            out[name] = value
    return out


def set_order(order_id: str | None) -> None:
    """The order being processed from here on in this task (a delivery, a payment)."""
    _VARS["order_id"].set(order_id)


@contextlib.contextmanager
def log_context(**fields: str | int | None) -> Iterator[None]:
    """Set some of FIELDS for the block; what was there before comes back after it."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
