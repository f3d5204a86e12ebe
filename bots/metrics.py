"""The store's metrics in Prometheus' text format (prometheus_client), one registry per App: core counts through
its `Metrics` port (core/metrics.py) and this adapter keeps the numbers; the database's numbers (orders by state,
the outbox's backlog and lag, the scheduler lease) are read when `/metrics` is scraped (bots/ops.py).

Every label value is a word of the store's own (a channel, a state, an outcome, a provider or supplier name, a
route template): never a code, token, openid, user id or secret. Metric names start with `store_`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
disable_created_metrics()  # no `_created` twin of every counter: half the scrape, nothing lost

# Seconds: sends waiting on Telegram's limits and supplier calls range from nothing to minutes.
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Snapshot(Collector):
    """The database's numbers as of the last scrape (bots/ops.py refreshes them just before it renders)."""

    def __init__(self) -> None:
        self.orders: dict[str, int] = {}
        self.backlog = 0
        self.lag = 0.0
        self.lease_held = 0
        # With `redis.url` (storage/coordination.py RedisShared): (away now, calls answered by this process's own
        # memory, answers used though they came late), since the process started; None without Redis.
        self.redis: tuple[bool, int, int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        orders = GaugeMetricFamily("store_orders", "orders by state (counted at scrape)", labels=["status"])
        for status, n in sorted(self.orders.items()):
            orders.add_metric([status], n)
        yield orders
        yield GaugeMetricFamily("store_outbox_backlog", "outbox rows due and unsent", value=self.backlog)
        yield GaugeMetricFamily("store_outbox_lag_seconds", "how long the oldest due unsent outbox row has been due",
                                value=self.lag)
        yield GaugeMetricFamily("store_scheduler_lease_held", "1 while a live process holds the scheduler lease",
                                value=self.lease_held)
        if self.redis is not None:
            away, fallbacks, late = self.redis
            yield GaugeMetricFamily("store_redis_away", "1 while this process uses its own limits and claims "
                                    "because Redis does not answer", value=int(away))
            yield CounterMetricFamily("store_redis_fallbacks", "calls to Redis answered from this process's own "
                                      "memory (Redis away or too slow)", value=fallbacks)
            yield CounterMetricFamily("store_redis_late_answers", "Redis answers waited for past "
                                      "redis.timeout_seconds and used", value=late)


class PromMetrics:
    """core.metrics.Metrics on a registry of its own (several Apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.snapshot = Snapshot()
        r.register(self.snapshot)
        self._counters: dict[str, Counter] = {
            "updates": Counter("store_updates", "updates handled, by channel and way in", ["channel", "via"],
                               registry=r),
            "deliveries": Counter("store_deliveries", "code deliveries sent (outbox rows marked sent)", ["channel"],
                                  registry=r),
            "refunds": Counter("store_refunds", "refunds done (outbox rows marked sent), by reason", ["reason"],
                               registry=r),
            "outbox_failures": Counter("store_outbox_failures", "outbox sends that failed (retried or given up)",
                                       ["kind"], registry=r),
            "payments": Counter("store_payments", "payment notices taken by the one payment entry",
                                ["provider", "outcome"], registry=r),
            "supplier_calls": Counter("store_supplier_calls", "calls to upstream suppliers",
                                      ["supplier", "call", "outcome"], registry=r),
        }
        self._histograms: dict[str, Histogram] = {
            "supplier_call": Histogram("store_supplier_call_seconds", "time a supplier call took",
                                       ["supplier", "call"], buckets=CALL_BUCKETS, registry=r),
            "send_limit_wait": Histogram("store_send_limit_wait_seconds",
                                         "time a Telegram send waited on the send limits (or a 429's retry_after)",
                                         ["limit"], buckets=WAIT_BUCKETS, registry=r),
            "http_request": Histogram("store_http_request_seconds", "HTTP requests by route template",
                                      ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r),
        }
        self._warned: set[str] = set()

    def count(self, name: str, n: float = 1, **labels: str) -> None:
        try:
            self._counters[name].labels(**labels).inc(n)
        except (KeyError, ValueError) as exc:  # a counting mistake never breaks a purchase
            self._warn(name, exc)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        try:
            self._histograms[name].labels(**labels).observe(seconds)
        except (KeyError, ValueError) as exc:
            self._warn(name, exc)

    def _warn(self, name: str, exc: Exception) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("metric %s not counted: %s", name, type(exc).__name__)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: Any) -> float | None:
        """One sample's value (tests, the console)."""
        return self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
