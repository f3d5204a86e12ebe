"""Test stores start from an already migrated database instead of running every Alembic migration again.

Migrating a new database costs about 0.06 s of CPU on SQLite and 0.2-0.3 s on PostgreSQL; the suite opens a
store some 650 times. So each test process migrates once, with the store's own `Database.upgrade()`:
- SQLite: a template file, copied to a test's database path when nothing is there yet (`from_template`);
- PostgreSQL: the process's database is migrated once, and each test's `db_url` deletes every row and restarts
  the sequences (15 ms) while the schema is still exactly the one migrated; anything else (a migration test left
  an older schema) drops the schema and migrates again. `CREATE DATABASE ... TEMPLATE` measured 0.15-0.5 s here, no
  faster than migrating, and each database made would have to be dropped again.
`App.open` still runs the migrations' check (finds the head, changes nothing); the migrations themselves have
their own tests on blank databases (tests/test_migrations_round_trip.py, test_suppliers_migration.py), and every
CLI test's store process migrates its new database itself.
"""
from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from storage.db import Database

_lock = threading.Lock()
_sqlite_template: Path | None = None
_pg_schema: dict[str, Any] = {}  # database name -> (its schema right after migrating, tables, sequences)


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()


def _run(coro: Any) -> None:
    """Run a coroutine to completion from sync or async code (a thread of its own has no running loop)."""
    error: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            error.append(exc)

    thread = threading.Thread(target=work, name="db-template")
    thread.start()
    thread.join()
    if error:
        raise error[0]


def sqlite_template() -> Path:
    """This process's migrated SQLite file (made on first use)."""
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            folder = Path(tempfile.mkdtemp(prefix="store-template-"))
            atexit.register(shutil.rmtree, folder, True)
            path = folder / "template.db"
            _run(_migrate(f"sqlite+aiosqlite:///{path}"))
            # Closing the last connection checkpointed the WAL: the one file holds the whole schema.
            assert not path.with_name(path.name + "-wal").exists()
            _sqlite_template = path
        return _sqlite_template


def from_template(url: str) -> str:
    """Give a SQLite file URL whose file does not exist yet the migrated template (0600, like the store makes
    it); any other URL is returned as it is."""
    u = make_url(url)
    db = u.database or ""
    if u.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return url
    path = Path(db)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template(), path)
        path.chmod(0o600)
    return url


# -- PostgreSQL ----------------------------------------------------------------------------------------------

FINGERPRINT = """
SELECT (SELECT string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
                          || coalesce(column_default, ''), ',' ORDER BY table_name, column_name)
        FROM information_schema.columns WHERE table_schema = 'public'),
       (SELECT string_agg(indexdef, ',' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'),
       (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ',' ORDER BY conname)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace)
"""


async def _fingerprint(conn: Any) -> tuple[Any, ...]:
    row = await conn.fetchrow(FINGERPRINT)
    tables = [r[0] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    version = (await conn.fetch("SELECT version_num FROM alembic_version ORDER BY 1")
               if "alembic_version" in tables else [])
    return tuple(row), tuple(tables), tuple(r[0] for r in version)


def pg_blank(url: str) -> str:
    """An empty public schema (for the migration tests)."""
    u = make_url(url)

    async def blank() -> None:
        conn = await asyncpg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    _run(blank())
    _pg_schema.pop(u.database or "", None)
    return url


async def _empty(conn: Any, tables: list[str], sequences: list[str]) -> None:
    """Delete every row and restart every sequence, as TRUNCATE ... RESTART IDENTITY would. DELETE on the few
    rows a test leaves takes about 15 ms where TRUNCATE, which makes new files for 28 tables, takes 150 ms.
    Foreign keys are not checked meanwhile (session_replication_role, a superuser's setting): every row goes."""
    script = "; ".join([f'DELETE FROM "{t}"' for t in tables] + [f'ALTER SEQUENCE "{q}" RESTART' for q in sequences])
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica; " + script)
    except asyncpg.InsufficientPrivilegeError:  # not a superuser: the slower way
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


def pg_migrated(url: str) -> str:
    """The database at `url` migrated to head with no rows in any table (identities restarted)."""
    u = make_url(url)
    name = u.database or ""
    dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)

    async def reset() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            known = _pg_schema.get(name)
            if known is not None and await _fingerprint(conn) == known[0]:
                await _empty(conn, known[1], known[2])
                return
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            await _migrate(url)
            fingerprint = await _fingerprint(conn)
            sequences = [r[0] for r in await conn.fetch(
                "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'")]
            _pg_schema[name] = (fingerprint, [t for t in fingerprint[1] if t != "alembic_version"], sequences)
        finally:
            await conn.close()

    _run(reset())
    return url
