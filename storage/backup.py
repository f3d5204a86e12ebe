"""Backups of the store's database, and restoring one (`run.py backup FILE`, `run.py restore FILE`: cli/backup.py).

SQLite: SQLite's online backup API (`sqlite3.Connection.backup`) copies a consistent snapshot while the store runs
(WAL: readers never block the store's writers). It copies in steps for a progress bar; when the store writes
between two steps, SQLite starts the copy again, so after the first restart the rest is copied in one step (one
read transaction: consistent, and never restarted again). The copy is written beside FILE and renamed onto it,
after `PRAGMA quick_check`. Restoring checks that FILE is a SQLite database of this store (its `alembic_version`
is a revision this release knows), copies it beside the database, checkpoints the database it replaces (so no
write-ahead log of the old file is applied to the new one), keeps the old file as `<db>.replaced-<UTC time>`,
and renames the copy onto the database: a crash at any point leaves either the old or the new database.

PostgreSQL: `pg_dump -Fc` and `pg_restore --clean --if-exists --single-transaction --no-owner`, run with the
database URL's parts as options and its password in PGPASSWORD (never on the command line, where `ps` shows it).

Codes stay encrypted in every backup: a backup is readable only with the vault key it was made with, which is
never in it (docs/operating.md "Backup and restore").
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from jobs.lease import LEASE_KEY, Lease
from storage import tables as t
from storage.db import MIGRATIONS

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
STEP_PAGES = 1024  # 4 MiB a step with SQLite's default page size

Progress = Callable[[int, int], None]  # (pages copied, pages in all)


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, and nothing was changed."""


class Restarted(Exception):
    """The store wrote between two steps of the copy: SQLite would start again."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a database holds, as a restore reports it (and refuses to overwrite)."""

    revision: str | None
    orders: int
    codes: int
    audit: int

    @property
    def empty(self) -> bool:
        return self.orders == 0 and self.codes == 0 and self.audit == 0


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: not a SQLite file")
    return Path(database)


def file_kind(path: Path) -> str:
    """`sqlite`, `pg_dump`, or raises BackupError for a file that is neither (or cannot be read)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BackupError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "pg_dump"
    raise BackupError(f"{path}: not a backup of this store (neither a SQLite database nor a pg_dump -Fc archive)")


def _count(conn: sqlite3.Connection, table: str) -> int:
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names
    except sqlite3.DatabaseError:
        return 0


def sqlite_contents(path: Path) -> Contents | None:
    """What the SQLite file holds (None: no such file); raises BackupError when it is not a store's database."""
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return Contents(None, 0, 0, 0)
            if not {"alembic_version", "orders", "codes", "meta"} <= tables:
                raise BackupError(f"{path}: a SQLite database, but not this store's")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return Contents(row[0] if row else None, _count(conn, "orders"), _count(conn, "codes"),
                            _count(conn, "audit"))
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a readable SQLite database ({exc})") from None


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection, progress: Progress | None) -> None:
    seen: list[int] = []

    def step(_status: int, remaining: int, total: int) -> None:
        if seen and remaining > seen[-1]:
            raise Restarted
        seen.append(remaining)
        if progress is not None:
            progress(total - remaining, total)

    try:
        src.backup(dst, pages=STEP_PAGES, progress=step)
    except Restarted:  # the store wrote meanwhile: the rest in one read transaction (consistent, no restart)
        src.backup(dst, pages=-1)
        if progress is not None:
            total = int(src.execute("PRAGMA page_count").fetchone()[0])
            progress(total, total)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sqlite(db: Path, target: Path, progress: Progress | None = None) -> Contents:
    """A consistent copy of db at target (written beside it, checked, then renamed onto it)."""
    if not db.exists():
        raise BackupError(f"{db}: no database there")
    if target.resolve() == db.resolve():
        raise BackupError(f"{target}: that is the database itself")
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # codes are encrypted, the rest is not
        os.close(fd)
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as src, \
                closing(sqlite3.connect(tmp)) as dst:
            _copy(src, dst, progress)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{db}: the copy does not pass SQLite's quick_check; nothing was written")
        _fsync(tmp)
        contents = sqlite_contents(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise BackupError(f"{target}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{db}: cannot be copied ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    assert contents is not None
    return contents


def restore_sqlite(source: Path, db: Path, progress: Progress | None = None, *, keep: bool = True) -> Path | None:
    """Replace db by the backup at source; returns where the replaced database was kept (None: there was none, or
    keep was False)."""
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.restoring")
    tmp.unlink(missing_ok=True)
    kept = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, closing(sqlite3.connect(tmp)) as dst:
            _copy(src, dst, progress)
            if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{source}: does not pass SQLite's quick_check; nothing was changed")
        _fsync(tmp)
        if db.exists():
            with closing(sqlite3.connect(db, timeout=30)) as old:  # the old log into the old file, emptied
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if keep:
                kept = db.with_name(f"{db.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
                os.link(db, kept)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, db)
        _fsync(db.parent)
    except OSError as exc:
        raise BackupError(f"{db}: cannot be replaced ({exc.strerror or type(exc).__name__}); "
                          "the database is as it was") from None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source}: cannot be restored ({exc}); the database is as it was") from None
    finally:
        tmp.unlink(missing_ok=True)
    return kept


# -- PostgreSQL ----------------------------------------------------------------------------------------------
def pg_tool(name: str) -> str | None:
    return shutil.which(name)


def pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq options for the database URL, and the environment carrying its password."""
    u: URL = make_url(url)
    args = [f"--dbname={u.database or ''}"]
    if u.host:
        args.append(f"--host={u.host}")
    if u.port:
        args.append(f"--port={u.port}")
    if u.username:
        args.append(f"--username={u.username}")
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args, env


def sqlite_lease(path: Path) -> Lease | None:
    """The scheduler lease recorded in the SQLite file (jobs/lease.py), if any."""
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (LEASE_KEY,)).fetchone()
    except sqlite3.DatabaseError:
        return None
    return Lease.parse(row[0]) if row else None


async def pg_contents(db: Any) -> tuple[Contents, Lease | None]:
    """What the PostgreSQL database holds, and its scheduler lease (storage.db.Database)."""
    async with db.read_engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        if not {"alembic_version", "orders", "codes", "meta"} <= tables:
            return Contents(None, 0, 0, 0), None
        revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        counts = [int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)
                  for table in (t.orders, t.codes, t.audit)]
        raw = (await conn.execute(select(t.meta.c.value).where(t.meta.c.key == LEASE_KEY))).scalar()
    return Contents(revision, *counts), Lease.parse(raw)


def known_revision(revision: str | None) -> bool:
    """Is this a schema revision of this release (or an older one it upgrades from)? None (no schema): yes."""
    if revision is None:
        return True
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        return ScriptDirectory.from_config(cfg).get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        return False
