"""python-telegram-bot on the store's aiohttp transport (bots/telegram/ptb_request.py): the errors PTB's own
transport gives (its retry and error handling depend on them), and uploads. The whole PTB storefront runs on it in
every `[ptb]` test against the fake Bot API."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bots.telegram.ptb_request import AiohttpRequest
from tests.helpers import free_port

TOKEN = "123:ABC"


async def _server(handler) -> tuple[web.AppRunner, str]:  # noqa: ANN001
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/bot"


async def test_a_bot_api_that_does_not_answer_in_time_is_timed_out_and_a_closed_port_is_a_network_error() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    runner, base = await _server(slow)
    request = AiohttpRequest(4, read_timeout=0.3)
    await request.initialize()
    with pytest.raises(TimedOut):
        await request.post(f"{base}{TOKEN}/sendMessage", None)
    await request.shutdown()
    await runner.cleanup()

    closed = AiohttpRequest(1, connect_timeout=1.0)
    await closed.initialize()
    with pytest.raises(NetworkError):
        await closed.post(f"http://127.0.0.1:{free_port()}/bot{TOKEN}/getMe", None)
    await closed.shutdown()
    with pytest.raises(NetworkError, match="not initialized"):
        await closed.post(f"http://127.0.0.1:1/bot{TOKEN}/getMe", None)


async def test_parameters_go_as_a_form_and_files_as_multipart_with_their_names() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    async def record(request: web.Request) -> web.Response:
        form = await request.post()
        fields: dict[str, object] = {}
        for name, value in form.items():
            fields[name] = (value.filename, value.file.read()) if isinstance(value, web.FileField) else value
        seen.append((request.match_info["method"], fields))
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": {"id": 123, "is_bot": True, "first_name": "Shop",
                                                              "username": "shop_bot"}})
        return web.json_response({"ok": True, "result": {"message_id": 7, "date": 0, "chat": {"id": 5,
                                                                                                "type": "private"}}})

    runner, base = await _server(record)
    try:
        async with Bot(TOKEN, base_url=base, request=AiohttpRequest(4), get_updates_request=AiohttpRequest(1)) as bot:
            await bot.send_message(5, "价格 ⭐70", reply_markup=None)
            await bot.send_photo(5, b"\x89PNG fake picture", caption="chart", filename="day.png")
    finally:
        await runner.cleanup()
    methods = [m for m, _ in seen]
    assert methods == ["getMe", "sendMessage", "sendPhoto"]
    assert seen[1][1]["text"] == "价格 ⭐70" and seen[1][1]["chat_id"] == "5"
    photo = seen[2][1]
    assert photo["caption"] == "chart" and photo["photo"] == ("day.png", b"\x89PNG fake picture")
    assert json.dumps(photo["chat_id"]) == '"5"'
