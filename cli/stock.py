"""`run.py stock`: every SKU with its available, held, sold and expired codes."""
from __future__ import annotations

import argparse
from typing import Any

from app import App
from core.settings import Settings


def add_parser(sub: Any) -> None:
    sub.add_parser("stock", help="SKU and available/held/sold counts")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    async with await App.open(settings) as app:
        lines = await app.shop.stock()
    width = max([len(s.sku) for s in lines] + [3])
    print(f"{'SKU':<{width}}  {'available':>9}  {'held':>6}  {'sold':>6}  {'expired':>7}")
    for s in lines:
        print(f"{s.sku:<{width}}  {s.available:>9}  {s.held:>6}  {s.sold:>6}  {s.expired:>7}")
    return 0
