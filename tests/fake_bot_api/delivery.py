"""Webhook delivery as Telegram does it, to several store processes, and the send rates the fake saw.

    api.deliver_to(["http://127.0.0.1:8101/tg/hook", "http://127.0.0.1:8102/tg/hook"], secret="s3cret")
    api.push_update(update)           # now POSTed to one of the URLs instead of queued for getUpdates
    await api.wait_delivered()        # every update pushed so far was answered 200 by some URL
    api.send_rates()                  # the most messages in any one second, overall and to one chat

Delivery: each update goes to the next URL in turn (a load balancer in front of several processes), with the
secret header. An answer other than 200, a refused connection or no answer within `timeout` is re-sent
`retry_seconds` later, to the next URL, as Telegram re-sends until it gets a 200. `connections` POSTs are in flight
at once (Telegram's max_connections). `copies_every=N` sends every Nth update twice at once, to two URLs: what
Telegram does when an answer is slow, and what a store must handle once. `webhook_answers` records every POST's
outcome; `answered_ok` how many times each update id got a 200.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fake_bot_api.updates import UpdateBuilders

# What Telegram counts as messages in its send limits (30 a second overall, about 1 a second per chat).
MESSAGE_METHODS = frozenset({"sendMessage", "sendInvoice", "sendDocument", "sendPhoto", "editMessageText",
                             "editMessageReplyMarkup", "editMessageCaption", "copyMessage", "forwardMessage"})


@dataclass(frozen=True)
class Posted:
    """One POST of an update to a webhook URL: `status` is the HTTP status, or 0 when there was no answer
    (refused, reset, timed out; `error` says which)."""
    update_id: int
    url: str
    status: int
    error: str
    at: float


@dataclass(frozen=True)
class SendRates:
    """The most messages (MESSAGE_METHODS) the fake received within any `window` seconds: all chats together,
    and to one chat (the busiest one named); `count` of them in all."""
    count: int
    window: float
    overall: int
    per_chat: int
    busiest_chat: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "window_s": self.window, "max_overall": self.overall,
                "max_per_chat": self.per_chat}


def most_within(times: list[float], window: float) -> int:
    """The most of `times` (sorted) within any half-open span of `window` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class _Hook:
    urls: list[str]
    secret: str
    timeout: float
    retry_seconds: float
    copies_every: int
    queue: asyncio.Queue[dict] = field(default_factory=asyncio.Queue)
    turn: Any = field(default_factory=itertools.count)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    retries: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None


class WebhookDelivery(UpdateBuilders):
    """push_update POSTs to webhook URLs once `deliver_to` was called; see the module docstring."""

    def deliver_to(self, urls: list[str], secret: str, *, connections: int = 40, timeout: float = 10.0,
                   retry_seconds: float = 0.5, copies_every: int = 0) -> None:
        """From now on, updates pushed are POSTed to `urls` (in turn) instead of queued for getUpdates. Call it
        again to change the URLs (a process left, another came); updates under way are not lost."""
        if not urls:
            raise ValueError("deliver_to needs at least one URL")
        hook: _Hook | None = self._hook
        if hook is not None:
            hook.urls, hook.secret, hook.timeout = list(urls), secret, timeout
            hook.retry_seconds, hook.copies_every = retry_seconds, copies_every
            return
        self._hook = hook = _Hook(list(urls), secret, timeout, retry_seconds, copies_every)
        hook.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                             timeout=aiohttp.ClientTimeout(total=timeout))
        hook.workers = [asyncio.create_task(self._deliver(hook), name=f"fake-webhook-{i}")
                        for i in range(connections)]

    async def stop_delivery(self) -> None:
        """Stop POSTing (updates not yet answered stay unanswered); pushing queues for getUpdates again."""
        hook: _Hook | None = self._hook
        if hook is None:
            return
        self._hook = None
        for task in [*hook.workers, *hook.retries]:
            task.cancel()
        for task in [*hook.workers, *hook.retries]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if hook.session is not None:
            await hook.session.close()

    def push_update(self, update: dict) -> dict:
        hook: _Hook | None = self._hook
        if hook is None:
            return super().push_update(update)
        self._stamp(update)
        self._pushed.add(update["update_id"])
        hook.queue.put_nowait(update)
        if hook.copies_every and update["update_id"] % hook.copies_every == 0:
            hook.queue.put_nowait(update)  # a second copy at once: the next URL gets it
        return update

    def pushed_ids(self) -> set[int]:
        """Update ids pushed for delivery (each counted once, however many copies were sent)."""
        return set(self._pushed)

    def undelivered(self) -> set[int]:
        """Update ids pushed and not yet answered 200 by any URL."""
        return {u for u in self._pushed if not self.answered_ok[u]}

    async def wait_delivered(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.undelivered():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.undelivered())} updates not answered 200 within {timeout}s")
            await asyncio.sleep(0.05)

    async def _deliver(self, hook: _Hook) -> None:
        assert hook.session is not None
        while True:
            update = await hook.queue.get()
            url = hook.urls[next(hook.turn) % len(hook.urls)]
            status, error = 0, ""
            try:
                async with hook.session.post(url, json=update,
                                             headers={"X-Telegram-Bot-Api-Secret-Token": hook.secret}) as resp:
                    await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = type(exc).__name__
            self.webhook_answers.append(Posted(update["update_id"], url, status, error, time.time()))
            if status == 200:
                self.answered_ok[update["update_id"]] += 1
                continue
            retry = asyncio.create_task(self._again(hook, update))
            hook.retries.add(retry)
            retry.add_done_callback(hook.retries.discard)

    @staticmethod
    async def _again(hook: _Hook, update: dict) -> None:
        await asyncio.sleep(hook.retry_seconds)
        hook.queue.put_nowait(update)

    # ------------------------------------------------------------------ what the bot sent, how fast
    def send_rates(self, *, since: int = 0, window: float = 1.0,
                   methods: frozenset[str] = MESSAGE_METHODS) -> SendRates:
        """The most messages received within any `window` seconds (overall and to one chat), among the calls
        recorded from index `since` (see mark())."""
        calls = [c for c in self._calls[since:] if c.method in methods]
        overall = sorted(c.at for c in calls)
        chats: defaultdict[Any, list[float]] = defaultdict(list)
        for c in calls:
            chats[c.params.get("chat_id")].append(c.at)
        per_chat, busiest = 0, None
        for chat, times in chats.items():
            n = most_within(sorted(times), window)
            if n > per_chat:
                per_chat, busiest = n, chat
        return SendRates(len(calls), window, most_within(overall, window), per_chat, busiest)
