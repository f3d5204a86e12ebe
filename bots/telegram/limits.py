"""Outbound limits for the Bot API (filled in next: per-chat, per-group and overall rates, 429 handling)."""
from __future__ import annotations

from bots.telegram.common import TelegramPort


def limited(port: TelegramPort) -> TelegramPort:
    return port
