"""`run.py audit export --order ID`: every audit entry of one order as evidence (JSON or CSV); codes only as
fingerprint references."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app import App
from cli.common import Voice
from config.settings import Settings
from core.aftersales import export_csv, export_json, order_trail, record_export


def add_parser(sub: Any, say: Voice) -> None:
    au = sub.add_parser("audit", help=say.t("cli.help.audit")).add_subparsers(dest="audit_command", required=True)
    ax = au.add_parser("export", help=say.t("cli.help.audit.export"))
    ax.add_argument("--order", required=True, help=say.t("cli.help.audit.order"))
    ax.add_argument("--format", choices=("json", "csv"), default="json")
    ax.add_argument("--out", help=say.t("cli.help.audit.out"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    return await export(settings, args.order, args.format, args.out, say)


async def export(settings: Settings, order_id: str, fmt: str, out: str | None, say: Voice) -> int:
    """Every audit entry of one order as evidence (JSON or CSV); codes only as fingerprint references."""
    async with await App.open(settings) as app:
        trail = await order_trail(app.db.uow, order_id.strip().upper(), fingerprints=True)
        if trail is None:
            say.err("cli.audit.no_order", order=repr(order_id))
            return 2
        text = (export_csv if fmt == "csv" else export_json)(trail, app.clock.now())
        if out:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                say.err("cli.audit.cannot_write", path=out, reason=exc.strerror)
                return 2
        else:
            sys.stdout.write(text)
        await record_export(app.db.uow, app.clock, trail, "cli", "cli", fmt, len(trail.entries))
    if out:
        say.out("cli.audit.written", order=trail.order.id, count=len(trail.entries), path=out, format=fmt)
    return 0
