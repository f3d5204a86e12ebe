"""`run.py audit export --order ID`: every audit entry of one order as evidence (JSON or CSV); codes only as
fingerprint references."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app import App
from core.aftersales import export_csv, export_json, order_trail, record_export
from core.settings import Settings
from storage.aftersales import SqlRecallRepo


def add_parser(sub: Any) -> None:
    au = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    ax = au.add_parser("export", help="every audit entry of an order, as evidence")
    ax.add_argument("--order", required=True, help="the order id")
    ax.add_argument("--format", choices=("json", "csv"), default="json")
    ax.add_argument("--out", help="write to this file (default: standard output)")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    return await export(settings, args.order, args.format, args.out)


async def export(settings: Settings, order_id: str, fmt: str, out: str | None) -> int:
    """Every audit entry of one order as evidence (JSON or CSV); codes only as fingerprint references."""
    async with await App.open(settings) as app:
        trail = await order_trail(app.db.uow, order_id.strip().upper(), SqlRecallRepo())
        if trail is None:
            print(f"error: no order {order_id!r}", file=sys.stderr)
            return 2
        text = (export_csv if fmt == "csv" else export_json)(trail, app.clock.now())
        if out:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
                return 2
        else:
            sys.stdout.write(text)
        await record_export(app.db.uow, app.clock, trail, "cli", "cli", fmt, len(trail.entries))
    if out:
        print(f"order {trail.order.id}: {len(trail.entries)} audit entries written to {out} ({fmt})")
    return 0
