"""/healthz, /readyz and /metrics on the store's HTTP server (bots/ops.py): what an owner's monitoring sees."""
from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import pytest
import yaml

from app import App
from bots.http import HttpServer, webhook_path
from bots.ops import metrics_allowed, mount_ops
from core.models import OutboxItem
from storage.jobs import SqlJobStore
from tests.helpers import (
    buyer,
    free_port,
    import_n,
    make_settings,
    open_shop,
    pay,
    product_id,
    settle,
    sqlite_url_for,
    start_store,
)
from tests.redis_kit import PrivateRedis, private_redis  # noqa: F401 - a fixture used by name
from tests.telegram_harness import CATALOG, TOKEN, Shopfront, store_settings

OWNER = "test-owner"


@asynccontextmanager
async def serving(app: Any, **server: Any) -> AsyncIterator[tuple[str, Any]]:
    """The app's HTTP server on a free port with the ops routes; yields its base URL and the Ops."""
    current = app.settings.server
    app.settings.server = type(current).model_validate({**current.model_dump(), **server})
    http = HttpServer("127.0.0.1", 0)
    ops = mount_ops(http, app, app.metrics)

    async def order_page(request: Any) -> Any:  # a route with an id in its path
        return aiohttp.web.Response(text=request.match_info["order_id"])

    http.app.router.add_get("/orders/{order_id}", order_page)
    await http.start()
    try:
        yield f"http://127.0.0.1:{http.port}", ops
    finally:
        await http.stop()


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text()


async def take_lease(app: Any) -> None:
    """A live scheduler: the lease held by this test's process."""
    assert await SqlJobStore(app.db).claim(OWNER, app.clock.now(), timedelta(seconds=60))


async def test_given_a_running_store_then_healthz_answers_ok(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _), serving(app) as (base, _):
        assert await get(f"{base}/healthz") == (200, "ok")


async def test_given_database_lease_and_small_backlog_then_readyz_is_200_naming_each_check(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _), serving(app) as (base, _):
        await take_lease(app)
        status, body = await get(f"{base}/readyz")
        assert status == 200, body
        data = json.loads(body)
        assert data["ready"] is True
        assert set(data["checks"]) == {"database", "outbox", "scheduler"}
        assert all(c["ok"] for c in data["checks"].values())
        assert OWNER in data["checks"]["scheduler"]["detail"]  # a loopback client sees the reasons


async def test_given_no_scheduler_lease_then_readyz_is_503_and_says_which_check_failed(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _), serving(app) as (base, _):
        status, body = await get(f"{base}/readyz")
        assert status == 503
        checks = json.loads(body)["checks"]
        assert checks["database"]["ok"] and checks["outbox"]["ok"]
        assert not checks["scheduler"]["ok"] and "lease" in checks["scheduler"]["detail"]


async def test_given_a_big_outbox_backlog_then_readyz_is_503(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _), serving(app, ready_max_backlog=5) as (base, _):
        await take_lease(app)
        async with app.db.uow(write=True) as uow:
            await uow.outbox.add_many([OutboxItem(None, "notify", "test", f"c{i}", None,
                                                  {"key": "x", "language": "en", "params": {}}) for i in range(5)])
            await uow.commit()
        status, body = await get(f"{base}/readyz")
        assert status == 503
        outbox = json.loads(body)["checks"]["outbox"]
        assert not outbox["ok"] and "5 rows due" in outbox["detail"]
        metrics = (await get(f"{base}/metrics"))[1]
        assert "store_outbox_backlog 5.0" in metrics


async def test_given_the_database_is_gone_then_readyz_is_503_and_healthz_still_ok(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _), serving(app) as (base, _):
        await take_lease(app)
        await app.db.read_engine.dispose()
        (tmp_path / "store.db").rename(tmp_path / "moved.db")  # the disk went away under the store
        (tmp_path / "store.db").mkdir()  # ... and in its place something that is no database
        status, body = await get(f"{base}/readyz")
        assert status == 503
        assert not json.loads(body)["checks"]["database"]["ok"]
        assert await get(f"{base}/healthz") == (200, "ok")


async def test_given_a_purchase_then_metrics_count_it_and_no_code_or_buyer_id_is_in_the_scrape(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _), serving(app) as (base, _):
        await app.shop.start()
        codes = await import_n(app, 3)
        who = buyer("secret-openid-4711")
        order = await app.shop.reserve(who, await product_id(app), 2, "en")
        await pay(app, order)
        await settle(app)
        await app.shop.dispatcher.drain()  # the payment's hand-off marked sent (counted once marked)
        assert len(notifier.codes()) == 2
        assert (await get(f"{base}/orders/{order.id}"))[0] == 200  # timed by its template, never by its path
        assert (await get(f"{base}/nothing/here/{codes[0]}"))[0] == 404
        status, text = await get(f"{base}/metrics")
        assert status == 200
        assert 'store_payments_total{outcome="delivered",provider="test"} 1.0' in text
        assert 'store_deliveries_total{channel="test"} 1.0' in text
        assert 'store_orders{status="delivered"} 1.0' in text
        assert "store_outbox_lag_seconds" in text
        assert 'store_http_request_seconds_count{method="GET",route="/orders/{order_id}",status="200"} 1.0' in text
        assert 'store_http_request_seconds_count{method="GET",route="unmatched",status="404"} 1.0' in text
        for secret in [*codes, who.external_id, order.id]:
            assert secret not in text


async def test_given_a_remote_client_then_metrics_need_the_token(sqlite_url: str, tmp_path: Path) -> None:
    """A request a proxy forwarded comes from 127.0.0.1 yet is not the owner's own machine: without the token,
    403; with it, the scrape."""
    async with open_shop(sqlite_url, tmp_path) as (app, _, _), serving(app, metrics_token="s3cret-token") as (base, _):
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        assert (await get(f"{base}/metrics", **forwarded))[0] == 403
        assert (await get(f"{base}/metrics", **forwarded, Authorization="Bearer wrong"))[0] == 403
        status, text = await get(f"{base}/metrics", **forwarded, Authorization="Bearer s3cret-token")
        assert status == 200 and "store_orders" in text
        body = json.loads((await get(f"{base}/readyz", **forwarded))[1])  # states only, no reasons
        assert all(set(c) == {"ok"} for c in body["checks"].values())


@pytest.mark.parametrize(("remote", "headers", "token", "allowed"), [
    ("127.0.0.1", {}, "", True),
    ("::1", {}, "", True),
    ("203.0.113.9", {}, "", False),
    ("203.0.113.9", {"Authorization": "Bearer t0k"}, "t0k", True),
    ("203.0.113.9", {"Authorization": "Bearer t0k"}, "", False),  # no token configured: no token works
    ("203.0.113.9", {"Authorization": "Bearer "}, "", False),
    ("127.0.0.1", {"X-Real-IP": "198.51.100.7"}, "", False),
    ("127.0.0.1", {"Forwarded": "for=198.51.100.7"}, "t0k", False),
    (None, {}, "", False),
])
def test_who_may_read_metrics(remote: str | None, headers: dict[str, str], token: str, allowed: bool) -> None:
    assert metrics_allowed(remote, headers, token) is allowed


async def test_given_telegram_updates_by_polling_and_by_webhook_then_each_is_counted_by_its_way_in(
        api: Any, tmp_path: Path, library: str) -> None:
    user = 987654321  # a Telegram user id never appears in the scrape
    async with Shopfront(api, tmp_path / "polling", library=library) as shop:
        await shop.send(api.message_update(api.user(user), "/start"))
        assert shop.app.metrics.value("store_updates_total", channel="telegram", via="polling") == 1
        assert str(user) not in shop.app.metrics.render().decode()

    secret = "s3cret-Token_1"
    hook = tmp_path / "webhook"
    hook.mkdir()
    settings = store_settings(api, hook, library=library, telegram={
        "mode": "webhook", "webhook": {"url": "https://shop.example.com/tg/hook", "secret": secret}})
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        http = HttpServer("127.0.0.1", 0)
        http.add_telegram(runtime, webhook_path(settings.telegram.webhook.url), secret)
        mount_ops(http, app, app.metrics)
        await http.start()
        try:
            url = f"http://127.0.0.1:{http.port}"
            update = api.message_update(api.user(user), "/start")
            assert await api.post_update_to(f"{url}/tg/hook", update, secret=secret) == 200
            status, text = await get(f"{url}/metrics")
            assert status == 200
            assert 'store_updates_total{channel="telegram",via="webhook"} 1.0' in text
            assert 'route="/tg/hook",status="200"' in text
            assert str(user) not in text
        finally:
            await http.stop()
            await runtime.stop()


async def test_given_server_ops_then_a_polling_store_process_serves_health_and_metrics_and_logs_json(
        api: Any, tmp_path: Path) -> None:
    """`server.ops: true`: the store as a merchant runs it (Telegram polling, nothing else on HTTP) opens its
    server for the ops routes alone; with `logging.format: json` every line it logs is a JSON object."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "server": {"port": port, "ops": True},
        "logging": {"format": "json"},
        "telegram": {"token": TOKEN, "api_base": api.base},
        "jobs": {"lease_seconds": 3},
        "catalog": CATALOG}))
    proc = await asyncio.to_thread(start_store, config, port, 120)
    try:
        base = f"http://127.0.0.1:{port}"
        assert await get(f"{base}/healthz") == (200, "ok")
        for _ in range(100):  # the scheduler takes its lease within a heartbeat of the start
            status, body = await get(f"{base}/readyz")
            if status == 200:
                break
            await asyncio.sleep(0.2)
        assert status == 200, body
        status, text = await get(f"{base}/metrics")
        assert status == 200 and "store_scheduler_lease_held 1.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)  # as systemd stops it
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(json.loads(line)) for line in lines)


def sample(text: str, name: str) -> float:
    """One sample's value in a Prometheus text page."""
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


async def test_given_redis_going_away_then_metrics_and_readyz_say_so(
        private_redis: PrivateRedis, tmp_path: Path) -> None:  # noqa: F811
    settings = make_settings(sqlite_url_for(tmp_path), tmp_path)
    settings.redis.url = type(settings.redis.url)(private_redis.url)
    settings.redis.timeout_seconds = 0.3
    app = await App.open(settings)
    try:
        async with serving(app) as (base, _):
            await take_lease(app)
            status, page = await get(f"{base}/metrics")
            assert status == 200
            assert sample(page, "store_redis_away") == 0 and sample(page, "store_redis_fallbacks_total") == 0
            assert sample(page, "store_redis_late_answers_total") == 0
            private_redis.stop()
            assert await app.shop.shared.reserve("tg:1:overall", 30, 1) == 0.0  # the shop goes on, on its own
            status, page = await get(f"{base}/metrics")
            assert sample(page, "store_redis_away") == 1 and sample(page, "store_redis_fallbacks_total") >= 1
            status, body = await get(f"{base}/readyz")
            assert status == 503 and json.loads(body)["checks"]["redis"]["ok"] is False
    finally:
        await app.close()
