"""Payment providers that live in the core. Channel providers (Telegram Stars, WeChat Pay) live in bots/."""
from __future__ import annotations

import logging

from core.models import Payment

log = logging.getLogger(__name__)


class DemoGateway:
    """The terminal demo's pretend money. Only registered in demo mode, so it is refused anywhere else."""

    name = "demo"

    def __init__(self) -> None:
        self.refunded: list[int] = []

    async def refund(self, payment: Payment, reason: str) -> None:
        log.info("demo refund of payment %s (%s)", payment.id, reason)
        if payment.id is not None:
            self.refunded.append(payment.id)
