"""`run.py console sessions [--all]`: the web console's sessions (who, role, since, last seen, browser);
`run.py console sessions --revoke ID ...`: ends them now (core/console.py ConsoleDesk, built as the store builds it,
app/bootstrap.py `console_desk`), audited as `console_revoke` by `cli`. An id that is not an open session refuses
the whole command: nothing is revoked."""
from __future__ import annotations

import argparse
from typing import Any

from app import App
from app.bootstrap import console_desk
from cli.common import Voice, cells, ljust, when
from config.settings import Settings
from core.console import ConsoleDesk, Session
from core.models import Buyer

CLI = Buyer("cli", "cli")  # who revokes from the terminal, in the audit log
SHOWN = 500


def add_parser(sub: Any, say: Voice) -> None:
    cs = sub.add_parser("console", help=say.t("cli.help.console")).add_subparsers(dest="console_command",
                                                                                  required=True)
    ss = cs.add_parser("sessions", help=say.t("cli.help.console.sessions"))
    ss.add_argument("--all", action="store_true", help=say.t("cli.help.console.all"))
    ss.add_argument("--revoke", nargs="+", type=int, metavar="ID", help=say.t("cli.help.console.revoke"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    async with await App.open(settings) as app:
        desk = app.shop.console or console_desk(app.shop, settings)
        if args.revoke:
            return await _revoke(desk, args.revoke, say)
        rows = await desk.sessions(open_only=not args.all, limit=SHOWN)
        now = app.clock.now()
    if not rows:
        say.out("cli.console.none")
        return 0
    _table([_row(desk, s, now, say) for s in rows], say)
    return 0


async def _revoke(desk: ConsoleDesk, ids: list[int], say: Voice) -> int:
    open_ids = {s.id for s in await desk.sessions(limit=SHOWN)}
    missing = sorted(set(ids) - open_ids)
    if missing:
        say.err("cli.console.not_open", sessions=", ".join(map(str, missing)))
        return 2
    for sid in await desk.revoke(ids, CLI):
        say.out("cli.console.revoked", session=sid)
    return 0


def _row(desk: ConsoleDesk, s: Session, now: Any, say: Voice) -> tuple[str, ...]:
    state = ("ended" if s.ended_at is not None else
             "expired" if s.expires_at <= now or s.last_seen + desk.idle <= now else "open")
    return (str(s.id), s.merchant.key, say.t(f"cli.console.role.{s.role.value}"), when(s.created_at),
            when(s.last_seen), say.t(f"cli.console.state.{state}"), s.agent[:60] or "-")


def _table(rows: list[tuple[str, ...]], say: Voice) -> None:
    headers = tuple(say.t(f"cli.console.column.{c}")
                    for c in ("id", "who", "role", "since", "last_seen", "state", "agent"))
    widths = [max(cells(h), *(cells(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    # the last column (the browser) goes unpadded
    print("  ".join(ljust(h, w) for h, w in zip(headers, widths, strict=False)) + "  " + headers[-1])
    for r in rows:
        print("  ".join(ljust(c, w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
