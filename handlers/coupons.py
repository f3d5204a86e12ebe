"""Coupons for merchants in the chat (core/coupons.py): `/coupons` lists the campaigns (name, id, terms and counts;
never a code), `/coupon_off NAME` turns one off at once. Both audited. Campaigns are made from the command line
(`run.py coupons generate|create`), where a generated file of codes can be written privately; the buyer's side is
on the product screen (handlers/catalog.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.coupons import AMOUNT, Coupon, CouponError
from handlers import errors
from handlers.merchant import AdminCtx, Usage
from handlers.screen import Screen

if TYPE_CHECKING:
    from handlers.admin import AdminFlow

COMMANDS = frozenset({"/coupons", "/coupon_off"})


async def command(flow: AdminFlow, ctx: AdminCtx, command: str, rest: str) -> list[Screen]:
    """/coupons or /coupon_off NAME."""
    t, lang, desk = flow.i18n.t, ctx.language, flow.shop.coupons
    if desk is None:
        return [Screen(t(lang, "coupons.list.title"), t(lang, "cli.coupons.off"), error="coupons_off")]
    if command == "/coupons":
        listed = await desk.all()
        await flow.service.record(ctx.merchant, "coupons", n=len(listed))
        body = "\n".join(line(flow, lang, c) for c in listed) or t(lang, "coupons.list.empty")
        return [Screen(t(lang, "coupons.list.title"), body)]
    name = rest.strip()
    if not name or len(name.split()) != 1:
        raise Usage("coupon_off")
    try:
        c = await desk.set_active(name, False, actor=ctx.merchant.key)
    except CouponError as exc:
        await flow.service.record(ctx.merchant, "coupon_off", refused=exc.code.value, name=name[:40])
        return [errors.screen(flow.i18n, lang, exc)]
    await flow.service.record(ctx.merchant, "coupon_off", name=c.name, coupon=c.id)
    return [Screen(t(lang, "coupons.list.title"), t(lang, "coupons.off.done", name=c.name))]


def line(flow: AdminFlow, lang: str, c: Coupon) -> str:
    """A campaign in the list: never a code."""
    t, terms = flow.i18n.t, c.terms
    off = flow.i18n.money(terms.value, terms.currency, lang) if terms.kind == AMOUNT else f"{terms.value}%"
    kind = t(lang, "coupons.list.single", codes=c.codes) if c.single_use else t(lang, "coupons.list.shared")
    limit = t(lang, "coupons.list.of", limit=terms.total_limit) if terms.total_limit is not None else ""
    return t(lang, "coupons.list.line", id=c.id, name=c.name, off=off, kind=kind, used=c.used, limit=limit,
             state=t(lang, "coupons.list.on" if c.active else "coupons.list.off"))
