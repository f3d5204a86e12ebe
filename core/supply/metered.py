"""A supplier whose calls are counted and timed (core/metrics.py): `supplier_calls` (supplier, call, outcome:
ok or error) and the `supplier_call` timing (supplier, call). The supplier's own name is the only label: never a
request id, an account or a code."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.metrics import Metrics

CALLS = frozenset({"balance", "products", "buy", "topup", "topup_status", "check_code"})


class MeteredSupplier:
    """Wraps a Supplier (core/ports.py); every other attribute (its config, callback parsing, aclose) is the
    supplier's own."""

    def __init__(self, supplier: Any, metrics: Callable[[], Metrics]) -> None:
        self._supplier = supplier
        self._metrics = metrics  # read at each call: the composition root may set the shop's metrics later

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._supplier, name)
        if name not in CALLS:
            return attr
        return self._timed(name, attr)

    def _timed(self, call: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            metrics, name = self._metrics(), str(self._supplier.name)
            t0 = time.perf_counter()
            outcome = "error"
            try:
                result = await fn(*args, **kwargs)
                outcome = "ok"
                return result
            finally:
                metrics.observe("supplier_call", time.perf_counter() - t0, supplier=name, call=call)
                metrics.count("supplier_calls", supplier=name, call=call, outcome=outcome)
        return timed
