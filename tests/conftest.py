"""Shared fixtures: real SQLite files and a real PostgreSQL database per test run."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The fast tier (tests/unit, `make test-fast`) loads this file too: the fixtures below import the database drivers and
# the Telegram harness when a test asks for them, so that tier starts in a second without any of them.
PG_URL = os.environ.get("STORE_TEST_POSTGRES_URL", "")
# .ci/run sets this: there, an unreachable PostgreSQL is a failure, not a skip.
PG_REQUIRED = os.environ.get("STORE_TEST_REQUIRE_POSTGRES") == "1"

# Headless Chromium for browser tests (`page`, `browser`) and their screenshot on failure; Playwright's client
# is all it imports (a tenth of a second), the browser starts only for a test that asks.
pytest_plugins = ("tests.browser",)


def _pg_admin(url: str):  # noqa: ANN202
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keeps tests/unit free of DB drivers

    return make_url(url)


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    if not PG_URL:
        (pytest.fail if PG_REQUIRED else pytest.skip)("PostgreSQL tests need STORE_TEST_POSTGRES_URL (set by .ci/run), "
                                                      "e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    import asyncpg  # noqa: PLC0415 - keeps tests/unit free of DB drivers

    from storage.scratch import create_database, drop_database  # noqa: PLC0415 - as above

    base = _pg_admin(PG_URL)
    try:
        url = asyncio.run(create_database(PG_URL, "store_test_"))
    except (OSError, asyncpg.PostgresError) as exc:
        (pytest.fail if PG_REQUIRED else pytest.skip)(f"PostgreSQL at {base.host}:{base.port} is unreachable: {exc}")
    yield url
    asyncio.run(drop_database(PG_URL, url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file already migrated to head (tests/dbtemplate.py)."""
    from tests.dbtemplate import from_template  # noqa: PLC0415 - keeps tests/unit free of DB drivers

    return from_template(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite and on PostgreSQL, on a database migrated to head with no rows in it."""
    from tests.dbtemplate import from_template, pg_migrated  # noqa: PLC0415 - keeps tests/unit free of DB drivers

    if request.param == "sqlite":
        return from_template(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    return pg_migrated(request.getfixturevalue("pg_database"))


@pytest.fixture(params=["sqlite", "postgres"])
def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For the migrations' own tests: a database with nothing in it, on SQLite and on PostgreSQL."""
    from tests.dbtemplate import pg_blank  # noqa: PLC0415 - keeps tests/unit free of DB drivers

    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return pg_blank(request.getfixturevalue("pg_database"))


# The Telegram end-to-end tests: each scenario once per library, against a fresh local fake Bot API.
# (Test modules with another fake of their own, e.g. WeChat's, define their own `api`.)
@pytest.fixture(params=["aiogram", "ptb"])
def library(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def api():
    from tests.telegram_harness import fake_api  # noqa: PLC0415 - keeps tests/unit free of aiogram, PTB

    async for fake in fake_api():
        yield fake
