"""Scratch PostgreSQL databases for the tests and the benchmarks: made under a random name on the server of a URL
and dropped at the end (also on error, and while connections remain: `WITH (FORCE)`), so runs sharing one server
never see each other's rows and leave nothing behind. Not used by the store itself."""
from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url


async def admin(url: str, sql: str) -> None:
    """Run one statement on the server of `url` (a postgresql+asyncpg:// URL), on a connection of its own."""
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def url_of(url: str, database: str) -> str:
    """`url` naming another database on the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def create_database(url: str, prefix: str) -> str:
    """CREATE DATABASE <prefix><random hex> on the server of `url`; its URL."""
    name = f"{prefix}{secrets.token_hex(4)}"
    await admin(url, f'CREATE DATABASE "{name}"')
    return url_of(url, name)


async def drop_database(server_url: str, url: str) -> None:
    """DROP the database `url` names, if it is there (connected to `server_url`'s: not the one dropped)."""
    await admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def scratch_database(url: str, prefix: str) -> AsyncIterator[str]:
    """A new database on the server of `url`, yielded as its URL, dropped at the end."""
    made = await create_database(url, prefix)
    try:
        yield made
    finally:
        await drop_database(url, made)
