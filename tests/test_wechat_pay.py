"""WeChat Pay v2 (Native) end to end: wechatpy's real HTTP client against a local fake pay server, signed notices
posted over HTTP to the store's own aiohttp server, a real SQLite store behind it."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import png
import pytest
import zxingcpp

from app import App
from bots.http import HttpServer
from bots.wechat.pay import NOTIFY_PATH, PROVIDER, SUCCESS_XML, WeChatPayError, WeChatPayGateway, qr_png, reconcile
from config.settings import ConfigError, parse_settings
from core.clock import FakeClock
from core.errors import StoreError
from core.models import Buyer, Order
from jobs.scheduler import build_scheduler
from tests.fake_wechat_pay import FakeWeChatPay, make_cert
from tests.helpers import SKU, RecordingNotifier, import_n, order_status, payments_for, product_id, settle, stock_of

APPID, MCH_ID, API_KEY = "wx0123456789abcdef", "1900000109", "0123456789abcdefghijklmnopqrstuv"
NOTIFY_URL = "https://shop.example.com/wechat/pay/notify"


@dataclass
class Env:
    app: Any
    gateway: WeChatPayGateway
    fake: FakeWeChatPay
    notifier: RecordingNotifier
    clock: FakeClock
    url: str  # the store's notify endpoint
    http: aiohttp.ClientSession

    async def reserve(self, who: str, qty: int = 1, language: str = "zh_CN") -> Order:
        return await self.app.shop.reserve(Buyer("wechat", who), await product_id(self.app), qty, language)

    async def post(self, body: bytes) -> tuple[int, str]:
        async with self.http.post(self.url, data=body, headers={"Content-Type": "text/xml"}) as r:
            return r.status, await r.text()


@asynccontextmanager
async def wechat_store(tmp_path: Path, *, codes: int = 10, tls: bool = False, cert: bool = True,
                       db_url: str | None = None) -> AsyncIterator[Env]:
    server_tls = client = None
    if tls:
        server_tls, client = make_cert(tmp_path, "server"), make_cert(tmp_path, "merchant")
    fake = await FakeWeChatPay(APPID, MCH_ID, API_KEY,
                               tls=(*server_tls, client[0]) if server_tls and client else None).start()
    pay: dict[str, Any] = {"mch_id": MCH_ID, "api_key": API_KEY, "api_base": fake.api_base, "notify_url": NOTIFY_URL}
    if cert:
        pair = client or make_cert(tmp_path, "merchant")
        pay |= {"cert": str(pair[0]), "key": str(pair[1])}
    async with pay_store(tmp_path, db_url, fake, pay, WeChatPayGateway, codes=codes) as store, \
            aiohttp.ClientSession() as http:
        app, gateway, notifier, clock, url = store
        yield Env(app, gateway, fake, notifier, clock, url, http)


@asynccontextmanager
async def pay_store(tmp_path: Path, db_url: str | None, fake: FakeWeChatPay, pay: dict[str, Any], gateway_class: Any,
                    *, codes: int = 10, v3: bool = False) -> AsyncIterator[tuple[Any, Any, RecordingNotifier,
                                                                                  FakeClock, str]]:
    """A store selling SKU with WeChat Pay (`pay`: its wechat.pay settings, `gateway_class` v2 or v3) whose notify
    endpoint is served and named to the fake (where pay_prepay's notices go): (app, gateway, notifier, clock,
    notify URL). The fake is stopped after."""
    settings = parse_settings({
        "database": {"url": db_url or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "wechat": {"appid": APPID, "token": "tok", "secret": "app-secret", "pay": pay},
        "catalog": [{"sku": SKU, "title": {"en": "Game card 10", "zh_CN": "游戏卡 10"}, "price": 1000,
                     "kind": "code", "max_qty": 5}]}, tmp_path, env={})
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    notifier = RecordingNotifier()
    app = await App.open(settings, clock=clock, notifiers={"wechat": notifier})
    gateway = gateway_class(settings, app.shop)
    app.shop.add_gateway(gateway)  # the outbox refunds through it
    server = HttpServer("127.0.0.1", 0)
    server.add_wechat_pay(NOTIFY_PATH, gateway.handle_notify, **({"v3": True} if v3 else {}))
    await server.start()
    fake.notify_target = f"http://127.0.0.1:{server.port}{NOTIFY_PATH}"
    try:
        if codes:
            await import_n(app, codes)
        yield app, gateway, notifier, clock, fake.notify_target
    finally:
        await gateway.close()
        await server.stop()
        await app.close()
        await fake.stop()


def read_qr(data: bytes) -> str:
    """Decode a QR code PNG: pypng reads the pixels, zxing-cpp reads the code."""
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes, depth = info["planes"], info["bitdepth"]
    gray = bytearray()
    for row in rows:
        values = list(row)[::planes]  # the first channel of each pixel
        gray += bytes(255 if v else 0 for v in values) if depth == 1 else bytes(values)
    found = zxingcpp.read_barcodes(memoryview(bytes(gray)).cast("B", (height, width)))
    assert len(found) == 1
    return found[0].text


def fails(status_text: tuple[int, str], reason: str) -> None:
    status, text = status_text
    assert status >= 400 and "<return_code><![CDATA[FAIL]]></return_code>" in text and reason in text, status_text


async def unchanged(env: Env, order: Order) -> None:
    assert await order_status(env.app, order.id) == "held"
    assert await payments_for(env.app, order.id) == []
    await settle(env.app)
    assert env.notifier.deliveries == []


# -- unified order and QR ----------------------------------------------------------------------------------

async def test_unified_order_is_native_for_the_order_and_its_code_url_becomes_a_qr_png(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice", qty=2)
        url = await env.gateway.create_native(order, "游戏卡 10 × 2")
        (req,) = env.fake.requests_to("/pay/unifiedorder")
        assert req["trade_type"] == "NATIVE" and req["out_trade_no"] == order.id
        assert req["total_fee"] == "2000" == str(order.amount) and req["fee_type"] == "CNY"
        assert req["spbill_create_ip"] == "127.0.0.1" and req["notify_url"] == NOTIFY_URL
        assert req["product_id"] == str(order.product_id) and req["body"] == "游戏卡 10 × 2"
        assert req["appid"] == APPID and req["mch_id"] == MCH_ID
        # The trade lapses with the hold (Beijing time).
        assert req["time_expire"] == order.expires_at.astimezone(timezone(timedelta(hours=8))).strftime("%Y%m%d%H%M%S")
        assert url == env.fake.trades[order.id].code_url and url.startswith("weixin://wxpay/bizpayurl?pr=")

        # Twice for the same order: the same code, and no second trade (concurrent asks share one request).
        assert await asyncio.gather(*(env.gateway.create_native(order, "游戏卡 10 × 2") for _ in range(3))) == [url] * 3
        assert len(env.fake.requests_to("/pay/unifiedorder")) == 1
        # After a restart (no cache) the request is the same, so WeChat answers with the same trade.
        again = WeChatPayGateway(env.app.settings, env.app.shop)
        try:
            assert await again.create_native(order, "游戏卡 10 × 2") == url
            # A paid trade gets no new code.
            env.fake.mark_paid(order.id)
            again._codes.clear()  # noqa: SLF001 - as after another restart
            with pytest.raises(StoreError) as err:
                await again.create_native(order, "游戏卡 10 × 2")
            assert err.value.params["status"] == "orderpaid"
        finally:
            await again.close()

        data = qr_png(url)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height, _, _ = png.Reader(bytes=data).read()
        assert width == height and 200 <= width <= 600
        assert read_qr(data) == url


async def test_unified_order_errors_surface_as_wechat_pay_errors(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        env.fake.api_key = "another-key-the-server-has"  # the server cannot verify us (wrong api_key)
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.create_native(order, "card")
        assert err.value.code == "FAIL"
        env.fake.api_key = API_KEY
        await env.gateway.create_native(order, "card")
        # Another process (or this one before a restart) made the trade with another title: WeChat refuses a
        # second trade for the order; it was not paid, so this is an error for the caller.
        other = WeChatPayGateway(env.app.settings, env.app.shop)
        try:
            with pytest.raises(WeChatPayError) as err:
                await other.create_native(order, "another title")
            assert err.value.code == "OUT_TRADE_NO_USED"
            assert env.fake.requests_to("/pay/orderquery")[-1]["out_trade_no"] == order.id
        finally:
            await other.close()
        env.clock.advance(minutes=16)  # the hold lapsed: no code for it
        with pytest.raises(StoreError):
            await env.gateway.create_native(order, "card")


# -- JSAPI (paying inside WeChat) --------------------------------------------------------------------------

async def test_jsapi_parameters_are_md5_signed_with_the_api_key_and_the_buyer_pays_them(
        tmp_path: Path, db_url: str) -> None:
    async with wechat_store(tmp_path, db_url=db_url) as env:
        order = await env.reserve("o-alice")
        params = await env.gateway.create_jsapi(order, "游戏卡 10", "o-alice")
        (req,) = env.fake.requests_to("/pay/unifiedorder")
        assert req["trade_type"] == "JSAPI" and req["openid"] == "o-alice" and req["out_trade_no"] == order.id
        assert req["total_fee"] == "1000" and req["notify_url"] == NOTIFY_URL and "product_id" not in req
        prepay_id = env.fake.trades[order.id].prepay_id
        assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert (params["appId"], params["package"], params["signType"]) == (APPID, f"prepay_id={prepay_id}", "MD5")
        assert params["timeStamp"].isdigit() and abs(int(params["timeStamp"]) - time.time()) < 60
        # WeChat Pay v2: MD5 over the five fields, sorted, with key=<API key>, upper-case hex.
        text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "paySign") + f"&key={API_KEY}"
        assert params["paySign"] == hashlib.md5(text.encode()).hexdigest().upper()
        again = await env.gateway.create_jsapi(order, "游戏卡 10", "o-alice")  # cached prepay_id, signed afresh
        assert again["package"] == params["package"] and len(env.fake.requests_to("/pay/unifiedorder")) == 1

        with pytest.raises(ValueError, match="签名"):
            await env.fake.pay_prepay(prepay_id, "o-alice", params=params | {"timeStamp": "1"})
        with pytest.raises(ValueError, match="another WeChat user"):
            await env.fake.pay_prepay(prepay_id, "o-mallory", params=params)
        await unchanged(env, order)
        txn = await env.fake.pay_prepay(prepay_id, "o-alice", params=params)
        assert env.fake.notified == [(200, SUCCESS_XML.decode())]
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"
        (payment,) = await payments_for(env.app, order.id)
        assert payment.provider_txn_id == txn and payment.payer == "wechat:o-alice"
        assert len(env.notifier.delivered_to("o-alice")) == 1


async def test_jsapi_needs_the_openid_and_a_payable_order(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.create_jsapi(order, "card", "")
        assert err.value.code == "PARAM_ERROR" and env.fake.requests_to("/pay/unifiedorder") == []
        # The pay server refuses a JSAPI order without the buyer's openid, as WeChat does.
        with pytest.raises(WeChatPayError) as err:
            await env.gateway._unified(order, "card", "127.0.0.1", trade_type="JSAPI")  # noqa: SLF001
        assert "openid" in str(err.value)
        # A QR code was made for the order first: WeChat has its trade as NATIVE, so no JSAPI trade for it.
        await env.gateway.create_native(order, "card")
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.create_jsapi(order, "card", "o-alice")
        assert err.value.code == "OUT_TRADE_NO_USED"
        env.clock.advance(minutes=16)
        with pytest.raises(StoreError):
            await env.gateway.create_jsapi(order, "card", "o-alice")


# -- notices -----------------------------------------------------------------------------------------------

async def test_signed_notice_pays_the_order_once_and_delivers_once(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        assert await env.post(env.fake.notify_xml(order.id)) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"
        (payment,) = await payments_for(env.app, order.id)
        assert (payment.provider, payment.provider_txn_id, payment.amount, payment.currency) == (
            PROVIDER, env.fake.trades[order.id].transaction_id, 1000, "CNY")
        (delivery,) = env.notifier.delivered_to("o-alice")
        assert delivery.order.id == order.id and len(delivery.codes) == 1


async def test_repeated_and_concurrent_notices_pay_once_and_all_get_success(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        first, second = await env.reserve("o-alice"), await env.reserve("o-bob")
        for o in (first, second):
            await env.gateway.create_native(o, "card")
        notice = env.fake.notify_xml(first.id)
        answers = [await env.post(notice) for _ in range(5)]
        notice = env.fake.notify_xml(second.id)
        answers += await asyncio.gather(*(env.post(notice) for _ in range(10)))
        assert answers == [(200, SUCCESS_XML.decode())] * 15
        await settle(env.app)
        for o in (first, second):
            assert len(await payments_for(env.app, o.id)) == 1
            assert await order_status(env.app, o.id) == "delivered"
        assert len(env.notifier.delivered_to("o-alice")) == 1 and len(env.notifier.delivered_to("o-bob")) == 1
        assert await stock_of(env.app) == (8, 0, 2)


async def test_badly_signed_or_tampered_notice_fails_and_changes_nothing(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        fails(await env.post(env.fake.notify_xml(order.id, api_key="not-the-merchant-key")), "bad signature")
        tampered = env.fake.notify_xml(order.id).replace(b"<total_fee>1000<", b"<total_fee>1<")
        fails(await env.post(tampered), "bad signature")
        fails(await env.post(b"<xml><return_code>SUCCESS</return_code></xml>"), "bad signature")
        fails(await env.post(b"not xml at all"), "malformed notice")
        await unchanged(env, order)


@pytest.mark.parametrize("wrong", [{"appid": "wx-another-app"}, {"mch_id": "1900000999"}])
async def test_signed_notice_for_another_merchant_fails_and_changes_nothing(
        tmp_path: Path, wrong: dict[str, Any]) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        fails(await env.post(env.fake.notify_xml(order.id, **wrong)), "appid or mch_id")
        await unchanged(env, order)


async def test_signed_notice_for_another_amount_is_recorded_and_refunded_never_delivered(tmp_path: Path) -> None:
    """WeChat signed it, so that money moved: the core's one payment entry records it and gives it back
    (the same decision reconciliation's orderquery would reach), and the order stays unpaid."""
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        assert await env.post(env.fake.notify_xml(order.id, total_fee=1)) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        (payment,) = await payments_for(env.app, order.id)
        assert payment.amount == 1
        assert await order_status(env.app, order.id) == "held" and env.notifier.deliveries == []
        assert payment.status == "refund_pending"
        asked = env.fake.requests_to("/secapi/pay/refund")
        assert [(r["transaction_id"], r["refund_fee"]) for r in asked] == [(payment.provider_txn_id, "1")]


async def test_notice_of_a_failed_payment_is_acknowledged_and_records_nothing(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        assert await env.post(env.fake.notify_xml(order.id, result_code="FAIL")) == (200, SUCCESS_XML.decode())
        await unchanged(env, order)


async def test_signed_notice_for_an_unknown_order_is_recorded_for_a_refund(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        body = env.fake.notify_xml("261125NOSUCHORD", total_fee=1000, transaction_id="4200000000000000000000009999")
        assert await env.post(body) == (200, SUCCESS_XML.decode())
        assert await env.post(body) == (200, SUCCESS_XML.decode())  # WeChat's repeat: recorded once
        async with env.app.db.uow() as uow:
            found = await uow.payments.existing([(PROVIDER, "4200000000000000000000009999")])
        (payment,) = found.values()
        assert payment.order_id is None and payment.status in ("refund_pending", "refunded")
        assert payment.payer == "wechat:o-payer"


async def test_doctype_entity_and_non_utf8_bodies_are_refused(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        good = env.fake.notify_xml(order.id)
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP SECRET")
        xxe = (b'<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY x SYSTEM "file://' + str(secret).encode()
               + b'">]>\n' + good.replace(b"<xml>", b"<xml><attach>&x;</attach>", 1))
        fails(await env.post(xxe), "DOCTYPE")
        laughs = b'<!doctype xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>' + good
        fails(await env.post(laughs), "DOCTYPE")
        fails(await env.post(b"<!ENTITY x 'y'>" + good), "DOCTYPE")
        # The same DOCTYPE in UTF-16 would slip past a byte search: only UTF-8 is taken.
        fails(await env.post(xxe.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
                             .encode("utf-16")), "UTF-8")
        await unchanged(env, order)


async def test_oversized_bodies_are_refused_unread(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        good = env.fake.notify_xml(order.id)
        padded = good.replace(b"</xml>", b"<attach>" + b"a" * 70_000 + b"</attach></xml>")
        status, text = await env.post(padded)
        assert status == 413 and "FAIL" in text

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while reading
            for _ in range(20):
                yield b"<a>" + b"x" * 8000 + b"</a>"

        async with env.http.post(env.url, data=chunks()) as r:
            assert r.status == 413
        assert (await env.gateway.handle_notify(padded))[0] == 413  # and the gateway itself checks too
        await unchanged(env, order)


# -- reconciliation ----------------------------------------------------------------------------------------

async def test_reconcile_records_a_payment_whose_notice_never_came_once(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        paid, unpaid = await env.reserve("o-alice"), await env.reserve("o-bob")
        never_ordered = await env.reserve("o-carol")  # no unified order: WeChat does not know it
        for o in (paid, unpaid):
            await env.gateway.create_native(o, "card")
        txn = env.fake.mark_paid(paid.id)  # the buyer paid; the notice is lost
        assert await reconcile(env.app.shop, env.gateway) == 0  # too fresh: the notice gets its minute
        assert env.fake.requests_to("/pay/orderquery") == []

        env.clock.advance(minutes=2)
        assert await reconcile(env.app.shop, env.gateway) == 1
        asked = {r["out_trade_no"] for r in env.fake.requests_to("/pay/orderquery")}
        assert asked == {paid.id, unpaid.id, never_ordered.id}
        await settle(env.app)
        assert [d.order.id for _, d in env.notifier.deliveries] == [paid.id]
        (payment,) = await payments_for(env.app, paid.id)
        assert payment.provider_txn_id == txn

        assert await reconcile(env.app.shop, env.gateway) == 0  # delivered now: not asked again
        assert paid.id not in {r["out_trade_no"] for r in env.fake.requests_to("/pay/orderquery")[3:]}
        # The late notice is a repeat: SUCCESS, nothing more.
        assert await env.post(env.fake.notify_xml(paid.id)) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        assert len(env.notifier.deliveries) == 1 and len(await payments_for(env.app, paid.id)) == 1

        # Lapsed and unpaid past the trade's expiry: asked once more, then never again.
        env.clock.advance(minutes=30)
        await env.app.shop.expire_holds()
        await reconcile(env.app.shop, env.gateway)
        before = len(env.fake.requests_to("/pay/orderquery"))
        assert await reconcile(env.app.shop, env.gateway) == 0
        assert len(env.fake.requests_to("/pay/orderquery")) == before


async def test_scheduler_has_the_reconcile_job_only_with_a_gateway(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=0) as env:
        assert env.app.shop and build_scheduler(env.app.shop).get_job("reconcile-wechat-pay") is None
        job = build_scheduler(env.app.shop, env.gateway).get_job("reconcile-wechat-pay")
        assert job is not None and job.args == (env.gateway,)


# -- refunds -----------------------------------------------------------------------------------------------

async def test_paid_notice_for_a_lapsed_order_whose_stock_is_gone_is_refunded_with_the_merchant_cert(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "server.pem"))  # trust the fake's self-signed cert
    async with wechat_store(tmp_path, codes=1, tls=True) as env:
        assert env.fake.api_base.startswith("https://")
        late = await env.reserve("o-alice", language="zh_CN")
        await env.gateway.create_native(late, "card")
        env.clock.advance(minutes=16)
        assert [o.id for o in await env.app.shop.expire_holds()] == [late.id]
        other = await env.reserve("o-bob")  # takes the only code
        txn = env.fake.mark_paid(late.id)  # Alice paid just before the trade lapsed; the notice comes late

        assert await env.post(env.fake.notify_xml(late.id)) == (200, SUCCESS_XML.decode())
        await settle(env.app)
        (refund,) = env.fake.refunds()
        assert refund["out_refund_no"] == f"R{txn}" and refund["transaction_id"] == txn
        assert refund["out_trade_no"] == late.id and refund["refund_fee"] == refund["total_fee"] == "1000"
        assert refund["refund_desc"] == "订单无法完成：商品已售罄"  # in the buyer's language
        assert await order_status(env.app, late.id) == "refunded"
        (payment,) = await payments_for(env.app, late.id)
        assert payment.status == "refunded"
        assert [n.key for n in env.notifier.notices_to("o-alice")] == ["refund.done"]
        assert env.notifier.deliveries == [] and await order_status(env.app, other.id) == "held"

        # Refunding the same payment again finds it done at WeChat (refundquery by out_refund_no): no new refund.
        assert await env.gateway.refund(payment, "stock_gone") is True
        assert len(env.fake.refunds()) == 1 and len(env.fake.requests_to("/secapi/pay/refund")) == 1


async def test_refund_that_wechat_refuses_is_retried_by_the_outbox(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=1) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        env.clock.advance(minutes=16)
        await env.app.shop.expire_holds()
        await env.reserve("o-bob")
        env.fake.refund_errors.append("NOTENOUGH")  # the merchant account is short of funds for now
        assert (await env.post(env.fake.notify_xml(order.id)))[0] == 200
        await settle(env.app)
        assert env.fake.refunds() == [] and await order_status(env.app, order.id) == "refunding"
        env.clock.advance(minutes=5)  # the outbox's backoff
        await settle(env.app)
        assert len(env.fake.refunds()) == 1 and await order_status(env.app, order.id) == "refunded"


async def test_refund_without_the_merchant_certificate_waits_in_the_outbox(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=1, cert=False) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        env.clock.advance(minutes=16)
        await env.app.shop.expire_holds()
        await env.reserve("o-bob")
        assert (await env.post(env.fake.notify_xml(order.id)))[0] == 200
        await settle(env.app)
        assert env.fake.requests_to("/secapi/pay/refund") == []
        async with env.app.db.uow() as uow:
            (payment,) = await uow.payments.for_order(order.id)
        assert payment.status == "refund_pending" and await order_status(env.app, order.id) == "refunding"


# -- configuration and secrets -----------------------------------------------------------------------------

async def test_missing_or_half_configured_merchant_certificate_stops_the_start(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=0) as env:
        pay = env.app.settings.wechat.pay
        for change, key in (({"cert": str(tmp_path / "nope.pem")}, "wechat.pay.cert"), ({"key": ""}, "wechat.pay.key")):
            settings = env.app.settings.model_copy(update={"wechat": env.app.settings.wechat.model_copy(
                update={"pay": pay.model_copy(update=change)})})
            with pytest.raises(ConfigError) as err:
                WeChatPayGateway(settings, env.app.shop)
            assert key in str(err.value)


async def test_the_api_key_never_reaches_the_log_even_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "server.pem"))
    caplog.set_level(logging.DEBUG)
    async with wechat_store(tmp_path, codes=1, tls=True) as env:
        order = await env.reserve("o-alice")
        await env.gateway.create_native(order, "card")
        env.clock.advance(minutes=16)
        await env.app.shop.expire_holds()
        await env.reserve("o-bob")
        assert (await env.post(env.fake.notify_xml(order.id)))[0] == 200
        await settle(env.app)
        assert len(env.fake.refunds()) == 1
    assert "Request to WeChat API" in caplog.text  # wechatpy did log at DEBUG ...
    assert API_KEY not in caplog.text  # ... but never the key it signs with


async def test_reconcile_asks_about_every_open_order_in_turn_when_there_are_more_than_a_batch(tmp_path: Path) -> None:
    async with wechat_store(tmp_path) as env:
        orders = [await env.reserve(f"o-{i}") for i in range(3)]
        env.clock.advance(minutes=2)
        await reconcile(env.app.shop, env.gateway, batch=2)
        await reconcile(env.app.shop, env.gateway, batch=2)
        asked = [r["out_trade_no"] for r in env.fake.requests_to("/pay/orderquery")]
        left_out = {o.id for o in orders} - set(asked[:2])
        assert len(asked) == 4 and len(left_out) == 1
        assert left_out < set(asked[2:])  # the one left out the first time is asked the second time


async def test_a_storm_of_notices_with_repeats_pays_and_delivers_each_order_once(tmp_path: Path) -> None:
    async with wechat_store(tmp_path, codes=40) as env:
        orders = [await env.reserve(f"o-{i}") for i in range(40)]
        for o in orders:
            await env.gateway.create_native(o, "card")
        notices = [env.fake.notify_xml(o.id) for o in orders]
        answers = await asyncio.gather(*(env.post(n) for n in notices * 3))  # every notice three times at once
        assert answers == [(200, SUCCESS_XML.decode())] * 120
        await settle(env.app)
        assert sorted(d.order.id for _, d in env.notifier.deliveries) == sorted(o.id for o in orders)
        assert len(set(env.notifier.codes())) == 40
        for o in orders:
            assert len(await payments_for(env.app, o.id)) == 1
        assert await stock_of(env.app) == (0, 0, 40)
