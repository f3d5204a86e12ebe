"""`run.py db upgrade`: apply the database migrations."""
from __future__ import annotations

import argparse
from typing import Any

from cli.common import Voice
from config.settings import Settings
from storage.db import Database


def add_parser(sub: Any, say: Voice) -> None:
    db = sub.add_parser("db", help=say.t("cli.help.db")).add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help=say.t("cli.help.db.upgrade"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    db = Database(settings.database_url_resolved(), sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        await db.upgrade()
        say.out("cli.db.revision", revision=await db.current_revision())
    finally:
        await db.dispose()
    return 0
