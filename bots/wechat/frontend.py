"""The WeChat storefront: messages and events in, the customer flow's Screens out as numbered text.

A message is answered within the callback's budget by a passive text reply (the screen the flow made); what
takes longer goes out afterwards as customer-service messages, in order, in one background task per message:
the payment QR image (unified order, QR, media upload), text beyond one message, codes held back earlier.
If the flow itself is slower than the budget, WeChat gets "success" and the screen follows by
customer-service message.

Numbered replies ("回复 1 …"): the flow stores the offered action ids with the customer (numbered=True), so
"1" maps back to an action after a restart or on another process. A few keywords (菜单 / menu, 订单 / orders,
…, from the catalogues) work in every language; custom-menu CLICK keys are flow action ids (`wechat.menu`).

Codes go out by customer-service message. When WeChat will not take one (errcode 45015: the buyer has not
written for 48 hours; 45047: the quota since they last wrote is used), nothing is lost: the order keeps its
codes under "My orders", the notifier notes the order in the customer's `wechat_pending` state, and the next
time the buyer writes, the codes are sent right after the reply. The QR message tells the buyer so.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import math
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bots.wechat import CHANNEL, LANGUAGE_HINT
from bots.wechat.client import WindowClosed
from config.settings.wechat import BroadcastTemplate
from core.background import Background
from core.broadcast import MESSAGE_KEY as BROADCAST_KEY
from core.errors import RecipientUnreachable, StoreError
from core.flood import FloodGate
from core.models import Buyer, Customer
from core.ports import Delivery
from core.shop import Shop
from handlers import broadcast as broadcast_ui
from handlers.actions import Home, Members, Orders, Shopping
from handlers.customer import Ctx, CustomerFlow
from handlers.screen import Screen
from handlers.state import Conversation
from locales import Translator

log = logging.getLogger(__name__)

TEXT_BYTES = 2000  # WeChat's text messages (passive and customer-service) take 2048 bytes
KEYWORDS = {"menu": Home.MENU.id(), "catalog": Shopping.CATALOG.id(), "orders": Orders.ORDERS.id(0),
            "help": Home.HELP.id(), "language": Home.LANGUAGE.id(), "account": Members.ACCOUNT.id()}
BUDGET = 3.0  # seconds for the passive reply; WeChat gives up at 5


def buyer_of(openid: str) -> Buyer:
    return Buyer(CHANNEL, openid)


def render(screen: Screen, i18n: Translator, lang: str, *, options: bool = True) -> str:
    """A Screen as WeChat text: title, body, codes one per line, footer, numbered options."""
    lines = [i18n.t(lang, "wechat.title", title=screen.title)]
    if screen.body:
        lines.append(screen.body)
    if screen.secrets:
        lines.append("")
        lines.extend(screen.secrets)
    if screen.footer:
        lines.append(screen.footer)
    actions = screen.flat_actions() if options else []
    if actions:
        lines.append("")
        lines.extend(i18n.t(lang, "wechat.option", n=n, label=a.label) for n, a in enumerate(actions, start=1))
    return "\n".join(lines)


def render_all(screens: list[Screen], i18n: Translator, lang: str) -> str:
    """Several screens in one text; only the last one's options are numbered (the flow keeps those)."""
    return "\n\n".join(render(s, i18n, lang, options=i == len(screens) - 1) for i, s in enumerate(screens))


def split(text: str, limit: int = TEXT_BYTES) -> list[str]:
    """Parts of at most `limit` UTF-8 bytes, cut at line ends where possible."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        while len(line.encode()) > limit:  # one overlong line: cut it by characters
            cut = len(line.encode()[:limit].decode(errors="ignore"))
            if current:
                parts.append("\n".join(current))
                current, size = [], 0
            parts.append(line[:cut])
            line = line[cut:]
        cost = len(line.encode()) + 1
        if current and size + cost > limit:
            parts.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += cost
    if current:
        parts.append("\n".join(current))
    return [p for p in parts if p.strip()] or [text[:1]]


class Api(Protocol):
    async def send_text(self, openid: str, text: str) -> None: ...
    async def send_image(self, openid: str, media_id: str) -> None: ...
    async def upload_image(self, png: bytes, name: str = "pay.png") -> str: ...
    async def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str = "") -> None: ...


class PayGateway(Protocol):
    """bots/wechat/pay.py WeChatPayGateway, as far as the storefront uses it."""

    async def create_native(self, order: Any, title: str, client_ip: str = "127.0.0.1") -> str: ...
    async def create_native_topup(self, topup: Any, title: str, client_ip: str = "127.0.0.1") -> str: ...


class AdminHook(Protocol):
    async def handle(self, openid: str, text: str) -> list[Screen] | None: ...
    async def language(self, openid: str) -> str: ...


class Alerts(Protocol):
    def held(self, order_id: str) -> None: ...
    def sold(self, product_id: int) -> None: ...


class UserLocks:
    """One lock per openid: a user's messages and the notifier's state writes for them happen one at a time."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass(slots=True)
class Reply:
    text: str | None
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def fresh_customer(shop: Shop, openid: str) -> Customer:
    """The customer as stored now (not the shop's short-lived cache: another process may have written it)."""
    if _TAKES_FRESH:
        return await shop.customer(buyer_of(openid), LANGUAGE_HINT, fresh=True)  # type: ignore[call-arg]
    return await shop.customer(buyer_of(openid), LANGUAGE_HINT)


_TAKES_FRESH = "fresh" in inspect.signature(Shop.customer).parameters


class Pending:
    """What the notifier could not send, kept in the customer's state until they write again.

    Written under the user's lock, read on every message from the shop's customer cache (this process's own
    writes show at once; another process's within the cache's few seconds)."""

    def __init__(self, shop: Shop, locks: UserLocks) -> None:
        self.shop = shop
        self.locks = locks

    async def add(self, openid: str, entry: dict[str, Any]) -> None:
        async with self.locks(openid):
            cust = await fresh_customer(self.shop, openid)
            state = Conversation(cust)
            entries = state.wechat_pending or []
            if entry not in entries:
                entries.append(entry)
            state.wechat_pending = entries
            await self.shop.save_customer(cust)

    async def take(self, openid: str, seen: Customer) -> list[dict[str, Any]]:
        """Called under the user's lock (the frontend holds it), with the customer as just read."""
        if not Conversation(seen).wechat_pending:
            return []
        cust = await fresh_customer(self.shop, openid)
        state = Conversation(cust)
        entries = state.wechat_pending
        state.wechat_pending = None
        if entries:
            await self.shop.save_customer(cust)
        return list(entries or [])


class WeChatFrontend:
    """Turns WeChat messages and events into flow calls, and the flow's Screens into replies."""

    def __init__(self, shop: Shop, flow: CustomerFlow, api: Api, i18n: Translator, *,
                 admin: AdminHook | None = None, gateway: PayGateway | None = None,
                 qr_png: Callable[[str], bytes] | None = None, budget: float = BUDGET,
                 locks: UserLocks | None = None, pending: Pending | None = None,
                 pay_concurrency: int = 2, flood: FloodGate | None = None,
                 exempt: frozenset[str] = frozenset()) -> None:
        self.shop = shop
        self.flood = flood  # incoming messages per openid (core/flood.py); `exempt`: the merchants' openids
        self.exempt = exempt
        self.flow = flow
        self.api = api
        self.i18n = i18n
        self.admin = admin
        self.gateway = gateway
        self.qr_png = qr_png
        self.budget = budget
        self.locks = locks or UserLocks()
        self.pending = pending or Pending(shop, self.locks)
        self.keywords = self._keywords(i18n)
        self._tasks = Background(log, "a WeChat follow-up")
        self._qr_pool: ProcessPoolExecutor | None = None
        # QR codes in the making at once: each is a unified order, a drawing, an upload and two sends, all in
        # wechatpy's threads; a few at a time keep those threads from crowding the event loop (and the GIL)
        # while other buyers wait for their replies. A rush of buyers gets its QR codes a little later.
        self._paying = asyncio.Semaphore(pay_concurrency)

    @staticmethod
    def _keywords(i18n: Translator) -> dict[str, str]:
        words: dict[str, str] = {}
        for name, action in KEYWORDS.items():
            for lang in i18n.languages:
                for word in i18n.t(lang, f"wechat.keywords.{name}").split(","):
                    if word.strip():
                        words[word.strip().lower()] = action
        return words

    # -- the callback's handler ------------------------------------------------------------------
    async def handle(self, msg: Any) -> str | None:
        """The passive reply to one message or event (None: answer "success"); the rest follows later."""
        task = asyncio.create_task(self._answer(msg), name="wechat-message")
        done, _ = await asyncio.wait({task}, timeout=self.budget)
        if task in done:
            reply = task.result()
            if reply.after:
                self._tasks.spawn(self._run(msg.source, reply.after))
            return reply.text
        log.warning("wechat: a reply took longer than %.1fs; it goes out as a customer-service message",
                    self.budget)
        self._tasks.spawn(self._late(task, msg.source))
        return None

    async def _late(self, task: asyncio.Task[Reply], openid: str) -> None:
        try:
            reply = await task
        except Exception as exc:  # noqa: BLE001 - WeChat got "success"; the log gets the type only
            log.error("wechat message handling failed: %s", type(exc).__name__)
            return
        steps = list(reply.after)
        if reply.text:
            text = reply.text
            steps.insert(0, lambda: self.api.send_text(openid, text))
        await self._run(openid, steps)

    async def _run(self, openid: str, steps: Iterable[Callable[[], Awaitable[None]]]) -> None:
        for step in steps:
            try:
                await step()
            except (WindowClosed, RecipientUnreachable) as exc:
                log.warning("wechat: a follow-up message was not taken: %s", type(exc).__name__)
                return
            except Exception as exc:  # noqa: BLE001 - the next message still gets its answer
                log.error("wechat: a follow-up failed: %s", type(exc).__name__)

    async def idle(self) -> None:
        """Wait until every follow-up (QR images, late replies, held codes) went out (tests, shutdown)."""
        await self._tasks.idle()

    async def stop(self) -> None:
        await self._tasks.stop()
        if self._qr_pool is not None:
            self._qr_pool.shutdown(wait=True, cancel_futures=True)
            self._qr_pool = None

    # -- one message -----------------------------------------------------------------------------
    async def _answer(self, msg: Any) -> Reply:
        reply = await self._process(msg)
        if str(getattr(msg, "event", "")).lower() != "unsubscribe":
            try:  # the buyer wrote: their 48-hour window is open for broadcasts (core/broadcast.py)
                await broadcast_ui.desk_of(self.shop).seen(buyer_of(str(msg.source)))
            except Exception as exc:  # noqa: BLE001 - the answer goes out regardless
                log.warning("wechat: could not note a buyer's last message: %s", type(exc).__name__)
        return reply

    async def _process(self, msg: Any) -> Reply:
        openid = str(msg.source)
        if self.flood is not None and openid not in self.exempt:
            a = await self.flood.check(openid)
            if a.drop:  # told once per flood, then silence; nothing else of theirs is read meanwhile
                return Reply(self.i18n.t(await self._language(openid), "risk.flood.slow_down") if a.warn else None)
            if a.delay:  # slowed: a late answer goes out as a customer-service message (the budget above)
                await asyncio.sleep(a.delay)
        async with self.locks(openid):
            kind = msg.type
            event = str(getattr(msg, "event", "")).lower() if kind == "event" else ""
            if event in ("unsubscribe", "view", "location", "templatesendjobfinish", "masssendjobfinish"):
                return Reply(None)  # nothing to say (and unsubscribed users cannot be written to)
            text = str(getattr(msg, "content", "") or "") if kind == "text" else ""
            if text and self.admin is not None:
                screens = await self.admin.handle(openid, text)
                if screens is not None:  # a merchant's answer; a report's charts follow as images
                    reply = self._reply(openid, [s for s in screens if s.image is None],
                                        await self.admin.language(openid))
                    for s in screens:
                        if s.image is not None:
                            reply.after.append(lambda png=s.image: self._image(openid, png))
                    return reply
            ctx = Ctx(buyer_of(openid), openid, LANGUAGE_HINT)
            screens = await self._screens(ctx, msg, kind, event, text)
            # The flow has just read the customer (and saved it, when the offered actions changed): this read
            # comes from the shop's cache, and the flow kept any held-back codes in the state it saved.
            cust = await self.shop.customer(ctx.buyer, LANGUAGE_HINT)
            lang = cust.language or self.shop.default_language
            held = await self.pending.take(openid, cust)
            reply = self._reply(openid, screens, lang)
            for screen in screens:
                if screen.invoice is not None:
                    reply.after.append(lambda inv=screen.invoice: self._pay(openid, inv, lang))
            if held:
                reply.after.append(lambda: self._send_held(openid, held))
            return reply

    async def _screens(self, ctx: Ctx, msg: Any, kind: str, event: str, text: str) -> list[Screen]:
        if event in ("subscribe", "subscribe_scan", "scan"):  # a scene: a parametric QR code (a referral link)
            scene = str(getattr(msg, "scene_id", "") or "")
            return await self.flow.on_text(ctx, "/start " + scene if scene else "/start")
        if event == "click":
            return await self.flow.on_action(ctx, str(getattr(msg, "key", "") or ""))
        if kind == "event":
            return await self.flow.on_text(ctx, "/menu")  # a scan and other events: the menu
        action = self.keywords.get(text.strip().lower())
        if action is not None:
            return await self.flow.on_action(ctx, action)
        return await self.flow.on_text(ctx, text)  # images, voice, ...: "did not understand" and the menu

    async def _language(self, openid: str) -> str:
        cust = await self.shop.customer(buyer_of(openid), LANGUAGE_HINT)
        return cust.language or self.shop.default_language

    def _reply(self, openid: str, screens: list[Screen], lang: str) -> Reply:
        """The first part is the passive reply; longer text follows by customer-service message."""
        parts = split(render_all(screens, self.i18n, lang)) if screens else []
        if not parts:
            return Reply(None)
        reply = Reply(parts[0])
        for part in parts[1:]:
            reply.after.append(lambda part=part: self.api.send_text(openid, part))
        return reply

    # -- buying ------------------------------------------------------------------------------------
    async def _pay(self, openid: str, invoice: dict[str, Any], lang: str) -> None:
        """The held order's QR code as a customer-service image, then the amount and the hold time."""
        async with self._paying:
            await self._pay_now(openid, invoice, lang)

    async def _pay_now(self, openid: str, invoice: dict[str, Any], lang: str) -> None:
        t = self.i18n.t
        buyer = buyer_of(openid)
        order_id = str(invoice["order_id"])
        if invoice.get("topup"):  # a reseller's wallet top-up: its own QR code, nothing held to give back
            await self._pay_topup(openid, invoice, lang)
            return
        try:
            if self.gateway is None or self.qr_png is None:
                raise LookupError("WeChat Pay is not configured")
            order, _ = await self.shop.order_for(order_id, buyer)
            code_url = await self.gateway.create_native(order, str(invoice["title"]))
            png = await self._draw(code_url)
            media_id = await self.api.upload_image(png, f"{order_id}.png")
            await self.api.send_image(openid, media_id)
        except (WindowClosed, RecipientUnreachable):
            raise
        except Exception as exc:  # noqa: BLE001 - the buyer is told; the order is given back at once
            log.error("wechat: no payment QR for order %s: %s", order_id, type(exc).__name__)
            try:
                await self.shop.cancel(order_id, buyer)
            except StoreError:
                return  # no longer held (paid, lapsed, cancelled meanwhile): My orders says what it is
            await self.api.send_text(openid, t(lang, "wechat.pay.failed", order=order_id))
            return
        minutes = max(1, math.ceil((order.expires_at - self.shop.clock.now()).total_seconds() / 60))  # left
        amount = self.i18n.money(order.amount, order.currency, lang)
        await self.api.send_text(openid, t(lang, "wechat.pay.scan", amount=amount, order=order_id, minutes=minutes))

    async def _pay_topup(self, openid: str, invoice: dict[str, Any], lang: str) -> None:
        """A wallet top-up's WeChat Pay QR code (its notice credits the wallet once), then the amount to pay."""
        t = self.i18n.t
        topup_id = str(invoice["order_id"])
        try:
            if self.gateway is None or self.qr_png is None:
                raise LookupError("WeChat Pay is not configured")
            topup = await self.shop.resellers.topup(topup_id)
            if topup is None or topup.payer != buyer_of(openid).key:
                raise LookupError("not this buyer's top-up")
            code_url = await self.gateway.create_native_topup(topup, str(invoice["title"]))
            media_id = await self.api.upload_image(await self._draw(code_url), f"{topup_id}.png")
            await self.api.send_image(openid, media_id)
        except (WindowClosed, RecipientUnreachable):
            raise
        except Exception as exc:  # noqa: BLE001 - the reseller is told; nothing was paid or held
            log.error("wechat: no payment QR for top-up %s: %s", topup_id, type(exc).__name__)
            await self.api.send_text(openid, t(lang, "wechat.pay.failed", order=topup_id))
            return
        amount = self.i18n.money(topup.amount, topup.currency, lang)
        await self.api.send_text(openid, t(lang, "wechat.pay.scan", amount=amount, order=topup_id,
                                           minutes=invoice["minutes"]))

    async def _image(self, openid: str, png: bytes, name: str = "chart.png") -> None:
        """A picture by customer-service message (uploaded as temporary media first)."""
        await self.api.send_image(openid, await self.api.upload_image(png, name))

    async def _draw(self, code_url: str) -> bytes:
        """The QR PNG, drawn in a worker process: drawing is pure Python (about 10 ms of CPU), and in a thread
        it would hold the GIL against the event loop while other buyers wait for their replies."""
        assert self.qr_png is not None
        if self._qr_pool is None:
            return await asyncio.to_thread(self.qr_png, code_url)
        return await asyncio.get_running_loop().run_in_executor(self._qr_pool, self.qr_png, code_url)

    async def start(self) -> None:
        """Start the QR drawing process (with WeChat Pay) and draw one code, so the first buyer does not wait."""
        if self.qr_png is not None and self._qr_pool is None:
            self._qr_pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            await self._draw("weixin://wxpay/bizpayurl?pr=warmup")

    # -- codes the notifier could not send --------------------------------------------------------
    async def _send_held(self, openid: str, entries: list[dict[str, Any]]) -> None:
        """The buyer wrote again: the 48-hour window is open, send what waited (codes shown again, audited)."""
        buyer = buyer_of(openid)
        for i, entry in enumerate(entries):
            try:
                await self._send_entry(openid, buyer, entry)
            except WindowClosed:
                for rest in entries[i:]:
                    await self.pending.add(openid, rest)
                return

    async def _send_entry(self, openid: str, buyer: Buyer, entry: dict[str, Any]) -> None:
        if entry.get("kind") == "deliver":
            order_id = str(entry.get("order", ""))
            try:
                order, product, codes = await self.shop.reveal(order_id, buyer, openid)
            except StoreError:  # refunded meanwhile, or too many reveals: My orders has it
                lang = await self._language(openid)
                await self.api.send_text(openid, self.i18n.t(lang, "wechat.held.see_orders", order=order_id))
                return
            screen = self.flow.render_delivery(Delivery(order, product, codes))
            text = render(screen, self.i18n, order.language, options=False)
        else:
            lang = str(entry.get("language") or await self._language(openid))
            screen = self.flow.render_notice(lang, str(entry.get("key", "")), dict(entry.get("params", {})))
            text = render(screen, self.i18n, lang, options=False)
        # Parts of a delivery that went out before the window closed are skipped. This text is the delivery's
        # without the numbered options at its end, so its parts before the last are the same as the delivery's.
        for part in split(text)[int(entry.get("sent", 0)):]:
            await self.api.send_text(openid, part)


class _Blank(dict[str, str]):
    """str.format_map's mapping for the template's fields: an unknown `{name}` stays as it is written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class WeChatNotifier:
    """Deliveries and notices to WeChat buyers (called by the outbox dispatcher), by customer-service text."""

    def __init__(self, flow: CustomerFlow, api: Api, i18n: Translator, pending: Pending, locks: UserLocks,
                 alerts: Alerts | None = None, template: BroadcastTemplate | None = None) -> None:
        self.flow = flow
        self.api = api
        self.i18n = i18n
        self.pending = pending
        self.locks = locks
        self.alerts = alerts
        self.template = template if template is not None and template.template_id else None
        self.templates_ready = self.template is not None  # core/ports.py TemplateNotifier

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        """The codes as text, in as many messages as WeChat's size limit takes: each a part of the delivery,
        sent once (a retry sends the parts that did not go out)."""
        order = delivery.order
        screen = self.flow.render_delivery(delivery)
        if self.alerts is not None:
            self.alerts.sold(order.product_id)
        try:
            for n, part in enumerate(split(render(screen, self.i18n, order.language))):
                await delivery.parts.send(n, lambda part=part: self.api.send_text(recipient, part))
        except WindowClosed:
            # The codes stay with the order ("My orders"); what did not go out follows when the buyer next
            # writes (`sent`: the parts that did, skipped then).
            await self.pending.add(recipient, {"kind": "deliver", "order": order.id, "sent": len(delivery.parts.done)})
            if self.alerts is not None:
                self.alerts.held(order.id)
            return
        async with self.locks(recipient):
            await self.flow.remember(order.buyer, screen)

    async def notify_template(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        """A broadcast to a buyer outside the 48-hour window: the merchant's template message, its text field
        carrying the announcement (core/broadcast.py; config `wechat.broadcast_template`)."""
        tpl = self.template
        if tpl is None:
            raise RuntimeError("no wechat.broadcast_template set up")
        lang = language or self.flow.shop.default_language
        text = str(params.get("text", "")) if key == BROADCAST_KEY else self.i18n.t(lang, key, **params)
        values = {"date": self.flow.shop.clock.now().strftime("%Y-%m-%d"), "shop": self.flow.shop_name}
        data = {name: {"value": value.format_map(_Blank(values))} for name, value in tpl.fields.items()}
        data[tpl.text_field] = {"value": text}
        await self.api.send_template(recipient, tpl.template_id, data, tpl.url)

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        screen = self.flow.render_notice(language, key, params)
        lang = language or self.flow.shop.default_language
        try:
            for part in split(render(screen, self.i18n, lang)):
                await self.api.send_text(recipient, part)
        except WindowClosed:
            await self.pending.add(recipient, {"kind": "notice", "language": language, "key": key,
                                               "params": dict(params)})
            return
        async with self.locks(recipient):
            await self.flow.remember(buyer_of(recipient), screen)
