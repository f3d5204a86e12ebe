"""Tests of the test harness: the fake Bot API delivers updates to several webhook URLs as Telegram re-sends them,
and counts the messages it received in any one second."""
from __future__ import annotations

from aiohttp import web

from tests.fake_bot_api import FakeBotAPI
from tests.fake_bot_api.delivery import most_within
from tests.fake_bot_api.wire import Call


async def serve(handler) -> tuple[web.AppRunner, str]:  # noqa: ANN001
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port of a test server
    return runner, f"http://127.0.0.1:{port}/hook"


async def test_updates_go_to_the_urls_in_turn_with_the_secret_and_are_sent_again_until_answered_200() -> None:
    seen: list[tuple[str, int, str | None]] = []

    def recorder(name: str, fail_first: bool):  # noqa: ANN202
        async def hook(request: web.Request) -> web.Response:
            update = await request.json()
            seen.append((name, update["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
            if fail_first and sum(1 for s in seen if s[0] == name) == 1:
                return web.Response(status=503)  # busy: Telegram sends it again later
            return web.Response(text="ok")
        return hook

    first, url_a = await serve(recorder("a", fail_first=True))
    second, url_b = await serve(recorder("b", fail_first=False))
    try:
        async with FakeBotAPI(token="1:A") as api:
            api.deliver_to([url_a, url_b], "s3cret", connections=1, retry_seconds=0.05)
            user = api.user(5)
            one = api.push_update(api.message_update(user, "/start"))
            await api.wait_delivered(timeout=5)
            two = api.push_update(api.message_update(user, "/help"))
            await api.wait_delivered(timeout=5)
            assert api.undelivered() == set()
            assert api.pushed_ids() == {one["update_id"], two["update_id"]}
            assert {s[2] for s in seen} == {"s3cret"}
            # "a" refused the first update, which went again to "b"; the second went to "a", which took it
            assert [(s[0], s[1]) for s in seen] == [("a", one["update_id"]), ("b", one["update_id"]),
                                                    ("a", two["update_id"])]
            assert [p.status for p in api.webhook_answers] == [503, 200, 200]
            assert api.polls == 0 and api._queue == []  # nothing queued for getUpdates meanwhile

            api.deliver_to([url_a, url_b], "s3cret", copies_every=1)  # every update twice at once
            three = api.push_update(api.message_update(user, "/menu"))
            await api.wait_delivered(timeout=5)
            assert sorted(s[0] for s in seen if s[1] == three["update_id"]) == ["a", "b"]
            assert api.answered_ok[three["update_id"]] == 2
    finally:
        await first.cleanup()
        await second.cleanup()


async def test_a_url_that_does_not_answer_is_left_for_the_next_one() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    runner, url = await serve(ok)
    try:
        async with FakeBotAPI(token="1:A") as api:
            api.deliver_to(["http://127.0.0.1:9/hook", url], "s", retry_seconds=0.05)  # port 9: nobody listens
            update = api.push_update(api.message_update(api.user(6), "/start"))
            await api.wait_delivered(timeout=5)
            assert [(p.url, p.status) for p in api.webhook_answers if p.update_id == update["update_id"]][-1] \
                == (url, 200)
    finally:
        await runner.cleanup()


def test_send_rates_count_the_busiest_second_overall_and_per_chat() -> None:
    assert most_within([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3  # [0.5, 1.5) holds 0.5, 0.99, 1.0
    assert most_within([], 1.0) == 0
    api = FakeBotAPI(token="1:A")
    api._calls = [Call("sendMessage", {"chat_id": 1}, {}, 10.0), Call("sendMessage", {"chat_id": 1}, {}, 10.2),
                  Call("sendInvoice", {"chat_id": 2}, {}, 10.4), Call("answerCallbackQuery", {}, {}, 10.5),
                  Call("sendMessage", {"chat_id": 2}, {}, 11.3)]
    rates = api.send_rates()
    assert (rates.count, rates.overall, rates.per_chat, rates.busiest_chat) == (4, 3, 2, 1)
    assert api.send_rates(window=2.0).overall == 4
