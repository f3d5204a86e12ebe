"""Merchant alerts: a port the scheduled jobs raise alerts through, one implementation per channel.

An alert is a message key (`alert.low_stock`, see locales/) and plain parameters; each channel renders it in
the merchant's language (bots/telegram/alerts.py: the user ids in `telegram.admins`; bots/wechat/admin.py
MerchantAlerts: the openids in `wechat.admins` and the WeCom robot). Alerts are best effort: a channel that
cannot send is logged and the others still get it. Whether an alert is due ("once per crossing") is decided
by the jobs (core/jobs.py) from state kept in the `meta` table, never here.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class AdminAlerts(Protocol):
    """Tells the merchants something. Raises on failure (FanoutAlerts logs it and carries on)."""

    async def alert(self, key: str, params: dict[str, Any]) -> None: ...


class LogAlerts:
    """Every alert in the store's log (always on, so an alert is never only in a chat that failed)."""

    async def alert(self, key: str, params: dict[str, Any]) -> None:
        log.warning("alert %s %s", key, " ".join(f"{k}={v}" for k, v in sorted(params.items())))


class FanoutAlerts:
    """One alert to every channel's merchants; a failing channel does not stop the others."""

    def __init__(self, channels: Sequence[AdminAlerts] = ()) -> None:
        self.channels: list[AdminAlerts] = list(channels)

    def add(self, channel: AdminAlerts) -> None:
        self.channels.append(channel)

    async def alert(self, key: str, params: dict[str, Any]) -> None:
        for channel in self.channels:
            try:
                await channel.alert(key, dict(params))
            except Exception as exc:  # noqa: BLE001 - best effort per channel
                log.warning("alert %s through %s not sent: %s", key, type(channel).__name__, type(exc).__name__)
