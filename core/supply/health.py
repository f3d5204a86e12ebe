"""Supplier health: whether a supplier may be asked now, and what the merchants hear when one is in trouble.

- A supplier that fails is left alone for a while: 1 minute after the first failure, doubling up to
  `jobs.supplier_backoff_max_minutes` (the `meta` row `supplier.<name>`). The merchants are alerted at the first
  failure and again when it recovers, not at every try.
- A balance that no longer pays for one code is alerted once, and again only after it recovered
  (`alert.balance.<name>`).
- A top-up the supplier accepted but has not finished long after payment is told to the merchants once
  (`topup.stuck.<request id>`), to settle with the supplier. It is never refunded automatically: the supplier may
  still top the account up, and the money would be gone twice.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.alerts import AdminAlerts
from core.clock import Clock
from core.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

SUPPLIER_PREFIX = "supplier."
BALANCE_ALERT_PREFIX = "alert.balance."
TOPUP_STUCK_PREFIX = "topup.stuck."
SUPPLIER_BACKOFF = timedelta(minutes=1)  # after the first failure; doubles up to backoff_max


@dataclass(frozen=True, slots=True)
class SupplierTrouble:
    """A supplier failing now (the merchants' jobs page)."""

    name: str
    failures: int  # in a row
    error: str  # the last one: exception type and message, cut to 200 characters
    since: datetime | None
    retry_at: datetime | None


class SupplierHealth:
    """The backoff of failing suppliers and the merchants' alerts about suppliers, each once per crossing."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, alerts: AdminAlerts, *,
                 backoff_max: timedelta = timedelta(hours=1), topup_stuck: timedelta = timedelta(hours=1)) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.alerts = alerts
        self.backoff_max = backoff_max
        self.topup_stuck = topup_stuck  # a top-up still pending this long is a merchant's case

    async def ready(self, name: str, now: datetime) -> bool:
        """False while the supplier is backing off after a failure."""
        async with self.uow() as uow:
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
        retry_at = state.get("retry_at")
        return not retry_at or datetime.fromisoformat(retry_at) <= now

    async def failed(self, name: str, exc: BaseException) -> None:
        """Back off (1 min, doubling, up to backoff_max); alert on the first failure only."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
            failures = int(state.get("failures", 0)) + 1
            wait = min(SUPPLIER_BACKOFF * 2 ** (failures - 1), self.backoff_max)
            state.update(failures=failures, retry_at=(now + wait).isoformat(),
                         error=f"{type(exc).__name__}: {exc}"[:200], since=state.get("since") or now.isoformat())
            await uow.meta.set(SUPPLIER_PREFIX + name, json.dumps(state))
            await uow.commit()
        log.warning("supplier %s failed (%d in a row), next try in %s: %s", name, failures, wait, type(exc).__name__)
        if failures == 1:
            await self.alerts.alert("alert.supplier_failing", {"supplier": name, "error": state["error"],
                                                               "minutes": max(1, int(wait.total_seconds() // 60))})

    async def succeeded(self, name: str) -> None:
        """The supplier answered: its backoff ends, and the merchants hear it recovered if it had failed."""
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
            if not state.get("failures"):
                return
            await uow.meta.set(SUPPLIER_PREFIX + name, json.dumps({"failures": 0}))
            await uow.commit()
        await self.alerts.alert("alert.supplier_recovered", {"supplier": name, "failures": state["failures"]})

    async def balance_level(self, name: str, *, low: bool, balance: int, sku: str, cost: int) -> None:
        """Alert once when a supplier's balance no longer pays for one code (again after it recovered)."""
        key = BALANCE_ALERT_PREFIX + name
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            before = await uow.meta.get(key) or "ok"
            level = "low" if low else "ok"
            if before == level:
                return
            await uow.meta.set(key, level)
            await uow.commit()
        if low:
            await self.alerts.alert("alert.supplier_balance_low", {"supplier": name, "balance": balance,
                                                                   "sku": sku, "cost": cost})

    async def failing(self) -> list[str]:
        """The suppliers failing now (their last call failed), by name."""
        return [t.name for t in await self.troubles()]

    async def troubles(self) -> list[SupplierTrouble]:
        """The suppliers failing now, by name: failures in a row, the last error, since when, the next try."""
        async with self.uow() as uow:
            states = await uow.meta.with_prefix(SUPPLIER_PREFIX)
        out = []
        for key, raw in sorted(states.items()):
            state = _load(raw)
            if state.get("failures"):
                out.append(SupplierTrouble(key[len(SUPPLIER_PREFIX):], int(state["failures"]),
                                           str(state.get("error", "")), _at(state.get("since")),
                                           _at(state.get("retry_at"))))
        return out

    async def stuck_topups(self) -> int:
        """Tell the merchants, once per top-up, of those the supplier has not finished `topup_stuck` after
        payment; returns how many were told now."""
        now = self.clock.now()
        async with self.uow() as uow:
            pending = await uow.supplies.pending_topups(500)
        old = [r for r in pending if r.created_at <= now - self.topup_stuck]
        told = 0
        for req in old:
            key = TOPUP_STUCK_PREFIX + req.request_id
            async with self.uow(write=True) as uow:
                if await uow.meta.get(key) is not None:
                    continue
                await uow.meta.set(key, now.isoformat())
                await uow.commit()
            await self.alerts.alert("alert.topup_stuck", {
                "order": req.order_id or "", "supplier": req.supplier,
                "minutes": int((now - req.created_at).total_seconds() // 60)})
            told += 1
        return told


def _load(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw else {}


def _at(raw: object) -> datetime | None:
    return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None
