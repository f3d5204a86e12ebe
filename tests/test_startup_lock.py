"""Several store processes started at once on one blank database (systemd starting every instance, compose bringing
up every container): they take turns through the start-up writes (storage/startup.py), so all of them start, the
schema is made once and the catalogue is there once."""
from __future__ import annotations

import asyncio
from pathlib import Path

from app.bootstrap import App
from tests.helpers import make_settings


async def test_three_stores_starting_together_on_a_blank_database_all_start(blank_db_url: str,
                                                                           tmp_path: Path) -> None:
    settings = make_settings(blank_db_url, tmp_path)
    apps = await asyncio.gather(*(App.open(settings) for _ in range(3)), return_exceptions=True)
    opened = [a for a in apps if isinstance(a, App)]
    try:
        assert len(opened) == 3, [repr(a) for a in apps if not isinstance(a, App)]
        for app in opened:
            assert [p.sku for p in await app.shop.products()] == [s.sku for s in settings.catalog]
        assert await opened[0].db.current_revision() == await opened[2].db.current_revision()
    finally:
        for app in opened:
            await app.close()
