"""Direct top-up (直充) end to end: the buyer enters the account during checkout (checked by the product's
pattern, shown back for confirmation), pays, the order is pending until the supplier confirms — by a signed
callback to the store's HTTP server, or by polling — and a failure refunds."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import App
from app.bootstrap import JobsConfig, store_jobs
from bots.http import HttpServer
from config.settings import parse_settings
from core.clock import FakeClock
from core.errors import StoreError
from core.models import Buyer
from core.ports import TopupResult
from core.supply import poll_topups
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from storage.jobs import SqlJobStore
from suppliers import handle_callback, mount_callbacks
from tests.fake_supplier import FakeSupplier
from tests.helpers import CHANNEL, PROVIDER, RecordingGateway, RecordingNotifier, order_status, pay, settle

SKU = "CM-30"
CATALOG = [{"sku": SKU, "title": {"en": "China Mobile ¥30", "zh_CN": "中国移动话费 30 元"}, "price": 3000,
            "stars": 200, "kind": "topup", "supplier": "up", "supplier_sku": "SUP-CM-30", "cost": 2940,
            "account_pattern": r"^1[3-9]\d{9}$"}]
PHONE = "13800138000"


@pytest.fixture
async def fake():
    server = await FakeSupplier().start()
    yield server
    await server.stop()


@asynccontextmanager
async def open_store(url: str, tmp_path: Path, fake: FakeSupplier, clock: FakeClock | None = None,
                     others: dict[str, Any] | None = None, **supplier: Any):
    """The store with its HTTP server (the supplier's callbacks arrive at /supplier/up/callback); `others`: more
    configured suppliers, by name."""
    holder: dict[str, App] = {}
    server = HttpServer("127.0.0.1", 0)
    server.add_supplier_callback(lambda name, body, ct: handle_callback(holder["app"].shop, name, body, ct))
    await server.start()  # first: the callback URL (with its port) goes into the supplier's settings
    callback = f"http://127.0.0.1:{server.port}/supplier/up/callback"
    settings = parse_settings({"store": {"demo": False}, "database": {"url": url},
                               "vault": {"key_file": str(tmp_path / "vault.key")},
                               "suppliers": {"up": fake.config(callback_url=callback, **supplier), **(others or {})},
                               "catalog": CATALOG}, tmp_path, env={})
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, clock=clock, notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway})
    holder["app"] = app
    try:
        yield app, notifier, gateway, callback
    finally:
        await app.close()
        await server.stop()


async def checkout(app: App, buyer: str, account: str = PHONE):
    """Product page -> Buy -> account -> confirm -> invoice; returns the order."""
    flow = CustomerFlow(app.shop, Translator(), shop_name="Shop", numbered=False)
    ctx = Ctx(Buyer(CHANNEL, buyer), buyer, "en")
    pid = (await app.shop.product_by_sku(SKU)).id
    await flow.on_action(ctx, f"topup:{pid}")
    await flow.on_text(ctx, account)
    [invoice] = await flow.on_action(ctx, f"topup_confirm:{pid}")
    order, _ = await app.shop.order_for(invoice.invoice["order_id"], ctx.buyer)
    return order


async def test_given_a_topup_the_buyer_enters_and_confirms_the_account_pays_and_the_callback_finishes_it(
        db_url, tmp_path, fake):
    async with open_store(db_url, tmp_path, fake) as (app, notifier, gateway, callback):
        flow = CustomerFlow(app.shop, Translator(), shop_name="Shop", numbered=False)
        ctx = Ctx(Buyer(CHANNEL, "u1"), "u1", "en")
        pid = (await app.shop.product_by_sku(SKU)).id
        [page] = await flow.on_action(ctx, f"product:{pid}")
        assert [a.id for a in page.flat_actions()][0] == f"topup:{pid}"
        [ask] = await flow.on_action(ctx, f"topup:{pid}")
        assert "mobile number" in ask.body
        [wrong] = await flow.on_text(ctx, "12345")
        assert wrong.error == "bad_account" and "“12345” is not a valid account" in wrong.body
        [confirm] = await flow.on_text(ctx, "138 0013 8000")
        assert confirm.title == "Please confirm" and f"Account: {PHONE}" in confirm.body and "CN¥30.00" in confirm.body
        assert [a.id for a in confirm.flat_actions()] == [f"topup_confirm:{pid}", f"topup:{pid}", "menu"]
        assert fake.requests == []
        [invoice] = await flow.on_action(ctx, f"topup_confirm:{pid}")
        assert f"Account: {PHONE}" in invoice.body
        order, _ = await app.shop.order_for(invoice.invoice["order_id"], ctx.buyer)
        assert order.account == PHONE

        assert (await pay(app, order)).outcome == "pending"
        await settle(app)
        rid = "T" + order.id
        assert fake.orders[rid].account == PHONE and fake.orders[rid].notify_url == callback
        assert await order_status(app, order.id) == "pending"
        [detail] = await flow.on_action(ctx, f"o:{order.id}")
        assert "processing the top-up" in detail.body and "k:" not in " ".join(a.id for a in detail.flat_actions())

        fake.finish(rid, "success")
        status, text = await fake.send_callback(rid, wrong_sign=True)
        assert status == 403 and await order_status(app, order.id) == "pending"  # refused: nothing changes
        async with aiohttp.ClientSession() as s, s.post(callback, data={"request_id": rid, "status": "success"}) as r:
            assert r.status == 403  # no signature at all
        assert await fake.send_callback(rid) == (200, "success")
        await settle(app)
        assert await order_status(app, order.id) == "delivered"
        [done] = notifier.notices_to("u1", "topup.done")
        assert done.params == {"order": order.id, "account": PHONE}
        assert await fake.send_callback(rid) == (200, "success")  # a repeat: answered, nothing more happens
        await settle(app)
        assert len(notifier.notices_to("u1", "topup.done")) == 1
        assert fake.purchases == {rid: 1} and gateway.refunds == [] and notifier.deliveries == []


async def test_given_a_pending_topup_that_fails_upstream_the_order_is_refunded_and_the_buyer_told(
        sqlite_url, tmp_path, fake):
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, gateway, _):
        order = await checkout(app, "u2")
        await pay(app, order)
        await settle(app)
        fake.finish("T" + order.id, "failed")
        assert await fake.send_callback("T" + order.id) == (200, "success")
        await settle(app)
        assert await order_status(app, order.id) == "refunded"
        [(payment, reason)] = gateway.refunds
        assert payment.order_id == order.id and reason == "topup_failed"
        assert notifier.notices_to("u2", "refund.done")[0].params["reason"] == "topup_failed"


async def test_pending_topups_finish_by_polling_when_no_callback_comes(db_url, tmp_path, fake):
    async with open_store(db_url, tmp_path, fake) as (app, notifier, gateway, _):
        ok, bad, waiting = await checkout(app, "u3"), await checkout(app, "u4"), await checkout(app, "u5")
        for order in (ok, bad, waiting):
            await pay(app, order)
        await settle(app)
        assert await poll_topups(app.shop) == 0  # all still processing upstream
        fake.finish("T" + ok.id, "success")
        fake.finish("T" + bad.id, "failed")
        assert await poll_topups(app.shop) == 2
        await settle(app)
        assert [await order_status(app, o.id) for o in (ok, bad, waiting)] == ["delivered", "refunded", "pending"]
        assert notifier.notices_to("u3", "topup.done") and notifier.notices_to("u4", "refund.done")
        assert [p.order_id for p, _ in gateway.refunds] == [bad.id]
        assert await poll_topups(app.shop) == 0  # finished ones are not asked about again
        assert [p["request_id"] for path, p in fake.requests if path == "/api/query"][-1] == "T" + waiting.id


async def test_a_topup_the_supplier_does_at_once_is_delivered_without_waiting(sqlite_url, tmp_path, fake):
    fake.topup_status = "success"
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, _, _):
        order = await checkout(app, "u6")
        await pay(app, order)
        await settle(app)
        assert await order_status(app, order.id) == "delivered"
        assert notifier.notices_to("u6", "topup.done")


async def test_a_topup_the_supplier_refuses_or_keeps_failing_is_refunded(sqlite_url, tmp_path, fake):
    clock = FakeClock()
    async with open_store(sqlite_url, tmp_path, fake, clock=clock, retries=0, max_attempts=2) as (app, notifier,
                                                                                                  gateway, _):
        refused, flaky = await checkout(app, "u7"), await checkout(app, "u8")
        fake.refuse["/api/topup"] = ["60001"]  # e.g. the number cannot be recharged
        await pay(app, refused)
        await settle(app)
        assert await order_status(app, refused.id) == "refunded"
        fake.faults["/api/topup"] = ["500", "500"]
        await pay(app, flaky)
        await settle(app)
        assert await order_status(app, flaky.id) == "pending"
        clock.advance(hours=1)
        await settle(app)
        assert await order_status(app, flaky.id) == "refunded"
        assert sorted(r for _, r in gateway.refunds) == ["topup_failed", "topup_failed"]
        assert fake.purchases == {}


async def test_the_account_is_checked_by_the_core_too_and_numbered_channels_can_still_pick_an_action(
        sqlite_url, tmp_path, fake):
    async with open_store(sqlite_url, tmp_path, fake) as (app, _, _, _):
        pid = (await app.shop.product_by_sku(SKU)).id
        with pytest.raises(StoreError) as err:
            await app.shop.reserve(Buyer(CHANNEL, "u9"), pid, 1, "en", account="10000000000")
        assert err.value.code.value == "bad_account"
        flow = CustomerFlow(app.shop, Translator(), shop_name="Shop", numbered=True)
        ctx = Ctx(Buyer(CHANNEL, "u9"), "u9", "en")
        [ask] = await flow.on_action(ctx, f"topup:{pid}")
        [back] = await flow.on_text(ctx, "1")  # "1" is no phone number: it picks the first offered action (Back)
        assert back.title == "China Mobile ¥30"
        [menu] = await flow.on_text(ctx, "/start")
        [again] = await flow.on_text(ctx, PHONE)  # the top-up was left: a number is no longer an account
        assert again.error == "error.unknown"


async def test_a_callback_and_a_poll_racing_finish_the_topup_once(db_url, tmp_path, fake):
    async with open_store(db_url, tmp_path, fake) as (app, notifier, _, _):
        order = await checkout(app, "u10")
        await pay(app, order)
        await settle(app)
        rid = "T" + order.id
        fake.finish(rid, "success")
        outcomes = await asyncio.gather(fake.send_callback(rid), poll_topups(app.shop),
                                        app.shop.supply.finish_topup(TopupResult(rid, "done")))
        assert outcomes[0] == (200, "success")
        await settle(app)
        assert await order_status(app, order.id) == "delivered"
        assert len(notifier.notices_to("u10", "topup.done")) == 1


async def test_mount_callbacks_serves_the_route_run_py_starts(sqlite_url, tmp_path, fake):
    """What run.py does: mount the callbacks on its HttpServer, start it when a supplier has a callback_url."""
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, _, _):
        server = HttpServer("127.0.0.1", 0)
        assert mount_callbacks(server, app.shop, app.settings) is True
        await server.start()
        try:
            order = await checkout(app, "u11")
            await pay(app, order)
            await settle(app)
            rid = "T" + order.id
            fake.finish(rid, "success")
            url = f"http://127.0.0.1:{server.port}/supplier/up/callback"
            assert await fake.send_callback(rid, url) == (200, "success")
            async with aiohttp.ClientSession() as s, s.post(url.replace("/up/", "/nobody/"), data={}) as r:
                assert r.status == 404
            await settle(app)
            assert await order_status(app, order.id) == "delivered"
        finally:
            await server.stop()


async def test_a_topup_the_supplier_never_finishes_is_reported_to_the_merchants_once_and_not_refunded(
        sqlite_url, tmp_path, fake):
    class Alerts:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict]] = []

        async def alert(self, key: str, params: dict) -> None:
            self.sent.append((key, params))

    clock = FakeClock()
    async with open_store(sqlite_url, tmp_path, fake, clock=clock) as (app, notifier, gateway, _):
        order = await checkout(app, "u9")
        await pay(app, order)
        await settle(app)
        alerts = Alerts()
        jobs = store_jobs(app.shop, SqlJobStore(app.db), alerts, JobsConfig(topup_stuck=timedelta(minutes=60)))
        clock.advance(minutes=30)
        assert await jobs.poll_topups() == "0 top-ups finished" and alerts.sent == []
        clock.advance(minutes=31)
        assert await jobs.poll_topups() == "0 top-ups finished, 1 stuck (merchants told)"
        assert alerts.sent == [("alert.topup_stuck", {"order": order.id, "supplier": "up", "minutes": 61})]
        clock.advance(minutes=30)
        assert await jobs.poll_topups() == "0 top-ups finished"  # told once, not every minute
        assert await order_status(app, order.id) == "pending" and gateway.refunds == []
        fake.finish("T" + order.id, "success")  # the supplier finishes after all: the buyer gets it
        assert await jobs.poll_topups() == "1 top-ups finished"
        await settle(app)
        assert await order_status(app, order.id) == "delivered"


async def test_a_callback_signed_by_another_supplier_cannot_finish_this_supplier_s_topup(
        db_url, tmp_path, fake, caplog):
    """Another configured supplier (`evil`) signs a 'failed' result for our supplier's top-up with its own secret and
    posts it to its own callback URL: the signature is good, the request is not its."""
    evil = await FakeSupplier(app_key="evil-1", secret="evil-secret").start()
    try:
        async with open_store(db_url, tmp_path, fake, others={"evil": evil.config()}) as (app, notifier, gateway,
                                                                                          callback):
            order = await checkout(app, "u12")
            await pay(app, order)
            await settle(app)
            rid = "T" + order.id
            # when evil posts a signed result for up's request to /supplier/evil/callback
            evil_url = callback.replace("/supplier/up/", "/supplier/evil/")
            caplog.clear()
            answer = await evil.send_callback(rid, evil_url, status="failed")
            # then it is answered like an unknown request, nothing changes, and the log says why at WARNING
            assert answer == (200, "success")
            unknown = await evil.send_callback("T26010100000000", evil_url, status="failed")
            assert unknown == answer
            await settle(app)
            assert await order_status(app, order.id) == "pending" and gateway.refunds == []
            assert any(r.levelname == "WARNING" and rid in r.getMessage() and "evil" in r.getMessage()
                       for r in caplog.records)
            # and the supplier the request went to still finishes it
            fake.finish(rid, "success")
            assert await fake.send_callback(rid) == (200, "success")
            await settle(app)
            assert await order_status(app, order.id) == "delivered"
    finally:
        await evil.stop()


async def test_a_stale_or_undated_callback_is_refused_and_a_fresh_one_is_taken(sqlite_url, tmp_path, fake):
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, gateway, callback):
        order = await checkout(app, "u13")
        await pay(app, order)
        await settle(app)
        rid = "T" + order.id
        fake.finish(rid, "failed")
        # given a genuine, signed callback captured 301 seconds ago (or one without a timestamp)
        for stale in (int(time.time()) - 301, int(time.time()) + 301, ""):
            # when it is played back, then it is refused and nothing changes
            assert await fake.send_callback(rid, timestamp=stale) == (403, "fail")
        await settle(app)
        assert await order_status(app, order.id) == "pending" and gateway.refunds == []
        # a fresh one (milliseconds are read as such) is taken
        assert await fake.send_callback(rid, timestamp=int(time.time() * 1000)) == (200, "success")
        await settle(app)
        assert await order_status(app, order.id) == "refunded"
