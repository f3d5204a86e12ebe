"""`run.py restore FILE [--force]`: the store's database replaced by a backup (`run.py backup`). Refused while the
store runs (a live scheduler lease), onto a database that holds data unless `--force` (or `--yes`), and for a file
that is not a backup of this store: nothing is changed then. The work is storage/backup.py's."""
from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.bootstrap import config_ring
from cli.backup import page_bar, run_pg_tool
from cli.common import Voice
from config.settings import Settings
from core.errors import VaultError
from core.vault import open_vault
from jobs.lease import Lease
from storage.backup import (
    BackupError,
    Contents,
    file_kind,
    known_revision,
    pg_args,
    pg_contents,
    pg_tool,
    restore_sqlite,
    sqlite_contents,
    sqlite_lease,
    sqlite_path,
)
from storage.db import Database


def add_parser(sub: Any, say: Voice) -> None:
    p = sub.add_parser("restore", help=say.t("cli.help.restore"))
    p.add_argument("file", type=Path, help=say.t("cli.help.restore.file"))
    p.add_argument("--force", "--yes", dest="force", action="store_true", help=say.t("cli.help.restore.force"))


def refusal(contents: Contents | None, lease: Lease | None, force: bool, say: Voice) -> bool:
    """Says why the restore may not go ahead (True), or nothing (False)."""
    if lease is not None and lease.until > datetime.now(UTC):
        say.err("cli.restore.running", owner=lease.owner, until=f"{lease.until:%Y-%m-%d %H:%M:%S}Z")
        return True
    if contents is not None and not contents.empty and not force:
        say.err("cli.restore.holds_data", orders=contents.orders, codes=contents.codes, audit=contents.audit)
        return True
    return False


async def check_keys(settings: Settings, url: str, say: Voice) -> int:
    """After the restore: do the configured vault keys read it? 0 yes (or no codes yet), 3 no (said why)."""
    key_file = settings.resolve_path(settings.vault.key_file)
    db = Database(url)
    try:
        if config_ring(settings) is None and not key_file.exists():
            async with db.uow() as uow:
                if not await uow.codes.key_ids():
                    return 0
        await open_vault(db.uow, config_ring(settings), key_file)
    except VaultError as exc:
        say.err("cli.restore.wrong_key", error=exc)
        return 3
    finally:
        await db.dispose()
    return 0


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    url = settings.database_url_resolved()
    source: Path = args.file
    pg = url.startswith("postgresql")
    try:
        kind = file_kind(source)
        if kind != ("pg_dump" if pg else "sqlite"):
            raise BackupError(f"{source}: a {kind} backup cannot be restored onto "
                              f"{'PostgreSQL' if pg else 'SQLite'} (database.url)")
        if not pg:
            backup = sqlite_contents(source)
            assert backup is not None
            if backup.revision is None or not known_revision(backup.revision):
                raise BackupError(f"{source}: schema revision {backup.revision or '(none)'} is not one this release "
                                  "knows (a backup made by a newer release?)")
    except BackupError as exc:
        say.err("cli.restore.failed", error=exc)
        return 2
    if pg:
        return await restore_pg(settings, url, source, args.force, say)
    db_path = sqlite_path(url)
    try:
        current = sqlite_contents(db_path)
    except BackupError:
        current = Contents(None, 1, 0, 0)  # something that is no store's database: never replaced unasked
    if refusal(current, sqlite_lease(db_path), args.force, say):
        return 2
    bar, progress = page_bar(say, say.t("cli.restore.progress"))
    try:
        with bar:
            kept = await asyncio.to_thread(restore_sqlite, source, db_path, progress,
                                           keep=current is not None and not current.empty)
    except BackupError as exc:
        say.err("cli.restore.failed", error=exc)
        return 2
    say.out("cli.restore.done", file=source, orders=backup.orders, codes=backup.codes, audit=backup.audit)
    if kept is not None:
        say.out("cli.restore.kept", file=kept)
    return await check_keys(settings, url, say)


async def restore_pg(settings: Settings, url: str, source: Path, force: bool, say: Voice) -> int:
    tool = pg_tool("pg_restore")
    if tool is None:
        say.err("cli.restore.no_pg_restore")
        return 2
    db = Database(url)
    try:
        contents, lease = await pg_contents(db)
    finally:
        await db.dispose()
    if refusal(contents, lease, force, say):
        return 2
    options, env = pg_args(url)
    code = await asyncio.to_thread(run_pg_tool, tool, ["--clean", "--if-exists", "--single-transaction",
                                                       "--no-owner", *options, str(source)], env, say)
    if code != 0:
        return code
    db = Database(url)
    try:
        after, _ = await pg_contents(db)
    finally:
        await db.dispose()
    say.out("cli.restore.done", file=source, orders=after.orders, codes=after.codes, audit=after.audit)
    return await check_keys(settings, url, say)
