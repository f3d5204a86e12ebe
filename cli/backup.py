"""`run.py backup FILE`: a consistent copy of the store's database while it runs (SQLite: the online backup API;
PostgreSQL: `pg_dump -Fc` when it is installed). Codes stay encrypted in it: keep the vault key apart
(docs/operating.md "Backup and restore"). The work is storage/backup.py's."""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cli.common import Voice
from config.settings import Settings
from storage.backup import BackupError, Progress, backup_sqlite, pg_args, pg_tool, sqlite_path


def add_parser(sub: Any, say: Voice) -> None:
    p = sub.add_parser("backup", help=say.t("cli.help.backup"))
    p.add_argument("file", type=Path, help=say.t("cli.help.backup.file"))


def page_bar(say: Voice, desc: str) -> tuple[tqdm[Any], Progress]:
    """A progress bar over pages copied (SQLite's backup steps)."""
    bar: tqdm[Any] = tqdm(desc=desc, unit=say.t("cli.backup.unit"), file=sys.stderr, mininterval=0.5,
                          dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, progress


def run_pg_tool(name: str, args: list[str], env: dict[str, str], say: Voice) -> int:
    """pg_dump / pg_restore with --verbose, its lines counted on a progress bar; its own error on failure."""
    proc = subprocess.Popen([name, "--verbose", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stderr is not None
    errors: list[str] = []
    with tqdm(desc=name, unit=say.t("cli.backup.objects"), file=sys.stderr, mininterval=0.5) as bar:
        for line in proc.stderr:
            bar.update(1)
            if "error" in line.lower() or "fatal" in line.lower():
                errors.append(line.rstrip())
    if proc.wait() != 0:
        say.err("cli.backup.pg_failed", tool=name, code=proc.returncode, error="\n".join(errors[-5:]) or "-")
        return 1
    return 0


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    url = settings.database_url_resolved()
    target: Path = args.file
    if url.startswith("postgresql"):
        tool = pg_tool("pg_dump")
        if tool is None:
            say.err("cli.backup.no_pg_dump")
            return 2
        options, env = pg_args(url)
        code = await asyncio.to_thread(run_pg_tool, tool, ["-Fc", f"--file={target}", *options], env, say)
        if code == 0:
            target.chmod(0o600)
            say.out("cli.backup.pg_done", file=target)
            say.out("cli.backup.key_apart")
        return code
    bar, progress = page_bar(say, say.t("cli.backup.progress"))
    try:
        with bar:
            contents = await asyncio.to_thread(backup_sqlite, sqlite_path(url), target, progress)
    except BackupError as exc:
        say.err("cli.backup.failed", error=exc)
        return 2
    say.out("cli.backup.done", file=target, orders=contents.orders, codes=contents.codes, audit=contents.audit)
    say.out("cli.backup.key_apart")
    return 0
