"""Flash sales in the merchant's chat (core/flash_sales.py), audited like every merchant command.

    /flash SKU PRICE UNITS PER_BUYER START END   a flash sale: PRICE in minor units (fen); START an ISO time
                                                 (2026-12-12T20:00, the store's zone unless it says +08:00) or
                                                 "now"; END an ISO time or a length after START (+90m, +2h, +1d)
    /flash                                       the sales open now and those of the last week
    /flash_end ID                                end a sale now
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from core.flash_sales import FlashDesk, FlashError, FlashSale, SaleSpec, stars_of, when
from handlers.merchant import AdminCtx, Usage
from handlers.screen import Screen

if TYPE_CHECKING:
    from handlers.admin import AdminFlow

COMMANDS = frozenset({"/flash", "/flash_end"})
LENGTH = re.compile(r"\+(\d{1,4})([mhd])")
UNIT = {"m": "minutes", "h": "hours", "d": "days"}


def _number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise Usage("flash")
    return int(text)


def _time(text: str, now: datetime, zone: str, start: datetime | None = None) -> datetime:
    """START / END as typed: "now", a length after the start (+2h), or an ISO time (the store's zone if none)."""
    if text.lower() == "now" and start is None:
        return now
    m = LENGTH.fullmatch(text)
    if m and start is not None:
        return start + timedelta(**{UNIT[m.group(2)]: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise Usage("flash") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(zone))


def desk_of(flow: AdminFlow) -> FlashDesk:
    return FlashDesk(flow.shop.uow, flow.shop.clock.now)


async def command(flow: AdminFlow, ctx: AdminCtx, command: str, rest: str) -> list[Screen]:
    """/flash (list or create) and /flash_end."""
    t, lang, desk = flow.i18n.t, ctx.language, desk_of(flow)
    args = rest.split()
    try:
        if command == "/flash_end":
            if len(args) != 1:
                raise Usage("flash")
            sale = await desk.end(_number(args[0].lstrip("#")))
            await flow.service.record(ctx.merchant, "flash_end", product_id=sale.product_id, id=str(sale.id))
            return [Screen(t(lang, "flash_sales.admin.ended", id=sale.id))]
        if not args:
            await flow.service.record(ctx.merchant, "flash")
            return [await _listing(flow, lang, await desk.recent())]
        if len(args) != 6:
            raise Usage("flash")
        sku, price, units, per_buyer, start, end = args
        now = flow.shop.clock.now()
        zone = flow.shop.reports.zone
        starts = _time(start, now, zone)
        spec = SaleSpec(sku, _number(price), _number(units), _number(per_buyer), starts, _time(end, now, zone, starts))
        sale = await desk.create(spec, ctx.merchant.key)
        await flow.service.record(ctx.merchant, "flash", product_id=sale.product_id, id=str(sale.id), sku=sku[:40],
                                  price=str(sale.price), units=str(sale.units), per_buyer=str(sale.per_buyer),
                                  starts=when(sale.starts_at), ends=when(sale.ends_at))
        p = await flow.shop.product(sale.product_id)
        currency = p.currency if p else flow.shop.currency
        stars = stars_of(sale, p) if p else sale.stars
        return [Screen(t(lang, "flash_sales.admin.created_title", id=sale.id), t(
            lang, "flash_sales.admin.created", id=sale.id, sku=sku, price=flow.i18n.money(sale.price, currency, lang),
            stars=stars if stars is not None else "-", units=sale.units, per_buyer=sale.per_buyer,
            start=when(sale.starts_at), end=when(sale.ends_at)))]
    except FlashError as exc:
        await flow.service.record(ctx.merchant, command.lstrip("/"), refused=exc.code.value,
                                  **{k: str(v)[:64] for k, v in exc.params.items()})
        return [Screen(t(lang, f"flash_sales.error.{exc.code.value}", **exc.params), error=exc.code.value)]


async def _listing(flow: AdminFlow, lang: str, sales: list[FlashSale]) -> Screen:
    t = flow.i18n.t
    if not sales:
        return Screen(t(lang, "flash_sales.admin.list_title"), t(lang, "flash_sales.admin.none"))
    now = flow.shop.clock.now()
    lines = []
    for s in sales:
        p = await flow.shop.product(s.product_id)
        lines.append(t(lang, "flash_sales.admin.row", id=s.id, sku=p.sku if p else "?",
                       price=flow.i18n.money(s.price, p.currency if p else flow.shop.currency, lang), sold=s.sold,
                       units=s.units, per_buyer=s.per_buyer, start=when(s.starts_at), end=when(s.closes_at),
                       state=t(lang, f"flash_sales.state.{s.state(now)}")))
    return Screen(t(lang, "flash_sales.admin.list_title"), "\n".join(lines))
