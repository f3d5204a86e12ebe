"""The orders of a period as a CSV file (`/export`, the console's download): the orders paid in the period, the same
ones the report counts, so the file's kept amounts add up to the report's revenue.

One row per order: its id, when it was made, paid and delivered (in the store's zone), status, channel (telegram,
wechat, group, b2b, ...), buyer, SKU, quantity, unit price and amount (decimal, in the order's currency). Never a
code, a code id or an account. Every cell goes through core/csvfiles.py, so text that would start a spreadsheet
formula is neutralised. At most MAX_ROWS orders: a longer period is refused (REPORT_EXPORT_TOO_BIG), not cut.
Each export is audited (`export`: who, the period, how many rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision

from core.csvfiles import csv_text
from core.reports.figures import CHANNELS
from core.reports.period import Period

MAX_ROWS = 50_000  # about 5 MB of CSV: well inside a chat's file limit, and fast to open
HEADER = ["order", "created", "paid", "delivered", "status", "channel", "buyer", "sku", "qty", "unit_price",
          "amount", "currency"]


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One paid order as exported (storage/reports.py `orders`)."""

    id: str
    created_at: datetime
    paid_at: datetime | None
    delivered_at: datetime | None
    status: str
    channel: str  # the buyer's channel; "group" for a group-chat order
    buyer: str  # channel:id
    sku: str
    qty: int
    unit_price: int
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class OrdersExport:
    period: Period
    name: str  # the file's name: orders_<first>_<last>.csv
    rows: int
    data: bytes  # UTF-8 with a byte-order mark, so spreadsheets read Chinese titles right


def decimal(minor: int, currency: str) -> str:
    """Minor units as a plain decimal number for a spreadsheet (Stars are whole)."""
    if currency == "XTR":
        return str(minor)
    return str(Decimal(minor).scaleb(-get_currency_precision(currency)))


def orders_csv(period: Period, lines: list[OrderLine]) -> OrdersExport:
    zone = ZoneInfo(period.zone)

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if at else ""

    header: list[object] = [f"{h} ({period.zone})" if h in ("created", "paid", "delivered") else h for h in HEADER]
    rows: list[list[object]] = [header]
    rows += [[o.id, local(o.created_at), local(o.paid_at), local(o.delivered_at), o.status,
              CHANNELS.get(o.channel, o.channel), o.buyer, o.sku, o.qty, decimal(o.unit_price, o.currency),
              decimal(o.amount, o.currency), o.currency] for o in lines]
    name = f"orders_{period.first.isoformat()}_{period.last.isoformat()}.csv"
    return OrdersExport(period, name, len(lines), ("\ufeff" + csv_text(rows)).encode())
