"""Outbound limits for the Bot API, around any library's TelegramPort.

Telegram's limits (Bot FAQ): about 30 messages a second overall, 1 a second per chat, 20 a minute per group.
Beyond them it answers 429 with `retry_after`. Sends wait their turn in buckets shared by every store process
(core/coordination.py; Redis with `redis.url`); a 429 is
waited out and retried; a 403 (the user blocked the bot) becomes RecipientUnreachable, which the outbox does
not retry forever. Both libraries' exceptions are recognised by their shape (`retry_after`, "Forbidden").
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from bots.telegram.common import Button, OutMessage, TelegramPort
from core.coordination import LOW_PRIORITY, LocalShared, Shared
from core.errors import RecipientUnreachable
from core.metrics import NO_METRICS, Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

OVERALL_PER_SECOND = 30
PRIVATE_BURST = 3  # a reply may take a few messages at once (an invoice and its hold notice); then 1 a second
GROUP_PER_MINUTE = 20
RETRIES_ON_429 = 3
BROADCAST_SHARE = 0.5  # of the overall rate, at most, for broadcasts
LATE_SECONDS = 0.05  # a send woken this much after its turn takes a new one (LimitedPort._waited)
LATE_TURNS = 4  # ... this many times at most


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _forbidden(exc: BaseException) -> bool:
    return "Forbidden" in type(exc).__name__ or "bot was blocked" in str(exc).lower()


class LimitedPort:
    """A TelegramPort that keeps within Telegram's rates and survives 429s.

    The buckets are `Shared` ones (core/coordination.py): with `redis.url` every store process draws on the same
    overall, per-chat and per-group buckets of this bot (keys `tg:<bot id>:...`), so N processes together send at
    most `overall_per_second`; without Redis the buckets are this process's. Broadcasts (sent under
    core.coordination.low_priority by the outbox) also draw on a lane of their own, `broadcast_share` of the
    overall rate, so deliveries and answers are never queued behind an announcement to thousands. The overall rate
    is paced evenly (one message every 1/rate seconds, no burst): no second ever holds more than the rate, whichever
    process sent."""

    def __init__(self, port: TelegramPort, *, overall: float = OVERALL_PER_SECOND, per_chat_burst: int = PRIVATE_BURST,
                 group_per_minute: int = GROUP_PER_MINUTE, metrics: Metrics = NO_METRICS,
                 shared: Shared | None = None, bot: str = "bot", broadcast_share: float = BROADCAST_SHARE) -> None:
        self.port = port
        self.metrics = metrics  # time spent waiting on the limits (`send_limit_wait`, core/metrics.py)
        self.shared: Shared = shared if shared is not None else LocalShared()
        self.overall = overall
        self.per_chat_burst = per_chat_burst
        self.group_per_minute = group_per_minute
        self.broadcast_share = broadcast_share
        self.prefix = f"tg:{bot}:"

    async def _chat_turn(self, chat_id: int) -> None:
        if chat_id < 0:  # groups and channels have negative ids: 20 a minute
            await self._waited(f"group:{chat_id}", self.group_per_minute / 60.0, self.group_per_minute, "group")
        else:  # a burst of a few, then one a second
            await self._waited(f"chat:{chat_id}", 1.0, self.per_chat_burst, "chat")

    async def _call(self, chat_id: int | None, call: Callable[[], Awaitable[T]], *, paced: bool = True) -> T:
        """`paced`: waits its turn in the overall bucket (messages); an unpaced call only waits out 429s."""
        for attempt in range(RETRIES_ON_429 + 1):
            if chat_id is not None:
                await self._chat_turn(chat_id)
            if paced:
                if LOW_PRIORITY.get():
                    share = self.overall * self.broadcast_share
                    await self._waited("broadcast", share, 1, "broadcast")
                await self._waited("overall", self.overall, 1, "overall")
            try:
                return await call()
            except Exception as exc:
                wait = _retry_after(exc)
                if wait is not None and attempt < RETRIES_ON_429:
                    log.warning("telegram asked to slow down: waiting %.0f s", wait)
                    await asyncio.sleep(wait)
                    self.metrics.observe("send_limit_wait", wait, limit="retry_after")
                    continue
                if _forbidden(exc):
                    raise RecipientUnreachable(f"chat {chat_id}: {type(exc).__name__}") from None
                raise
        raise AssertionError("unreachable")

    async def _waited(self, bucket: str, per_second: float, burst: int, limit: str) -> None:
        """Wait for this send's turn in `bucket`. A turn is a moment: a process that wakes up well after it (a busy
        or stalled event loop) would send together with the turns after it, so it takes a new turn instead (the
        missed one is lost, never doubled), a few times at most."""
        t0 = loop_time = time.monotonic()
        for _ in range(LATE_TURNS):
            wait = await self.shared.reserve(self.prefix + bucket, per_second, burst)
            if not wait:  # the unit is ours now
                break
            due = time.monotonic() + wait
            await asyncio.sleep(wait)
            loop_time = time.monotonic()
            if loop_time - due <= LATE_SECONDS:
                break
        if loop_time > t0:
            self.metrics.observe("send_limit_wait", loop_time - t0, limit=limit)

    async def send(self, chat_id: int, message: OutMessage) -> int:
        return await self._call(chat_id, lambda: self.port.send(chat_id, message))

    async def edit(self, chat_id: int, message_id: int, message: OutMessage) -> None:
        await self._call(chat_id, lambda: self.port.edit(chat_id, message_id, message))

    async def delete(self, chat_id: int, message_id: int) -> None:
        await self._call(None, lambda: self.port.delete(chat_id, message_id))

    async def send_invoice(self, chat_id: int, title: str, description: str, payload: str, label: str,
                           stars: int, buttons: list[list[Button]] | None = None) -> int:
        return await self._call(chat_id, lambda: self.port.send_invoice(chat_id, title, description, payload,
                                                                        label, stars, buttons))

    async def create_invoice_link(self, title: str, description: str, payload: str, label: str, stars: int) -> str:
        # Not a message (the 30 a second are messages), and a buyer in the Mini App waits for it: not queued
        # behind the outbox's deliveries; a 429 is still waited out.
        return await self._call(None, lambda: self.port.create_invoice_link(title, description, payload, label,
                                                                            stars), paced=False)

    async def set_menu_button(self, text: str, url: str) -> None:
        await self._call(None, lambda: self.port.set_menu_button(text, url))

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        # Answers to the user's own taps are not messages (Telegram's 30 a second count messages): no wait in the
        # buckets, so a tap's spinner stops at once however busy the shop's sending is; a 429 is still waited out.
        await self._call(None, lambda: self.port.answer_callback(callback_id, text), paced=False)

    async def answer_pre_checkout(self, query_id: str, ok: bool, error: str | None = None) -> None:
        # Must be answered within 10 s: skips the queues.
        await self.port.answer_pre_checkout(query_id, ok, error)

    async def refund_stars(self, user_id: int, charge_id: str) -> None:
        await self._call(None, lambda: self.port.refund_stars(user_id, charge_id))

    async def download(self, file_id: str) -> bytes:
        return await self._call(None, lambda: self.port.download(file_id))

    async def username(self) -> str:
        # getMe once (the library port caches it); group commands may be addressed /buy@username
        return await self._call(None, self.port.username)


def limited(port: TelegramPort, limits: Any = None, metrics: Metrics = NO_METRICS, *, shared: Shared | None = None,
            bot: str = "bot") -> TelegramPort:
    """Wrap a port with the configured limits (config.settings.TelegramLimits) or the defaults, drawn from `shared`
    (every process's buckets with Redis) under the bot's id."""
    if limits is None:
        return LimitedPort(port, metrics=metrics, shared=shared, bot=bot)
    return LimitedPort(port, overall=limits.overall_per_second, per_chat_burst=limits.per_chat_burst,
                       group_per_minute=limits.group_per_minute, metrics=metrics, shared=shared, bot=bot,
                       broadcast_share=limits.broadcast_share)
