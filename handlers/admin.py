"""The merchant's commands, channel-neutral: parse -> one use case (core/admin.py) -> Screen.

    /admin                                   this list
    /stock                                   SKU, title, available, held, sold
    /import SKU                              as the caption of a .txt or .csv file
    /orders [STATUS|all] [PAGE]              newest first, 10 a page
    /order ID                                detail and audit trail (code ids, never codes)
    /refund ID                               refund a delivered order; its codes are burned
    /audit ID                                the order's whole audit trail (code ids, never codes)
    /tickets [PAGE]                          open after-sales tickets, with reissue / refund / reject buttons
    /reissue T12|ID                          answer a ticket: the order's codes replaced from the pool
    /reject T12|ID TEXT                      answer a ticket: the buyer gets TEXT
    /payout RESELLER AMOUNT                  record a commission paid out (minor units; handlers/wallet.py)
    /report [today|7d|30d|D..D]              a period's sales figures and charts (handlers/reports.py)
    /export [today|7d|30d|D..D]              the period's paid orders as a CSV file (handlers/reports.py)
    /product                                 usage
    /product SKU                             the product's settings
    /product SKU price N | stars N | title LANG TEXT | on | off
    /product new SKU PRICE STARS TITLE
    /reseller, /wallet, /linkgroup, /unlinkgroup   reseller accounts and group chats (handlers/groups.py)
    /broadcast [lang=..] [channel=..] [bought=SKU] TEXT   an announcement to buyers (handlers/broadcast.py)
    /coupons, /coupon_off NAME               coupon campaigns: list (never codes), turn one off (handlers/coupons.py)
    /flash [SKU PRICE UNITS PER_BUYER START END], /flash_end ID   flash sales (handlers/flash_sales.py)

Prices are minor units of the store currency (fen), as in config.yaml. Whether the sender may run these is
the adapter's business (it knows the platform's merchant ids); `deny` answers everyone else.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.admin import (
    AdminCode,
    AdminError,
    AdminService,
    OrderDetail,
    ProductChange,
    ProductEdited,
    check_import_file,
)
from core.aftersales import AuditTrail
from core.models import OrderStatus, Product, localized
from core.shop import Shop
from core.supply import ImportReport, looks_binary
from handlers import aftersales as aftersales_ui
from handlers import broadcast as broadcast_ui
from handlers import coupons as coupons_ui
from handlers import errors, risk_admin
from handlers import flash_sales as flash_ui
from handlers import reports as reports_ui
from handlers.groups import ResellerCommands
from handlers.merchant import AdminCtx, Usage
from handlers.screen import Screen
from handlers.wallet import payout_command
from locales import Translator

log = logging.getLogger(__name__)

RESELLER_COMMANDS = frozenset({"/reseller", "/wallet", "/linkgroup", "/unlinkgroup"})  # handlers/groups.py
COMMANDS = frozenset({"/admin", "/stock", "/import", "/orders", "/order", "/refund", "/product", "/audit",
                      "/reissue", "/reject", "/payout", "/tickets"}) | reports_ui.COMMANDS | risk_admin.COMMANDS \
    | RESELLER_COMMANDS | {broadcast_ui.COMMAND} | coupons_ui.COMMANDS | flash_ui.COMMANDS
AUDIT_SHOWN = 100  # newest entries shown by /audit (the export has them all)
PER_PAGE = 10
TITLE_WIDTH = 22  # display columns of a title in the stock table
REJECTED_SHOWN = 10

ProgressSink = Callable[[Screen], Awaitable[None]]


class TableScreen(Screen):
    """A screen whose body is a fixed-width table: Telegram shows it in <pre>, a terminal as it is."""

    __slots__ = ()


@dataclass(slots=True)
class ImportFile:
    """A file the merchant sent, not downloaded yet."""

    name: str
    size: int | None
    fetch: Callable[[], Awaitable[bytes]]


def split_command(text: str) -> tuple[str, str]:
    """('/cmd', the rest) for '/cmd@bot the rest'; ('', text) when the text is no command."""
    word = text.strip()
    if not word.startswith("/"):
        return "", word
    parts = word.split(maxsplit=1)
    return parts[0].split("@", 1)[0].lower(), parts[1].strip() if len(parts) > 1 else ""


def _num(text: str, command: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 13:
        raise Usage(command)
    return int(text)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _clip(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out = ""
    for ch in text:
        if _width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def table(header: list[str], rows: list[list[str]], right: frozenset[int] | set[int] = frozenset()) -> str:
    """Columns padded by display width (CJK characters take two columns)."""
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - _width(cell))
            out.append(pad + cell if i in right else cell + pad)
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


class _Progress:
    """The importer's progress callback (sync, bytes read) turned into throttled screen updates."""

    def __init__(self, emit: ProgressSink, render: Callable[[int], Screen], interval: float) -> None:
        self.emit = emit
        self.render = render
        self.interval = interval
        self.done = 0
        self.last = 0.0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.last = time.monotonic()
        await self._safe(self.render(0))

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if (self.task is None or self.task.done()) and now - self.last >= self.interval:
            self.last = now
            self.task = asyncio.create_task(self._safe(self.render(self.done)))

    async def finish(self, final: Screen) -> None:
        if self.task is not None:
            await self.task
        await self._safe(final)

    async def _safe(self, screen: Screen) -> None:
        try:
            await self.emit(screen)
        except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the import goes on
            log.warning("import progress update failed: %s", type(exc).__name__)


class AdminFlow:
    def __init__(self, shop: Shop, i18n: Translator, *, progress_interval: float = 1.0,
                 import_batch: int | None = None) -> None:
        self.shop = shop
        self.i18n = i18n
        self.service = AdminService(shop, import_batch=import_batch)
        self.progress_interval = progress_interval

    # -- entry points ---------------------------------------------------------------------------
    async def on_command(self, ctx: AdminCtx, text: str, file: ImportFile | None = None,
                         progress: ProgressSink | None = None) -> list[Screen]:
        """A merchant's message (a command, or the caption of a file). Refusals are answered and audited."""
        command, rest = split_command(text)
        if not command and file is not None:
            command = "/import"  # a file without the caption: show how to import
        lang = ctx.language
        try:
            return await self._dispatch(ctx, command, rest, file, progress)
        except Usage as exc:
            await self._refused(ctx, command, "usage")
            return [Screen(self.i18n.t(lang, "admin.usage.title"), self.i18n.t(lang, f"admin.usage.{exc.command}"),
                           error="usage")]
        except AdminError as exc:
            await self._refused(ctx, command, exc.reason, **exc.params)
            return [self.error(lang, exc)]

    async def deny(self, channel: str, external_id: str, command: str, lang: str) -> Screen:
        """Someone who is not a merchant sent a merchant command: recorded, answered, nothing shown."""
        await self.service.record_denied(channel, external_id, command)
        return Screen(self.i18n.t(lang, "admin.not_allowed"), error="not_allowed")

    def error(self, lang: str, exc: AdminError) -> Screen:
        return errors.screen(self.i18n, lang, exc)

    async def _refused(self, ctx: AdminCtx, command: str, reason: str, **params: Any) -> None:
        try:
            await self.service.record(ctx.merchant, command.lstrip("/") or "?", refused=reason,
                                      **{k: str(v)[:64] for k, v in params.items()})
        except Exception as exc:  # noqa: BLE001 - the merchant still gets the answer
            log.error("could not audit a refused admin command: %s", type(exc).__name__)

    async def _dispatch(self, ctx: AdminCtx, command: str, rest: str, file: ImportFile | None,
                        progress: ProgressSink | None) -> list[Screen]:
        args = rest.split()
        if command == "/admin":
            await self.service.record(ctx.merchant, "admin")
            return [self._help(ctx.language)]
        if command == "/stock":
            return [await self._stock(ctx)]
        if command == "/orders":
            return [await self._orders(ctx, args)]
        if command == "/order":
            if len(args) != 1:
                raise Usage("order")
            return [self._order(ctx.language, await self.service.order(ctx.merchant, args[0]))]
        if command == "/refund":
            if len(args) != 1:
                raise Usage("refund")
            return [await self._refund(ctx, args[0])]
        if command == "/product":
            return [await self._product(ctx, rest)]
        if command == "/audit":
            if len(args) != 1:
                raise Usage("audit")
            return [self._audit(ctx.language, await self.service.audit(ctx.merchant, args[0]))]
        if command in aftersales_ui.MERCHANT:  # /tickets, /reissue, /reject (handlers/aftersales.py)
            return await aftersales_ui.merchant(self, ctx, command, rest)
        if command == "/import":
            return await self._import(ctx, args, file, progress)
        if command in risk_admin.COMMANDS:
            return await risk_admin.run(self, ctx, command, rest)
        if command in RESELLER_COMMANDS:
            return [await self._reseller(ctx, command, args, rest)]
        if command in reports_ui.COMMANDS:  # /report, /export: a period's figures, its orders (handlers/reports.py)
            return await reports_ui.command(self, ctx, command, rest)
        if command == broadcast_ui.COMMAND:  # an announcement to buyers (handlers/broadcast.py)
            return await broadcast_ui.command(self, ctx, rest, progress)
        if command in coupons_ui.COMMANDS:  # /coupons, /coupon_off NAME (handlers/coupons.py)
            return await coupons_ui.command(self, ctx, command, rest)
        if command in flash_ui.COMMANDS:  # flash sales (handlers/flash_sales.py)
            return await flash_ui.command(self, ctx, command, rest)
        if command == "/payout":  # a reseller's commission paid out (handlers/wallet.py)
            return [await payout_command(self, ctx, args)]
        raise ValueError(f"not a merchant command: {command!r}")

    # -- screens --------------------------------------------------------------------------------
    async def _reseller(self, ctx: AdminCtx, command: str, args: list[str], rest: str) -> Screen:
        """Reseller accounts, wallets and group links (handlers/groups.py), audited like every command."""
        desk = self.shop.groups
        if desk is None:
            raise AdminError(AdminCode.NO_RESELLERS)
        try:
            screen = await ResellerCommands(desk, self.i18n).command(ctx.merchant.key, ctx.language, command,
                                                                      args, rest)
        except ValueError:
            raise Usage(command.lstrip("/")) from None
        await self.service.record(ctx.merchant, command.lstrip("/"), **({"refused": screen.error} if screen.error
                                                                           else {"args": rest[:64]}))
        return screen

    def _help(self, lang: str) -> Screen:
        t = self.i18n.t
        body = "\n".join(t(lang, key) for key in ("admin.help.body", "aftersales.admin.help", "risk.admin.help",
                                                   "groups.admin.help", "wallet.admin.help", "reports.admin.help",
                                                   "broadcast.admin.help", "coupons.admin.help",
                                                   "flash_sales.admin.help"))
        return Screen(t(lang, "admin.help.title"), body)

    def _title(self, p: Product | None, lang: str) -> str:
        return localized(p.title, lang, self.shop.default_language) if p else ""

    def _money(self, amount: int, currency: str, lang: str) -> str:
        return self.i18n.money(amount, currency, lang)

    def _status(self, lang: str, status: str) -> str:
        return self.i18n.t(lang, f"status.{status}")

    async def _stock(self, ctx: AdminCtx) -> Screen:
        t, lang = self.i18n.t, ctx.language
        rows = await self.service.stock(ctx.merchant)
        if not rows:
            return Screen(t(lang, "admin.stock.title"), t(lang, "admin.stock.empty"))
        body = []
        expired = 0
        for r in rows:
            title = self._title(r.product, lang)
            if r.product is not None and not r.product.active:
                title = f"{title} {t(lang, 'admin.stock.off')}"
            body.append([r.line.sku, _clip(title, TITLE_WIDTH), str(r.line.available), str(r.line.held),
                         str(r.line.sold)])
            expired += r.line.expired
        header = t(lang, "admin.stock.columns").split("|")
        footer = t(lang, "admin.stock.expired", n=expired) if expired else ""
        return TableScreen(t(lang, "admin.stock.title"), table(header, body, right={2, 3, 4}), footer=footer)

    async def _orders(self, ctx: AdminCtx, args: list[str]) -> Screen:
        t, lang = self.i18n.t, ctx.language
        status: OrderStatus | None = None
        page = 1
        for arg in args:
            if arg.isascii() and arg.isdigit():
                page = _num(arg, "orders")
            elif arg.lower() == "all":
                status = None
            else:
                try:
                    status = OrderStatus(arg.lower())
                except ValueError:
                    raise AdminError(AdminCode.BAD_STATUS, given=arg[:20],
                                     statuses=", ".join(s.value for s in OrderStatus)) from None
        if len(args) > 2 or page < 1:
            raise Usage("orders")
        result = await self.service.orders(ctx.merchant, status, page - 1, PER_PAGE)
        title = (t(lang, "admin.orders.title_status", status=self._status(lang, status.value)) if status
                 else t(lang, "admin.orders.title"))
        if not result.orders:
            return Screen(title, t(lang, "admin.orders.empty"))
        rows = []
        for o in result.orders:
            p = result.products.get(o.product_id)
            rows.append([o.id, o.created_at.strftime("%m-%d %H:%M"), p.sku if p else f"#{o.product_id}", str(o.qty),
                         self._money(o.amount, o.currency, lang), self._status(lang, o.status.value)])
        header = t(lang, "admin.orders.columns").split("|")
        footer = t(lang, "admin.orders.page", page=page)
        if result.more:
            footer += "\n" + t(lang, "admin.orders.more", command=f"/orders {status.value if status else 'all'} "
                                                                   f"{page + 1}")
        footer += "\n" + t(lang, "admin.orders.hint")
        return TableScreen(title, table(header, rows, right={3, 4}), footer=footer)

    def _order(self, lang: str, d: OrderDetail) -> Screen:
        t = self.i18n.t
        o = d.order
        fmt = "%Y-%m-%d %H:%M UTC"
        lines = [
            t(lang, "admin.order.status", status=self._status(lang, o.status.value)),
            t(lang, "admin.order.buyer", buyer=o.buyer.key, chat=o.chat_id),
            t(lang, "admin.order.product", sku=d.product.sku if d.product else f"#{o.product_id}",
              title=self._title(d.product, lang), qty=o.qty),
            t(lang, "admin.order.amount", amount=self._money(o.amount, o.currency, lang),
              stars=o.stars_total or 0),
            t(lang, "admin.order.created", at=o.created_at.strftime(fmt)),
        ]
        if o.paid_at:
            lines.append(t(lang, "admin.order.paid", at=o.paid_at.strftime(fmt)))
        if o.delivered_at:
            lines.append(t(lang, "admin.order.delivered", at=o.delivered_at.strftime(fmt)))
        if d.payments:
            lines.append(t(lang, "admin.order.payments"))
            for p in d.payments:
                lines.append("  " + t(lang, "admin.order.payment", provider=p.provider, txn=p.provider_txn_id,
                                      amount=self._money(p.amount, p.currency, lang), payer=p.payer,
                                      status=t(lang, f"admin.payment.{p.status}")))
        else:
            lines.append(t(lang, "admin.order.no_payments"))
        if d.codes:
            by_status: dict[str, list[str]] = {}
            for c in d.codes:
                by_status.setdefault(c.status.value, []).append(str(c.id))
            ids = "; ".join(f"{self.i18n.t(lang, f'admin.code.{s}')}: {', '.join(i[:20])}"
                            + (" …" if len(i) > 20 else "") for s, i in by_status.items())
            lines.append(t(lang, "admin.order.codes", n=len(d.codes), ids=ids))
        else:
            lines.append(t(lang, "admin.order.no_codes"))
        lines.append(t(lang, "admin.order.audit") if d.audit else t(lang, "admin.order.no_audit"))
        for e in d.audit[-30:]:
            detail = ", ".join(f"{k}={str(v)[:40]}" for k, v in e.detail.items())
            lines.append(f"  {e.at:%m-%d %H:%M} {e.action} · {e.actor}" + (f" · {detail}" if detail else ""))
        return Screen(t(lang, "admin.order.title", order=o.id), "\n".join(lines))

    def _audit(self, lang: str, trail: AuditTrail) -> Screen:
        t = self.i18n.t
        o, p = trail.order, trail.product
        lines = [t(lang, "audit.order", status=self._status(lang, o.status.value), buyer=o.buyer.key,
                   sku=p.sku if p else f"#{o.product_id}", qty=o.qty)]
        if trail.codes:
            lines.append(t(lang, "audit.codes", codes=", ".join(
                f"{c.ref} {t(lang, f'admin.code.{c.status.value}')}" for c in trail.codes[:20])))
        if not trail.entries:
            lines.append(t(lang, "audit.empty"))
        hidden = max(0, len(trail.entries) - AUDIT_SHOWN)
        if hidden:
            lines.append(t(lang, "audit.more", n=hidden))
        for e in trail.entries[hidden:]:
            key = f"audit.action.{e.action}"
            label = t(lang, key)
            action = e.action if label == key else f"{e.action} ({label})"
            detail = ", ".join(f"{k}={str(e.detail[k])[:60]}" for k in sorted(e.detail))
            lines.append(f"{e.at:%Y-%m-%d %H:%M:%S} {action} · {e.actor} · {e.channel}"
                         + (f" · {detail}" if detail else ""))
        return Screen(t(lang, "audit.title", order=o.id), "\n".join(lines),
                      footer=t(lang, "audit.footer", n=len(trail.entries), order=o.id))

    async def _refund(self, ctx: AdminCtx, order_id: str) -> Screen:
        t, lang = self.i18n.t, ctx.language
        r = await self.service.refund(ctx.merchant, order_id)
        amount = self._money(r.payment.amount, r.payment.currency, lang)
        return Screen(t(lang, "admin.refund.title", order=r.order.id), t(
            lang, "admin.refund.queued", order=r.order.id, amount=amount, buyer=r.order.buyer.key,
            provider=r.payment.provider, codes=r.codes_burned))

    # -- products -------------------------------------------------------------------------------
    async def _product(self, ctx: AdminCtx, rest: str) -> Screen:
        t, lang, m = self.i18n.t, ctx.language, ctx.merchant
        parts = rest.split(maxsplit=1)
        if not parts:
            raise Usage("product")
        if parts[0].lower() == "new":
            spec = (parts[1] if len(parts) > 1 else "").split(maxsplit=3)
            if len(spec) != 4:
                raise Usage("product")
            sku, price, stars, title = spec
            p = await self.service.create_product(m, sku, _num(price, "product"), _num(stars, "product"), title)
            return Screen(t(lang, "admin.product.created_title", sku=p.sku), t(
                lang, "admin.product.created", sku=p.sku, title=self._title(p, lang),
                price=self._money(p.price, p.currency, lang), stars=self._stars(lang, p.stars)))
        sku = parts[0]
        if len(parts) == 1:
            return self._product_detail(lang, await self.service.product(m, sku))
        change = self._change(parts[1])
        return self._edited(lang, await self.service.edit_product(m, sku, change))

    def _change(self, text: str) -> ProductChange:
        words = text.split(maxsplit=2)
        what = words[0].lower()
        if what in ("on", "off") and len(words) == 1:
            return ProductChange(active=what == "on")
        if what in ("price", "stars") and len(words) == 2:
            n = _num(words[1], "product")
            return ProductChange(price=n) if what == "price" else ProductChange(stars=n)
        if what == "title" and len(words) == 3:
            return ProductChange(title=(self._language(words[1]), words[2]))
        raise Usage("product")

    def _language(self, code: str) -> str:
        norm = code.replace("-", "_").lower()
        if norm in ("*", "all"):
            return "*"
        for lang in self.shop.languages:
            if lang.lower() == norm:
                return lang
        raise AdminError(AdminCode.BAD_LANGUAGE, language=code[:16], languages=", ".join(self.shop.languages))

    def _stars(self, lang: str, stars: int | None) -> str:
        return str(stars) if stars else self.i18n.t(lang, "admin.product.no_stars")

    def _product_detail(self, lang: str, p: Product) -> Screen:
        t = self.i18n.t
        titles = "; ".join(f"{k}: {v}" for k, v in p.title.items())
        body = t(
            lang, "admin.product.detail", titles=titles, price=self._money(p.price, p.currency, lang),
            stars=self._stars(lang, p.stars), kind=p.kind.value,
            state=t(lang, "admin.product.state_on" if p.active else "admin.product.state_off"),
            source=t(lang, "admin.product.source_admin" if p.source == "admin" else "admin.product.source_config"))
        offer = self.shop.supply.offer_for(p)
        if offer is not None:  # where it comes from, what it costs, what the shop keeps
            if offer.cost is None:
                body += "\n" + t(lang, "supplier.no_cost", supplier=offer.supplier, supplier_sku=offer.supplier_sku)
            else:
                body += "\n" + t(lang, "supplier.product", supplier=offer.supplier, supplier_sku=offer.supplier_sku,
                                 cost=self._money(offer.cost, p.currency, lang),
                                 margin=self._money(p.price - offer.cost, p.currency, lang))
        return Screen(t(lang, "admin.product.title", sku=p.sku), body, footer=t(lang, "admin.usage.product"))

    def _edited(self, lang: str, e: ProductEdited) -> Screen:
        t = self.i18n.t
        b, a = e.before, e.after
        if e.field == "price":
            body = t(lang, "admin.product.price_set", sku=a.sku, old=self._money(b.price, b.currency, lang),
                     new=self._money(a.price, a.currency, lang))
        elif e.field == "stars":
            body = t(lang, "admin.product.stars_set", sku=a.sku, old=self._stars(lang, b.stars),
                     new=self._stars(lang, a.stars))
        elif e.field == "title":
            body = t(lang, "admin.product.title_set", sku=a.sku,
                     title="; ".join(f"{k}: {v}" for k, v in a.title.items()))
        else:
            body = t(lang, "admin.product.on" if a.active else "admin.product.off", sku=a.sku)
        footer = t(lang, "admin.product.config_note") if a.source != "admin" else ""
        return Screen(t(lang, "admin.product.title", sku=a.sku), body, footer=footer)

    # -- import ---------------------------------------------------------------------------------
    async def _import(self, ctx: AdminCtx, args: list[str], file: ImportFile | None,
                      progress: ProgressSink | None) -> list[Screen]:
        t, lang = self.i18n.t, ctx.language
        if len(args) != 1:
            raise Usage("import")
        sku = args[0]
        if file is None:
            raise AdminError(AdminCode.NO_FILE, sku=sku[:64])
        check_import_file(file.name, file.size)  # before anything is downloaded
        await self.service.check_import_target(sku)
        data = await file.fetch()
        check_import_file(file.name, len(data))
        if not data.strip():
            raise AdminError(AdminCode.EMPTY_FILE, name=file.name[:64])
        if looks_binary(data[:8192]):
            raise AdminError(AdminCode.BINARY_FILE, name=file.name[:64])
        total = len(data)

        def state(done: int) -> Screen:
            percent = min(100, done * 100 // total) if total else 100
            return Screen(t(lang, "admin.import.title", sku=sku),
                          t(lang, "admin.import.progress", percent=percent, done=_size(done), total=_size(total)))

        tracker = _Progress(progress, state, self.progress_interval) if progress else None
        if tracker:
            await tracker.start()
        try:
            report = await self.service.import_file(ctx.merchant, sku, file.name, data, tracker)
        except BaseException:
            if tracker:
                await tracker.finish(Screen(t(lang, "admin.import.title", sku=sku), t(lang, "admin.import.stopped")))
            raise
        if tracker:
            await tracker.finish(Screen(t(lang, "admin.import.title", sku=sku),
                                        t(lang, "admin.import.done", total=_size(total))))
        return [self._import_result(lang, report)]

    def _import_result(self, lang: str, r: ImportReport) -> Screen:
        t = self.i18n.t
        body = t(lang, "admin.import.result", imported=r.imported, duplicates=r.duplicates, rejected=r.rejected)
        if r.rejected_lines:
            shown = ", ".join(f"{n} ({self._reason(lang, why)})" for n, why in r.rejected_lines[:REJECTED_SHOWN])
            body += "\n" + t(lang, "admin.import.rejected_lines", lines=shown)
            if r.rejected > REJECTED_SHOWN:
                body += "\n" + t(lang, "admin.import.rejected_more", n=r.rejected - REJECTED_SHOWN)
        if not r.imported and not r.duplicates:
            body += "\n" + t(lang, "admin.import.nothing")
        return Screen(t(lang, "admin.import.result_title", sku=r.sku), body)

    def _reason(self, lang: str, reason: str) -> str:
        key = "admin.import.reason." + re.sub(r"[^a-z]+", "_", reason.lower()).strip("_")
        text = self.i18n.t(lang, key)
        return reason if text == key else text
