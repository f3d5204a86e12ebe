"""The store's numbers, as a port: the shop, the outbox and the suppliers count and time what they do through a
`Metrics` (bots/metrics.py implements it with prometheus_client, served at `/metrics`); the default counts
nothing. Core never imports a metrics library.

Label values are channel names, order states, outcomes, provider and supplier names, route templates: never a
code, token, openid, user id or secret (docs/operating.md "Health and metrics").

The names (each with its labels):
- `updates` (channel, via): updates handled — Telegram webhook/polling, the WeChat callback, Mini App/H5 calls
- `deliveries` (channel), `refunds` (provider), `outbox_failures` (kind): outbox rows sent or failed
- `payments` (provider, outcome): payment notices accepted by the one payment entry
- `supplier_calls` (supplier, outcome) and the `supplier_call` timing (supplier): calls to upstream suppliers
- `send_limit_wait` timing (limit): time a Telegram send waited on the send limits
"""
from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    """Counts and timings by name; labels are keyword arguments (low-cardinality words only)."""

    def count(self, name: str, n: float = 1, **labels: str) -> None: ...
    def observe(self, name: str, seconds: float, **labels: str) -> None: ...


class NoMetrics:
    """Counts nothing (the default: tests, commands, a store without `/metrics`)."""

    def count(self, name: str, n: float = 1, **labels: str) -> None:
        return None

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        return None


NO_METRICS = NoMetrics()
