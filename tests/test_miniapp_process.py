"""`run.py` serves the Mini App's API when Telegram is on and `server.public_url` is set: a real store process
(polling the fake Bot API) answers `/app/api/catalog` to initData signed with its bot's token, and 401 without; sells
through its own running bot (an invoice link, paid through the bot's updates, delivered); `run.py telegram setup`
sets the Mini App's menu button."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from core.webapp_auth import sign_init_data
from tests.fake_bot_api import FakeBotAPI
from tests.helpers import SKU, free_port, run_cli, start_store, stop_store, write_config
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


async def test_run_py_sells_in_the_mini_app_through_its_running_bot(tmp_path: Path) -> None:
    """The process mounts the orders API with its own bot: the invoice link comes from the fake Bot API, and paying
    it through the bot's updates delivers the order."""
    port = free_port()
    async with FakeBotAPI(token=TOKEN) as api:
        cfg = write_config(tmp_path, demo=False, extra={
            "server": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
            "telegram": {"token": TOKEN, "api_base": api.base}})
        codes = tmp_path / "codes.txt"
        codes.write_text("MINI-0001\nMINI-0002\n")
        done = await asyncio.to_thread(run_cli, cfg, "codes", "import", SKU, str(codes))
        assert done.returncode == 0, done.stderr
        proc = await asyncio.to_thread(start_store, cfg, port)
        base = f"http://127.0.0.1:{port}/app/api"
        user = api.user(5)
        auth = {"Authorization": "tma " + sign_init_data(
            {"auth_date": str(int(time.time())), "user": '{"id":5,"language_code":"en"}'}, TOKEN)}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/catalog", headers=auth) as r:
                    pid = (await r.json())["products"][0]["id"]
                async with http.post(base + "/orders", json={"product_id": pid, "qty": 1}, headers=auth) as r:
                    assert r.status == 201, await r.text()
                    body = await r.json()
                assert api.invoice_of(body["pay"]["url"])["payload"] == body["order"]["id"]
                pre, paid = api.pay_link_updates(user, body["pay"]["url"])
                api.push_update(pre)
                assert (await api.wait_for("answerPreCheckoutQuery", timeout=15)).params["ok"] is True
                api.push_update(paid)
                await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 5 and "MINI-000" in
                                   c.params["text"], timeout=15)
                async with http.get(f"{base}/orders/{body['order']['id']}", headers=auth) as r:
                    assert (await r.json())["order"]["status"] == "delivered"
        finally:
            await asyncio.to_thread(stop_store, proc)


async def test_run_py_telegram_setup_sets_the_mini_apps_menu_button(tmp_path: Path) -> None:
    async with FakeBotAPI(token=TOKEN) as api:
        cfg = write_config(tmp_path, demo=False, extra={
            "server": {"public_url": "https://shop.example/"}, "store": {"default_language": "zh_CN"},
            "telegram": {"token": TOKEN, "api_base": api.base}})
        done = await asyncio.to_thread(run_cli, cfg, "telegram", "setup")
        assert done.returncode == 0, done.stderr
        assert api.menu_buttons[None] == {"type": "web_app", "text": "商店",
                                          "web_app": {"url": "https://shop.example/app/"}}
