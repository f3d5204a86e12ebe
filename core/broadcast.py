"""Broadcasts: a merchant's announcement to all buyers or a segment (language, channel, bought product, member level).

    /broadcast [lang=zh_CN] [channel=telegram|wechat] [bought=SKU] [level=N] TEXT   -> preview (recipients per channel)
    confirm                                                                -> every message queued in the outbox

Exactly once: confirming moves the broadcast from 'draft' to 'queued' in the same transaction that adds one outbox
row (kind 'broadcast') per recipient, so a crash leaves either nothing queued (confirm again) or everything; the
outbox sends each row once (core/outbox.py) and resends nothing a restart finds sent. Broadcast rows have a lower
priority than deliveries, refunds and notices (storage/orders.py claim), and the channels' send limits pace them
(bots/telegram/limits.py). Who gets one: every customer of the segment who did not send /stop_news (/news undoes
it). On WeChat a customer-service message reaches only those whose last message is inside the 48-hour window; when
the merchant set up a template message (`wechat.broadcast_template`), the others get the announcement as that
template instead (its row carries `template: true`; counted apart in the preview). `level=N`: buyers at member
level N or higher (Customer.level, core/members/).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.clock import Clock
from core.models import Buyer, OutboxItem
from core.ports import Catalog, UnitOfWorkFactory

CHANNELS = ("telegram", "wechat")
FILTERS = ("lang", "channel", "bought", "level")
MAX_LEVEL = 99
WECHAT_WINDOW = timedelta(hours=47)  # WeChat's 48 hours, less the margin of SEEN_EVERY and sending time
SEEN_EVERY = 1800.0  # seconds: a WeChat buyer's last message is written at most this often
QUEUE_CHUNK = 1000  # outbox rows per insert statement
MAX_TEXT = 1500  # characters (a WeChat text takes 2048 bytes with the unsubscribe line)
MESSAGE_KEY = "broadcast.message"


class BroadcastError(Exception):
    """A broadcast refused: `reason` names the message (broadcast.error.<reason>)."""

    def __init__(self, reason: str, **params: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


@dataclass(frozen=True, slots=True)
class Segment:
    lang: str | None = None
    channel: str | None = None
    bought: str | None = None  # a product's SKU
    level: int | None = None  # member level N or higher (core/members/)

    def as_dict(self) -> dict[str, str]:
        level = str(self.level) if self.level is not None else None
        return {k: v for k, v in (("lang", self.lang), ("channel", self.channel), ("bought", self.bought),
                                  ("level", level)) if v}


@dataclass(slots=True)
class Broadcast:
    id: int
    merchant: str
    text: str
    segment: Segment
    state: str  # draft | queued | cancelled
    # Recipients per channel; "wechat_template": how many of the WeChat ones get a template message (outside the
    # 48-hour window), counted in "wechat" too.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n for ch, n in self.counts.items() if ch in CHANNELS)


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    sent: int
    failed: int

    @property
    def done(self) -> bool:
        return self.sent + self.failed >= self.total


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str
    external_id: str
    language: str | None
    in_window: bool = True  # WeChat: wrote within the 48-hour window (else only a template message reaches them)


class BroadcastRepo(Protocol):
    async def recipients(self, segment: Segment, product_id: int | None, wechat_since: datetime,
                         wechat_all: bool = False) -> list[Recipient]:
        """Customers of the segment, opted-out ones left out; WeChat ones only if they wrote since `wechat_since`
        (with `wechat_all`, every one, marked in_window or not)."""
    async def add(self, merchant: str, text: str, segment: dict[str, str], counts: dict[str, int], at: datetime
                  ) -> int: ...
    async def get(self, broadcast_id: int, *, for_update: bool = False) -> Broadcast | None: ...
    async def set_state(self, broadcast_id: int, state: str, counts: dict[str, int]) -> None: ...
    async def opt_out(self, channel: str, external_id: str, out: bool, at: datetime) -> None: ...
    async def opted_out(self, channel: str, external_id: str) -> bool: ...
    async def seen(self, channel: str, external_id: str, at: datetime) -> bool:
        """Note the customer's last message; False when there is no customer row (yet)."""


def parse(words: str) -> tuple[Segment, str]:
    """Leading `name=value` filters, then the text. Unknown filters, bad channels and an empty text are refused."""
    found: dict[str, str] = {}
    rest = words.strip()
    while rest:
        head, _, tail = rest.partition(" ")
        name, eq, value = head.partition("=")
        if not eq:
            break
        if name not in FILTERS or not value or name in found:
            raise BroadcastError("filter", filter=head[:32])
        if name == "channel" and value not in CHANNELS:
            raise BroadcastError("filter", filter=head[:32])
        if name == "level" and not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_LEVEL):
            raise BroadcastError("filter", filter=head[:32])
        found[name] = value[:64]
        rest = tail.strip()
    if not rest:
        raise BroadcastError("empty")
    if len(rest) > MAX_TEXT:
        raise BroadcastError("too_long", limit=MAX_TEXT)
    level = found.get("level")
    return Segment(found.get("lang"), found.get("channel"), found.get("bought"),
                   int(level) if level else None), rest


class BroadcastDesk:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, catalog: Catalog, *, default_language: str,
                 wake: Callable[[], None] = lambda: None, templates: Callable[[], bool] = lambda: False) -> None:
        self.uow = uow
        self.templates = templates  # WeChat buyers outside the window can get a template message now
        self.wake = wake  # the outbox dispatcher: rows were queued
        self.clock = clock
        self.catalog = catalog
        self.default_language = default_language
        self._seen: dict[tuple[str, str], float] = {}

    async def _recipients(self, uow: Any, segment: Segment) -> list[Recipient]:
        product_id = None
        if segment.bought:
            product = await self.catalog.product_by_sku(segment.bought)
            if product is None:
                raise BroadcastError("unknown_product", sku=segment.bought)
            product_id = product.id
        rows: list[Recipient] = await uow.broadcasts.recipients(segment, product_id,
                                                                self.clock.now() - WECHAT_WINDOW, self.templates())
        return rows

    @staticmethod
    def _counts(rows: Sequence[Recipient]) -> dict[str, int]:
        counts = dict.fromkeys(CHANNELS, 0)
        for r in rows:
            counts[r.channel] = counts.get(r.channel, 0) + 1
            if not r.in_window:
                counts["wechat_template"] = counts.get("wechat_template", 0) + 1
        return counts

    async def preview(self, merchant: str, segment: Segment, text: str) -> Broadcast:
        """A draft with the recipients counted per channel; nothing is sent until `confirm`."""
        async with self.uow(write=True) as uow:
            counts = self._counts(await self._recipients(uow, segment))
            bid = await uow.broadcasts.add(merchant, text, segment.as_dict(), counts, self.clock.now())
            await uow.commit()
        return Broadcast(bid, merchant, text, segment, "draft", counts)

    async def confirm(self, merchant: str, broadcast_id: int) -> Broadcast:
        """Queue one outbox row per recipient (counted again now), all in one transaction with the state change;
        a second confirm (a double tap, another process) finds it queued and is refused."""
        async with self.uow(write=True) as uow:
            b = await self._draft(uow, merchant, broadcast_id)
            rows = await self._recipients(uow, b.segment)
            items = [OutboxItem(None, "broadcast", r.channel, r.external_id, None, {
                "broadcast": b.id, "key": MESSAGE_KEY, "language": r.language or self.default_language,
                "params": {"text": b.text}, **({} if r.in_window else {"template": True})}) for r in rows]
            for i in range(0, len(items), QUEUE_CHUNK):
                await uow.outbox.add_many(items[i:i + QUEUE_CHUNK])
            b.counts, b.state = self._counts(rows), "queued"
            await uow.broadcasts.set_state(b.id, b.state, b.counts)
            await uow.commit()
        self.wake()
        return b

    async def cancel(self, merchant: str, broadcast_id: int) -> Broadcast:
        async with self.uow(write=True) as uow:
            b = await self._draft(uow, merchant, broadcast_id)
            b.state = "cancelled"
            await uow.broadcasts.set_state(b.id, b.state, b.counts)
            await uow.commit()
        return b

    async def _draft(self, uow: Any, merchant: str, broadcast_id: int) -> Broadcast:
        b: Broadcast | None = await uow.broadcasts.get(broadcast_id, for_update=True)
        if b is None or b.merchant != merchant:
            raise BroadcastError("unknown", id=broadcast_id)
        if b.state != "draft":
            raise BroadcastError(f"already_{b.state}", id=broadcast_id)
        return b

    async def progress(self, broadcast_id: int) -> Progress:
        async with self.uow() as uow:
            b = await uow.broadcasts.get(broadcast_id)
            counts = await uow.outbox.broadcast_counts(broadcast_id)
        total = b.total if b is not None else 0
        return Progress(total, counts.get("sent", 0), counts.get("failed", 0))

    async def set_news(self, buyer: Buyer, wanted: bool) -> None:
        """/stop_news (wanted=False) and /news (True)."""
        async with self.uow(write=True) as uow:
            await uow.broadcasts.opt_out(buyer.channel, buyer.external_id, not wanted, self.clock.now())
            await uow.commit()

    async def wants_news(self, buyer: Buyer) -> bool:
        async with self.uow() as uow:
            return not await uow.broadcasts.opted_out(buyer.channel, buyer.external_id)

    async def seen(self, buyer: Buyer) -> None:
        """A WeChat buyer wrote: the 48-hour window is open (written at most every SEEN_EVERY seconds)."""
        key = (buyer.channel, buyer.external_id)
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < SEEN_EVERY:
            return
        async with self.uow(write=True) as uow:
            noted = await uow.broadcasts.seen(buyer.channel, buyer.external_id, self.clock.now())
            await uow.commit()
        if noted:  # a first message's customer row may not be written yet: noted on the next one
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[key] = now
