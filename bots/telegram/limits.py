"""Outbound limits for the Bot API, around any library's TelegramPort.

Telegram's limits (Bot FAQ): about 30 messages a second overall, 1 a second per chat, 20 a minute per group.
Beyond them it answers 429 with `retry_after`. Sends wait their turn in leaky buckets (aiolimiter); a 429 is
waited out and retried; a 403 (the user blocked the bot) becomes RecipientUnreachable, which the outbox does
not retry forever. Both libraries' exceptions are recognised by their shape (`retry_after`, "Forbidden").
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from aiolimiter import AsyncLimiter

from bots.telegram.common import Button, OutMessage, TelegramPort
from core.errors import RecipientUnreachable
from core.metrics import NO_METRICS, Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

OVERALL_PER_SECOND = 30
PRIVATE_BURST = 3  # a reply may take a few messages at once (an invoice and its hold notice); then 1 a second
GROUP_PER_MINUTE = 20
RETRIES_ON_429 = 3
MAX_CHATS_TRACKED = 10_000


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
    """A TelegramPort that keeps within Telegram's rates and survives 429s."""

    def __init__(self, port: TelegramPort, *, overall: float = OVERALL_PER_SECOND, per_chat_burst: int = PRIVATE_BURST,
                 group_per_minute: int = GROUP_PER_MINUTE, metrics: Metrics = NO_METRICS) -> None:
        self.port = port
        self.metrics = metrics  # time spent waiting on the limits (`send_limit_wait`, core/metrics.py)
        self.overall = AsyncLimiter(overall, 1)
        self.per_chat_burst = per_chat_burst
        self.group_per_minute = group_per_minute
        self._chats: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._chats.pop(chat_id, None)
        if limiter is None:
            # Groups and channels have negative ids.
            limiter = (AsyncLimiter(self.group_per_minute, 60) if chat_id < 0
                       else AsyncLimiter(self.per_chat_burst, self.per_chat_burst))
        self._chats[chat_id] = limiter
        while len(self._chats) > MAX_CHATS_TRACKED:
            self._chats.popitem(last=False)
        return limiter

    async def _call(self, chat_id: int | None, call: Callable[[], Awaitable[T]], *, paced: bool = True) -> T:
        """`paced`: waits its turn in the overall bucket (messages); an unpaced call only waits out 429s."""
        for attempt in range(RETRIES_ON_429 + 1):
            if chat_id is not None:
                await self._waited(self._chat_limiter(chat_id), "group" if chat_id < 0 else "chat")
            if paced:
                await self._waited(self.overall, "overall")
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

    async def _waited(self, limiter: AsyncLimiter, limit: str) -> None:
        if limiter.has_capacity():  # no wait: nothing to time
            await limiter.acquire()
            return
        t0 = time.perf_counter()
        await limiter.acquire()
        self.metrics.observe("send_limit_wait", time.perf_counter() - t0, limit=limit)

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
        # Answers to the user's own taps are not messages: no per-chat wait, never dropped.
        await self._call(None, lambda: self.port.answer_callback(callback_id, text))

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


def limited(port: TelegramPort, limits: Any = None, metrics: Metrics = NO_METRICS) -> TelegramPort:
    """Wrap a port with the configured limits (config.settings.TelegramLimits) or the defaults."""
    if limits is None:
        return LimitedPort(port, metrics=metrics)
    return LimitedPort(port, overall=limits.overall_per_second, per_chat_burst=limits.per_chat_burst,
                       group_per_minute=limits.group_per_minute, metrics=metrics)
