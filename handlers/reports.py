"""`/report [today|7d|30d|YYYY-MM-DD..YYYY-MM-DD]`: a merchant's key figures of a period (core/reports/) as text.

Figures only (no buyer, no code). A period that makes no sense is refused with why (ReportsError), and audited
like every refused merchant command."""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.reports import Figures, ReportsError
from handlers import errors
from handlers.merchant import AdminCtx
from handlers.screen import Screen
from locales import Translator

if TYPE_CHECKING:
    from handlers.admin import AdminFlow

COMMAND = "/report"
TOP = 5  # products shown by revenue


def _channel(i18n: Translator, lang: str, channel: str) -> str:
    """A channel's name in the language; one without a name (a test channel) as it is."""
    key = f"reports.channel.{channel}"
    return i18n.t(lang, key) if key in i18n.catalogs[i18n.default] else channel


def render(i18n: Translator, lang: str, f: Figures) -> Screen:
    """The figures as a chat screen."""
    t = i18n.t

    def listed(per: dict[str, int]) -> str:
        return ", ".join(i18n.money(a, c, lang) for c, a in sorted(per.items())) or "0"

    lines = [t(lang, "reports.body", orders=f.orders_paid, revenue=listed(f.revenue), average=listed(f.average_order),
               buyers=f.buyers, repeat=f"{f.repurchase_rate:.0%}", refunds=f.refunds, rate=f"{f.refund_rate:.0%}")]
    if f.by_channel:
        lines.append(t(lang, "reports.channels"))
        lines += [t(lang, "reports.channel", channel=_channel(i18n, lang, ch),
                        orders=f.orders_by_channel.get(ch, 0), revenue=listed(per))
                  for ch, per in sorted(f.by_channel.items())]
    if f.products:
        lines.append(t(lang, "reports.top"))
        lines += [t(lang, "reports.product", sku=p.sku, units=p.units, revenue=i18n.money(p.revenue, p.currency, lang))
                  for p in f.top_by_revenue(TOP)]
    low = [s for s in f.stock if s.days_of_cover is not None and s.days_of_cover < 7]
    if low:
        lines.append(t(lang, "reports.cover", products=", ".join(f"{s.sku} {s.days_of_cover:.1f}" for s in low)))
    return Screen(t(lang, "reports.title", period=f.period.label, zone=f.period.zone), "\n".join(lines))


async def report_command(admin: AdminFlow, ctx: AdminCtx, rest: str) -> Screen:
    """The figures of the period asked for (today when none)."""
    desk, lang = admin.shop.reports, ctx.language
    try:
        period = desk.period(rest.strip() or "today")
    except ReportsError as exc:
        await admin.service.record(ctx.merchant, "report", refused=exc.code.value, asked=rest[:64])
        return errors.screen(admin.i18n, lang, exc)
    figures = await desk.figures(period)
    await admin.service.record(ctx.merchant, "report", period=period.label)
    return render(admin.i18n, lang, figures)
