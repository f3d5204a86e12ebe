"""`run.py` serves the Mini App's API when Telegram is on and `server.public_url` is set: a real store process
(polling the fake Bot API) answers `/app/api/catalog` to initData signed with its bot's token, and 401 without."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from core.webapp_auth import sign_init_data
from tests.fake_bot_api import FakeBotAPI
from tests.helpers import free_port, start_store, stop_store, write_config
from tests.telegram_harness import TOKEN


async def test_run_py_serves_the_mini_app_api_behind_init_data(tmp_path: Path) -> None:
    port = free_port()
    async with FakeBotAPI(token=TOKEN) as api:
        cfg = write_config(tmp_path, demo=False, extra={
            "server": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
            "telegram": {"token": TOKEN, "api_base": api.base}})
        proc = await asyncio.to_thread(start_store, cfg, port)  # the fake Bot API answers meanwhile
        url = f"http://127.0.0.1:{port}/app/api/catalog"
        init = sign_init_data({"auth_date": str(int(time.time())), "user": '{"id":5,"language_code":"en"}'}, TOKEN)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as r:
                    assert r.status == 401
                    assert (await r.json())["error"] == {"code": "unauthorized", "reason": "missing"}
                async with http.get(url, headers={"Authorization": f"tma {init}"}) as r:
                    assert r.status == 200
                    assert [p["title"] for p in (await r.json())["products"]] == ["Game card 10"]
                other = sign_init_data({"auth_date": str(int(time.time())), "user": '{"id":5}'}, "1:other")
                async with http.get(url, headers={"Authorization": f"tma {other}"}) as r:
                    assert r.status == 401
        finally:
            await asyncio.to_thread(stop_store, proc)
