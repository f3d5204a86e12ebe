"""`run.py report [--from D --to D | --period 7d] [--csv FILE]`: a period's sales figures (core/reports/) in the
terminal, and as a CSV file through core/csvfiles.py. Figures only: no code, no buyer id, in any output (reseller
names aside: they are the merchant's own accounts)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app import App
from cli.common import Voice
from config.settings import Settings
from core.csvfiles import csv_text
from core.reports import Figures, ReportsError
from core.reports import decimal as amount
from locales import Translator


def add_parser(sub: Any, say: Voice) -> None:
    rp = sub.add_parser("report", help=say.t("cli.help.report"))
    rp.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help=say.t("cli.help.report.from"))
    rp.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help=say.t("cli.help.report.to"))
    rp.add_argument("--period", help=say.t("cli.help.report.period"))
    rp.add_argument("--csv", metavar="FILE", help=say.t("cli.help.report.csv"))


def csv_rows(f: Figures) -> list[list[object]]:
    """The figures as rows of (figure, key, currency, value)."""
    rows: list[list[object]] = [["figure", "key", "currency", "value"], ["period", f.period.label, "", f.period.days],
                                ["orders_paid", "", "", f.orders_paid], ["buyers", "", "", f.buyers],
                                ["repeat_buyers", "", "", f.repeat_buyers], ["refunds", "", "", f.refunds],
                                ["refund_rate", "", "", round(f.refund_rate, 4)],
                                ["repurchase_rate", "", "", round(f.repurchase_rate, 4)]]
    rows += [["revenue", "", c, amount(a, c)] for c, a in sorted(f.revenue.items())]
    rows += [["average_order", "", c, amount(a, c)] for c, a in sorted(f.average_order.items())]
    rows += [["refunded", "", c, amount(a, c)] for c, a in sorted(f.refunded.items())]
    rows += [["channel_revenue", ch, c, amount(a, c)] for ch, per in sorted(f.by_channel.items())
             for c, a in sorted(per.items())]
    rows += [["channel_orders", ch, "", n] for ch, n in sorted(f.orders_by_channel.items())]
    rows += [["product_revenue", p.sku, p.currency, amount(p.revenue, p.currency)] for p in f.products]
    rows += [["product_units", p.sku, p.currency, p.units] for p in f.products]
    rows += [["daily_revenue", day.isoformat(), c, amount(a, c)] for day, per in f.daily
             for c, a in sorted(per.items())]
    rows += [["stock_available", s.sku, "", s.available] for s in f.stock]
    rows += [["days_of_cover", s.sku, "", "" if s.days_of_cover is None else round(s.days_of_cover, 1)]
             for s in f.stock]
    rows += [[f"funnel_{stage}", ch, "", n] for ch, funnel in sorted(f.funnel_by_channel.items())
             for stage, n in funnel.stages()]
    rows += [["product_cost", p.sku, p.cost_currency, amount(p.cost, p.cost_currency)] for p in f.products
             if p.cost is not None]
    rows += [["product_margin", p.sku, p.currency, amount(p.margin, p.currency)] for p in f.products
             if p.margin is not None]
    rows += [["cost_of_goods", "", c, amount(a, c)] for c, a in sorted(f.cost_of_goods.items())]
    rows += [["margin", "", c, amount(a, c)] for c, a in sorted(f.margin.items())]
    rows += [["margin_rate", "", c, round(r, 4)] for c, r in sorted(f.margin_rate.items())]
    rows += [["reseller_revenue", r.name, c, amount(a, c)] for r in f.resellers for c, a in sorted(r.revenue.items())]
    rows += [["reseller_orders", r.name, "", r.orders] for r in f.resellers]
    return rows


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    if (args.first is None) != (args.last is None) or (args.period and args.first):
        say.err("cli.report.which_period")
        return 2
    async with await App.open(settings) as app:
        desk = app.shop.reports
        try:
            period = desk.between(args.first, args.last) if args.first else desk.period(args.period or "7d")
        except ReportsError as exc:
            say.refused(exc)
            return 2
        figures = await desk.figures(period)
    money = Translator.money
    lang = say.language

    def listed(per: dict[str, int]) -> str:
        return ", ".join(money(a, c, lang) for c, a in sorted(per.items())) or "0"

    say.out("cli.report.summary", period=period.label, zone=period.zone, orders=figures.orders_paid,
            revenue=listed(figures.revenue), average=listed(figures.average_order), buyers=figures.buyers,
            repeat=f"{figures.repurchase_rate:.0%}", refunds=figures.refunds, rate=f"{figures.refund_rate:.0%}")
    for ch, per in sorted(figures.by_channel.items()):
        say.out("cli.report.channel", channel=ch, orders=figures.orders_by_channel.get(ch, 0), revenue=listed(per))
    for p in figures.top_by_revenue(5):
        say.out("cli.report.product", sku=p.sku, units=p.units, revenue=money(p.revenue, p.currency, lang))
    funnel = figures.funnel
    if funnel.views or funnel.invoices or funnel.paid:
        say.out("cli.report.funnel", views=funnel.views, invoices=funnel.invoices, paid=funnel.paid,
                delivered=funnel.delivered)
    if figures.cost_of_goods:
        say.out("cli.report.margin", cost=listed(figures.cost_of_goods), margin=listed(figures.margin),
                unknown=", ".join(figures.uncosted) or "-")
    for r in figures.resellers[:5]:
        say.out("cli.report.reseller", name=r.name, orders=r.orders, revenue=listed(r.revenue))
    if args.csv:
        try:
            Path(args.csv).write_text(csv_text(csv_rows(figures)), encoding="utf-8")
        except OSError as exc:
            say.err("cli.report.cannot_write", path=args.csv, reason=exc.strerror)
            return 2
        say.out("cli.report.written", path=args.csv)
    return 0
