"""Merchant alerts: a port the scheduled jobs raise alerts through, one implementation per channel.

An alert is a message key (`alert.low_stock`, see locales/) and plain parameters; each channel renders it in
the merchant's language (bots/telegram/alerts.py: the user ids in `telegram.admins`; bots/wechat/admin.py
MerchantAlerts: the openids in `wechat.admins` and the WeCom robot). Alerts are best effort: a channel that
cannot send is logged and the others still get it. Whether an alert is due ("once per crossing") is decided
by the use case that raises it (core/supply/stock.py, health.py and restock.py, core/summary.py) from
state kept in the `meta` table, never here.

An alert may offer the merchant commands (`commands`: (label key, command text) pairs such as
("review.approve", "/approve R1A2B3")). Telegram shows them as buttons that run the command (the callback data
is the command, checked like a typed one); WeChat lists them as text to send back; the log names them.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


Commands = Sequence[tuple[str, str]]  # (label key, merchant command text)


class AdminAlerts(Protocol):
    """Tells the merchants something. Raises on failure (FanoutAlerts logs it and carries on)."""

    async def alert(self, key: str, params: dict[str, Any], commands: Commands = ()) -> None: ...


class LogAlerts:
    """Every alert in the store's log (always on, so an alert is never only in a chat that failed)."""

    async def alert(self, key: str, params: dict[str, Any], commands: Commands = ()) -> None:
        offered = f" commands={'|'.join(c for _, c in commands)}" if commands else ""
        log.warning("alert %s %s%s", key, " ".join(f"{k}={v}" for k, v in sorted(params.items())), offered)


class FanoutAlerts:
    """One alert to every channel's merchants; a failing channel does not stop the others."""

    def __init__(self, channels: Sequence[AdminAlerts] = ()) -> None:
        self.channels: list[AdminAlerts] = list(channels)

    def add(self, channel: AdminAlerts) -> None:
        self.channels.append(channel)

    async def alert(self, key: str, params: dict[str, Any], commands: Commands = ()) -> None:
        for channel in self.channels:
            try:
                if commands:
                    await channel.alert(key, dict(params), commands)
                else:
                    await channel.alert(key, dict(params))
            except Exception as exc:  # noqa: BLE001 - best effort per channel
                log.warning("alert %s through %s not sent: %s", key, type(channel).__name__, type(exc).__name__)
