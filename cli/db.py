"""`run.py db upgrade`: apply the database migrations."""
from __future__ import annotations

import argparse
from typing import Any

from core.settings import Settings
from storage.db import Database


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database_url_resolved(), sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        await db.upgrade()
        print(f"database at revision {await db.current_revision()}")
    finally:
        await db.dispose()
    return 0
