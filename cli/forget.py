"""`run.py forget CHANNEL:ID [--yes]`: erase a person's personal data across their linked accounts (core/privacy.py);
the books keep their rows under an anonymous id. Without --yes it asks first (on a terminal); refused with nothing
changed while an order of theirs is in flight, or for an account the store knows nothing about."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from app import App
from cli.common import Voice
from config.settings import Settings
from core.privacy import PrivacyError, parse_user


def add_parser(sub: Any, say: Voice) -> None:
    p = sub.add_parser("forget", help=say.t("privacy.cli.help"))
    p.add_argument("user", help=say.t("privacy.cli.help.user"))
    p.add_argument("--yes", action="store_true", help=say.t("privacy.cli.help.yes"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    try:
        buyer = parse_user(args.user)
        if not args.yes:
            print(say.t("privacy.cli.confirm", user=buyer.key), end=" ", flush=True)
            answer = sys.stdin.readline().strip().lower() if sys.stdin.isatty() else ""
            if answer not in ("y", "yes"):
                say.err("privacy.cli.not_confirmed")
                return 2
        async with await App.open(settings) as app:
            done = await app.shop.privacy.forget(buyer)
    except PrivacyError as exc:
        say.refused(exc)
        return 2
    say.out("privacy.cli.forgotten", user=buyer.key, accounts=len(done.accounts), anonymous=done.anonymous)
    for table, n in sorted(done.changed.items()):
        say.out("privacy.cli.table", table=table, n=n)
    return 0
