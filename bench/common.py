"""Shared helpers for the benchmarks in bench/: progress lines and the final JSON line, a temp store's config,
code files, temp dirs and a throw-away PostgreSQL database. The store itself (App, pool, buyers) is bench/shop.py.

Every benchmark prints progress lines and ends with one line that is a single JSON object of figures.
Nothing here touches anything but temp dirs and 127.0.0.1 services.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from config.settings import Settings, parse_settings
from storage.scratch import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]  # the benchmarks put it on sys.path before importing bench.common

SKU = "BENCH-CODE"
CHANNEL = "bench"
PROVIDER = "bench"
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """A human-readable progress line (stdout, flushed, with elapsed seconds)."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", flush=True)


def emit(figures: dict[str, Any]) -> None:
    """The one final line: a single JSON object."""
    print(json.dumps(figures, sort_keys=False), flush=True)


# -- config ------------------------------------------------------------------------------------

def config_data(db_url: str, *, sku: str = SKU, max_qty: int = 10, price: int = 100,
                max_open_holds: int = 3) -> dict[str, Any]:
    """A minimal store config: one `code` product, vault key file next to the config, quiet logs."""
    return {
        "store": {"name": "Bench Shop", "currency": "CNY", "default_language": "en", "languages": ["en"],
                  "hold_minutes": 60, "max_open_holds": max_open_holds, "demo": False},
        "database": {"url": db_url, "sqlite_synchronous": "FULL", "pool_size": 5},
        "vault": {"key_file": "vault.key"},
        "logging": {"level": "WARNING"},
        "catalog": [{"sku": sku, "title": "Bench card", "price": price, "kind": "code", "max_qty": max_qty}],
    }


def sqlite_url(directory: Path, name: str = "store.db") -> str:
    return f"sqlite+aiosqlite:///{(directory / name).resolve()}"


def make_settings(directory: Path, db_url: str | None = None, **kw: Any) -> Settings:
    """Validated Settings for a temp store living in `directory` (SQLite file there unless db_url)."""
    data = config_data(db_url or sqlite_url(directory), **kw)
    return parse_settings(data, directory, env={})


def write_config(directory: Path, db_url: str | None = None, **kw: Any) -> Path:
    """Write config.yaml into `directory` (validated first with parse_settings); returns its path."""
    data = config_data(db_url or sqlite_url(directory), **kw)
    parse_settings(data, directory, env={})
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# -- code files ----------------------------------------------------------------------------------

_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TABLE = bytes(_ALNUM[b % len(_ALNUM)] for b in range(256))


def code_lines(n: int, *, prefix: bytes = b"CARD-", chunk: int = 100_000) -> Iterator[bytes]:
    """n lines `CARD-<16 random alnum>\\n` (62^16 space: a collision is practically impossible)."""
    left = n
    while left > 0:
        k = min(chunk, left)
        blob = os.urandom(16 * k).translate(_TABLE)
        for i in range(0, 16 * k, 16):
            yield prefix + blob[i:i + 16] + b"\n"
        left -= k


def write_code_file(path: Path, n: int) -> Path:
    with path.open("wb") as fh:
        buf: list[bytes] = []
        for line in code_lines(n):
            buf.append(line)
            if len(buf) >= 100_000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return path


# -- PostgreSQL ----------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    """CREATE DATABASE bench_<random> on the server of `url`; yields its URL; DROPs it at the end."""
    base = make_url(url)
    if base.get_backend_name() != "postgresql":
        raise SystemExit(f"--postgres wants a postgresql+asyncpg:// URL, got {base.drivername}")
    made = await create_database(url, "bench_")
    name = make_url(made).database
    log(f"created PostgreSQL database {name} on {base.host}:{base.port}")
    try:
        yield made
    finally:
        try:
            await drop_database(url, made)
            log(f"dropped PostgreSQL database {name}")
        except Exception as exc:  # noqa: BLE001
            log(f"WARNING: could not drop database {name}: {exc}")


@contextlib.contextmanager
def temp_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


def chunks(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf
