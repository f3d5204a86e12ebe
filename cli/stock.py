"""`run.py stock`: every SKU with its available, held, sold and expired codes."""
from __future__ import annotations

import argparse
from typing import Any

from app import App
from cli.common import Voice, cells, ljust, rjust
from config.settings import Settings


def add_parser(sub: Any, say: Voice) -> None:
    sub.add_parser("stock", help=say.t("cli.help.stock"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    async with await App.open(settings) as app:
        lines = await app.shop.stock()
    sku, available, held, sold, expired = (say.t(f"cli.stock.{c}") for c in ("sku", "available", "held", "sold",
                                                                            "expired"))
    width = max([cells(s.sku) for s in lines] + [cells(sku)])
    print("  ".join((ljust(sku, width), rjust(available, 9), rjust(held, 6), rjust(sold, 6), rjust(expired, 7))))
    for s in lines:
        print(f"{ljust(s.sku, width)}  {s.available:>9}  {s.held:>6}  {s.sold:>6}  {s.expired:>7}")
    return 0
