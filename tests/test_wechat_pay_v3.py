"""WeChat Pay API v3 end to end: wechatpayv3's real HTTP client (RSA-signed requests, platform signatures
checked) against the local fake pay server, AES-256-GCM notices posted by the fake over HTTP to the store's own
aiohttp server, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from bots.wechat.pay import CHINA, PROVIDER, WeChatPayError
from bots.wechat.pay_v3 import WeChatPayV3Gateway
from config.settings import ConfigError, parse_settings
from core.clock import FakeClock
from core.errors import StoreError
from core.models import Buyer, Order
from tests.fake_wechat_pay import FakeWeChatPay, make_v3_merchant
from tests.helpers import RecordingNotifier, order_status, payments_for, product_id, settle, stock_of
from tests.test_wechat_pay import pay_store

APPID, MCH_ID, APIV3_KEY = "wx0123456789abcdef", "1900000109", "v3v3v3v3v3v3v3v3v3v3v3v3v3v3v3v3"
NOTIFY_URL = "https://shop.example.com/wechat/pay/notify"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092026120500000000000000"


@dataclass
class V3:
    app: Any
    gateway: WeChatPayV3Gateway
    fake: FakeWeChatPay
    notifier: RecordingNotifier
    clock: FakeClock
    merchant_key: rsa.RSAPublicKey

    async def reserve(self, who: str, qty: int = 1) -> Order:
        return await self.app.shop.reserve(Buyer("wechat", who), await product_id(self.app), qty, "zh_CN")

    async def native_paid(self, who: str = "o-alice") -> Order:
        order = await self.reserve(who)
        await self.gateway.create_native(order, "游戏卡 10")
        return order


def v3_pay_settings(fake: FakeWeChatPay, tmp_path: Path, *, public_key: bool = False) -> dict[str, Any]:
    """wechat.pay for API v3 against the fake: a fresh merchant key the fake trusts; the platform public key
    configured (public-key mode) or platform certificates downloaded."""
    key_path, serial, public = make_v3_merchant(tmp_path)
    fake.merchant_keys[serial] = public
    pay: dict[str, Any] = {"version": 3, "mch_id": MCH_ID, "apiv3_key": APIV3_KEY, "cert_serial_no": serial,
                           "key": str(key_path), "api_base": fake.api_base, "notify_url": NOTIFY_URL}
    if public_key:
        (tmp_path / "pub_key.pem").write_text(fake.platform_public_key_pem)
        pay |= {"platform_public_key": str(tmp_path / "pub_key.pem"), "platform_public_key_id": PUBLIC_KEY_ID}
    return pay


@asynccontextmanager
async def v3_store(tmp_path: Path, db_url: str | None = None, *, codes: int = 10, public_key: bool = False
                   ) -> AsyncIterator[V3]:
    fake = await FakeWeChatPay(APPID, MCH_ID, apiv3_key=APIV3_KEY,
                               public_key_id=PUBLIC_KEY_ID if public_key else "").start()
    pay = v3_pay_settings(fake, tmp_path, public_key=public_key)
    async with pay_store(tmp_path, db_url, fake, pay, WeChatPayV3Gateway, codes=codes, v3=True) as (
            app, gateway, notifier, clock, _url):
        yield V3(app, gateway, fake, notifier, clock, next(iter(fake.merchant_keys.values())))


def refused(answer: tuple[int, str], reason: str) -> None:
    status, text = answer
    assert status >= 400 and json.loads(text) == {"code": "FAIL", "message": reason}, answer


async def unchanged(env: V3, order: Order) -> None:
    assert await order_status(env.app, order.id) == "held"
    assert await payments_for(env.app, order.id) == []
    await settle(env.app)
    assert env.notifier.deliveries == []


# -- Native ------------------------------------------------------------------------------------------------

async def test_v3_native_order_then_its_notice_delivers_once_even_when_replayed(tmp_path: Path, db_url: str) -> None:
    async with v3_store(tmp_path, db_url) as env:
        order = await env.reserve("o-alice", qty=2)
        urls = await asyncio.gather(*(env.gateway.create_native(order, "游戏卡 10 × 2") for _ in range(3)))
        (req,) = env.fake.requests_to("/v3/pay/transactions/native")  # one request for concurrent asks
        assert urls == [env.fake.trades[order.id].code_url] * 3
        assert req["out_trade_no"] == order.id and req["amount"] == {"total": 2000, "currency": "CNY"}
        assert req["appid"] == APPID and req["mchid"] == MCH_ID and req["notify_url"] == NOTIFY_URL
        assert req["description"] == "游戏卡 10 × 2"
        assert req["time_expire"] == order.expires_at.astimezone(CHINA).isoformat(timespec="seconds")  # the hold's end
        assert len(env.fake.requests_to("/v3/certificates")) == 1  # the platform certificate, fetched once

        headers, body = env.fake.v3_notice(order.id, openid="o-alice")
        assert await env.fake.send(headers, body) == (204, "")
        assert await env.fake.send(headers, body) == (204, "")  # a replay: taken, nothing more
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"
        (payment,) = await payments_for(env.app, order.id)
        assert (payment.provider, payment.provider_txn_id, payment.amount, payment.currency, payment.payer) == (
            PROVIDER, env.fake.trades[order.id].transaction_id, 2000, "CNY", "wechat:o-alice")
        (delivery,) = env.notifier.delivered_to("o-alice")
        assert len(delivery.codes) == 2
        # A paid trade gets no new code (after a restart: nothing cached).
        again = WeChatPayV3Gateway(env.app.settings, env.app.shop)
        other = await env.reserve("o-bob")
        await again.create_native(other, "card")
        env.fake.mark_paid(other.id)
        again._codes.clear()  # noqa: SLF001 - as after another restart
        with pytest.raises(StoreError) as err:
            await again.create_native(other, "card")
        assert err.value.params["status"] == "orderpaid"


async def test_v3_platform_public_key_mode_needs_no_certificate_download(tmp_path: Path) -> None:
    async with v3_store(tmp_path, public_key=True) as env:
        order = await env.native_paid()
        assert env.fake.requests_to("/v3/certificates") == []
        headers, body = env.fake.v3_notice(order.id)
        for serial in ("0123ABCD", "0123ABCE", "0123ABCF"):  # forged serials: one look for certificates, not three
            refused(await env.fake.send(headers | {"Wechatpay-Serial": serial}, body), "bad signature")
        assert len(env.fake.requests_to("/v3/certificates")) == 1
        assert await env.fake.send(headers, body) == (204, "")
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"


async def test_v3_answers_not_signed_by_the_platform_and_requests_the_server_cannot_verify_are_errors(
        tmp_path: Path) -> None:
    async with v3_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        genuine = env.fake.platform_key
        env.fake.platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # a man in the middle
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.create_native(order, "card")
        assert err.value.code == "BAD_SIGNATURE"
        env.fake.platform_key = genuine
        env.fake.merchant_keys = {k: rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
                                  for k in env.fake.merchant_keys}  # the server knows another merchant key
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.create_native(order, "card")
        assert err.value.code == "SIGN_ERROR"


# -- JSAPI -------------------------------------------------------------------------------------------------

async def test_v3_jsapi_parameters_are_rsa_signed_with_the_merchant_key_and_the_buyer_pays_them(
        tmp_path: Path, db_url: str) -> None:
    async with v3_store(tmp_path, db_url) as env:
        order = await env.reserve("o-alice")
        params = await env.gateway.create_jsapi(order, "游戏卡 10", "o-alice")
        (req,) = env.fake.requests_to("/v3/pay/transactions/jsapi")
        assert req["payer"] == {"openid": "o-alice"} and req["amount"]["total"] == 1000
        prepay_id = env.fake.trades[order.id].prepay_id
        assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert params["appId"] == APPID and params["package"] == f"prepay_id={prepay_id}"
        assert params["signType"] == "RSA" and params["timeStamp"].isdigit()
        message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
        env.merchant_key.verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())
        forged = params | {"package": "prepay_id=wx-another"}
        with pytest.raises(InvalidSignature):
            env.merchant_key.verify(base64.b64decode(forged["paySign"]),
                                    "".join(forged[k] + "\n" for k in ("appId", "timeStamp", "nonceStr",
                                                                       "package")).encode(),
                                    padding.PKCS1v15(), hashes.SHA256())
        # Asked again: the same prepay_id (cached), freshly signed; no second request.
        again = await env.gateway.create_jsapi(order, "游戏卡 10", "o-alice")
        assert again["package"] == params["package"] and len(env.fake.requests_to("/v3/pay/transactions/jsapi")) == 1

        with pytest.raises(ValueError, match="another WeChat user"):
            await env.fake.pay_prepay(prepay_id, "o-mallory", params=params)
        with pytest.raises(ValueError, match="签名"):
            await env.fake.pay_prepay(prepay_id, "o-alice", params=params | {"nonceStr": "changed"})
        await unchanged(env, order)

        txn = await env.fake.pay_prepay(prepay_id, "o-alice", params=params)
        assert env.fake.notified == [(204, "")]
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"
        (payment,) = await payments_for(env.app, order.id)
        assert payment.provider_txn_id == txn and payment.payer == "wechat:o-alice"
        assert len(env.notifier.delivered_to("o-alice")) == 1


async def test_v3_jsapi_for_an_order_no_longer_held_is_not_payable(tmp_path: Path) -> None:
    async with v3_store(tmp_path) as env:
        order = await env.reserve("o-alice")
        env.clock.advance(minutes=16)
        with pytest.raises(StoreError):
            await env.gateway.create_jsapi(order, "card", "o-alice")
        assert env.fake.requests_to("/v3/pay/transactions/jsapi") == []


# -- refused notices ---------------------------------------------------------------------------------------

def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


BAD_NOTICES: dict[str, tuple[dict[str, Any], str]] = {
    "signed by another key": ({"sign_key": "other"}, "bad signature"),
    "tampered ciphertext": ({"tamper": True}, "bad resource"),
    "encrypted under another APIv3 key": ({"apiv3_key": "x" * 32}, "bad resource"),
    "another mchid": ({"mchid": "1900000999"}, "wrong appid or mchid"),
    "another appid": ({"appid": "wx-another-app"}, "wrong appid or mchid"),
    "an old timestamp (a replay)": ({"timestamp": 1_700_000_000}, "stale timestamp"),
}


@pytest.mark.parametrize("kind", list(BAD_NOTICES))
async def test_v3_forged_or_foreign_notices_are_refused_and_change_nothing(tmp_path: Path, kind: str) -> None:
    change, reason = BAD_NOTICES[kind]
    async with v3_store(tmp_path) as env:
        order = await env.native_paid()
        if change.get("sign_key") == "other":
            change = {"sign_key": other_key()}
        refused(await env.fake.send(*env.fake.v3_notice(order.id, **change)), reason)
        await unchanged(env, order)


async def test_v3_notices_without_headers_or_json_or_in_v2_form_are_refused(tmp_path: Path) -> None:
    async with v3_store(tmp_path) as env:
        order = await env.native_paid()
        headers, body = env.fake.v3_notice(order.id)
        refused(await env.fake.send({"Content-Type": "application/json"}, body), "bad signature")
        for serial in ("0123ABCD", "0123ABCE", "0123ABCF"):  # serials nobody has: no download storm
            refused(await env.fake.send(headers | {"Wechatpay-Serial": serial}, body), "bad signature")
        assert len(env.fake.requests_to("/v3/certificates")) == 1  # fetched a moment ago: not again
        refused(await env.fake.send(headers, body.replace(b'"TRANSACTION.SUCCESS"', b'"REFUND.SUCCESS"')),
                "bad signature")
        refused(await env.fake.send(headers, b"not json"), "malformed notice")
        refused(await env.fake.send({"Content-Type": "text/xml"}, b"<xml><return_code>SUCCESS</return_code></xml>"),
                "this store takes WeChat Pay API v3 notices")
        status, _ = await env.fake.send(headers, b"{" + b" " * 70_000 + b"}")
        assert status == 413
        await unchanged(env, order)


async def test_v3_signed_notice_for_another_amount_is_never_delivered_and_is_refunded(tmp_path: Path) -> None:
    """WeChat signed it, so that money moved: the core records it and gives it back; the order stays unpaid."""
    async with v3_store(tmp_path) as env:
        order = await env.native_paid()
        assert await env.fake.send(*env.fake.v3_notice(order.id, total=1)) == (204, "")
        await settle(env.app)
        assert await order_status(env.app, order.id) == "held" and env.notifier.deliveries == []
        (payment,) = await payments_for(env.app, order.id)
        assert payment.amount == 1 and payment.status == "refund_pending"
        asked = env.fake.requests_to("/v3/refund/domestic/refunds")
        assert [(r["transaction_id"], r["amount"]["refund"]) for r in asked] == [(payment.provider_txn_id, 1)]


# -- reconciliation ----------------------------------------------------------------------------------------

async def test_v3_a_notice_that_never_comes_is_found_by_reconcile_once(tmp_path: Path, db_url: str) -> None:
    async with v3_store(tmp_path, db_url) as env:
        order = await env.reserve("o-alice")
        params = await env.gateway.create_jsapi(order, "card", "o-alice")
        unpaid = await env.native_paid("o-bob")
        txn = await env.fake.pay_prepay(params["package"].removeprefix("prepay_id="), "o-alice", notify=False)
        assert env.fake.notified == []
        env.clock.advance(minutes=2)
        assert await env.gateway.reconcile() == 1
        asked = {p.rsplit("/", 1)[1] for p, _ in env.fake.requests if p.startswith("/v3/pay/transactions/out-trade")}
        assert asked == {order.id, unpaid.id}
        await settle(env.app)
        assert await order_status(env.app, order.id) == "delivered"
        (payment,) = await payments_for(env.app, order.id)
        assert payment.provider_txn_id == txn
        # The late notice is a repeat.
        assert await env.fake.send(*env.fake.v3_notice(order.id, openid="o-alice")) == (204, "")
        await settle(env.app)
        assert len(env.notifier.deliveries) == 1 and await order_status(env.app, unpaid.id) == "held"


# -- refunds -----------------------------------------------------------------------------------------------

async def lapsed_and_refunding(env: V3) -> tuple[Order, str]:
    """Alice's hold lapses, Bob takes the only code, Alice's payment arrives: a refund for stock_gone."""
    late = await env.native_paid("o-alice")
    env.clock.advance(minutes=16)
    await env.app.shop.expire_holds()
    await env.reserve("o-bob")
    assert await env.fake.send(*env.fake.v3_notice(late.id, openid="o-alice")) == (204, "")
    await settle(env.app)
    return late, env.fake.trades[late.id].transaction_id


async def test_v3_refund_through_the_outbox_settles_on_the_refund_notice_once(tmp_path: Path, db_url: str) -> None:
    async with v3_store(tmp_path, db_url, codes=1) as env:
        env.fake.instant_refunds = False  # accepted now, the money moves later
        late, txn = await lapsed_and_refunding(env)
        (refund,) = env.fake.refunds()
        assert refund["out_refund_no"] == f"R{txn}" and refund["transaction_id"] == txn
        assert refund["refund_fee"] == refund["total_fee"] == "1000" and refund["notify_url"] == NOTIFY_URL
        assert refund["refund_desc"] == "订单无法完成：商品已售罄"  # in the buyer's language
        assert await order_status(env.app, late.id) == "refunding"

        refused(await env.fake.send(*env.fake.v3_refund_notice(f"R{txn}", settle=False, sign_key=other_key())),
                "bad signature")
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunding"

        notice = env.fake.v3_refund_notice(f"R{txn}")
        assert await env.fake.send(*notice) == (204, "")
        assert await env.fake.send(*notice) == (204, "")  # a repeat changes nothing
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunded"
        (payment,) = await payments_for(env.app, late.id)
        assert payment.status == "refunded"
        assert [n.key for n in env.notifier.notices_to("o-alice")] == ["refund.done"]
        assert len(env.fake.requests_to("/v3/refund/domestic/refunds")) == 1
        # Refunding again finds it done by the refund query: no new refund.
        assert await env.gateway.refund(payment, "stock_gone") is True
        assert len(env.fake.refunds()) == 1 and len(env.fake.requests_to("/v3/refund/domestic/refunds")) == 1


async def test_v3_a_refund_whose_notice_never_came_is_found_done_by_the_refund_query(tmp_path: Path) -> None:
    async with v3_store(tmp_path, codes=1) as env:
        env.fake.instant_refunds = False
        late, txn = await lapsed_and_refunding(env)
        env.fake.refund_errors.append("NOT_ENOUGH")  # first: the account is short, the outbox retries
        env.fake.v3_refund_notice(f"R{txn}")  # settles at WeChat; the notice itself is lost
        env.clock.advance(minutes=5)
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunded"
        assert [n.key for n in env.notifier.notices_to("o-alice")] == ["refund.done"]
        assert await stock_of(env.app) == (0, 1, 0)


async def test_v3_a_refund_wechat_reports_abnormal_stays_for_a_person(tmp_path: Path) -> None:
    async with v3_store(tmp_path, codes=1) as env:
        env.fake.instant_refunds = False
        late, txn = await lapsed_and_refunding(env)
        assert await env.fake.send(*env.fake.v3_refund_notice(f"R{txn}", status="ABNORMAL")) == (204, "")
        env.clock.advance(minutes=5)
        await settle(env.app)
        assert await order_status(env.app, late.id) == "refunding"
        (payment,) = await payments_for(env.app, late.id)
        with pytest.raises(WeChatPayError) as err:
            await env.gateway.refund(payment, "stock_gone")
        assert err.value.code == "ABNORMAL"


# -- configuration -----------------------------------------------------------------------------------------

def v3_settings(tmp_path: Path, pay: dict[str, Any]) -> Any:
    return parse_settings({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "wechat": {"appid": APPID, "token": "tok", "secret": "app-secret", "pay": pay}}, tmp_path, env={})


@pytest.mark.parametrize(("drop", "key"), [("apiv3_key", "apiv3_key"), ("cert_serial_no", "cert_serial_no"),
                                           ("key", "key")])
def test_v3_without_its_keys_is_refused_at_start(tmp_path: Path, drop: str, key: str) -> None:
    pay = {"version": 3, "mch_id": MCH_ID, "apiv3_key": APIV3_KEY, "cert_serial_no": "5157F09EFDC096DE15EBE81A47057A72",
           "key": str(tmp_path / "apiclient_key.pem"), "notify_url": NOTIFY_URL}
    del pay[drop]
    with pytest.raises(ConfigError) as err:
        v3_settings(tmp_path, pay)
    assert f"wechat.pay.{key}" in str(err.value) and "v3" in str(err.value)


def test_v3_settings_errors_name_the_key(tmp_path: Path) -> None:
    base = {"version": 3, "mch_id": MCH_ID, "apiv3_key": APIV3_KEY, "cert_serial_no": "5157F09E",
            "key": "apiclient_key.pem", "notify_url": NOTIFY_URL}
    with pytest.raises(ConfigError) as err:
        v3_settings(tmp_path, base | {"apiv3_key": "too-short"})
    assert "wechat.pay.apiv3_key" in str(err.value) and "32" in str(err.value)
    with pytest.raises(ConfigError) as err:
        v3_settings(tmp_path, base | {"platform_public_key": "pub_key.pem"})
    assert "wechat.pay.platform_public_key_id" in str(err.value)
    with pytest.raises(ConfigError) as err:
        v3_settings(tmp_path, base | {"version": 4})
    assert "wechat.pay.version" in str(err.value)
    v3_settings(tmp_path, base)  # v3 needs no APIv2 key


async def test_v3_missing_or_unreadable_key_files_stop_the_start(tmp_path: Path) -> None:
    fake = FakeWeChatPay(APPID, MCH_ID, apiv3_key=APIV3_KEY)
    pay = v3_pay_settings(fake, tmp_path)
    (tmp_path / "s").mkdir()
    async with v3_store(tmp_path / "s", codes=0) as env:
        for change, key, words in (
                ({"key": str(tmp_path / "nope.pem")}, "wechat.pay.key", "cannot read"),
                ({"key": str(tmp_path / "pub_key.txt")}, "wechat.pay.key", "not a PEM private key"),
                ({"platform_public_key": str(tmp_path / "nope.pem"), "platform_public_key_id": PUBLIC_KEY_ID},
                 "wechat.pay.platform_public_key", "cannot read"),
                ({"platform_public_key": str(tmp_path / "pub_key.txt"), "platform_public_key_id": PUBLIC_KEY_ID},
                 "wechat.pay.platform_public_key", "not a PEM public key")):
            (tmp_path / "pub_key.txt").write_text("not a key")
            settings = v3_settings(tmp_path, pay | change)
            with pytest.raises(ConfigError) as err:
                WeChatPayV3Gateway(settings, env.app.shop)
            assert key in str(err.value) and words in str(err.value)


async def test_v3_signed_notice_for_an_unknown_order_is_recorded_once_for_a_refund(tmp_path: Path) -> None:
    async with v3_store(tmp_path) as env:
        notice = env.fake.v3_notice("261205NOSUCHORD", total=1000, transaction_id="4200000000000000000000009999")
        assert await env.fake.send(*notice) == (204, "")
        assert await env.fake.send(*notice) == (204, "")  # WeChat's repeat: recorded once
        async with env.app.db.uow() as uow:
            found = await uow.payments.existing([(PROVIDER, "4200000000000000000000009999")])
        (payment,) = found.values()
        assert payment.order_id is None and payment.status in ("refund_pending", "refunded")
        assert payment.payer == "wechat:o-payer"


async def test_v3_keys_never_reach_the_log_even_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with v3_store(tmp_path, codes=1) as env:
        late, _ = await lapsed_and_refunding(env)  # orders, a notice, a refund: every kind of call
        assert await order_status(env.app, late.id) == "refunded"
        private_pem = Path(env.app.settings.wechat.pay.key).read_text()
    body = "".join(private_pem.splitlines()[1:-1])
    assert "wechat pay:" in caplog.text  # the store did log ...
    assert APIV3_KEY not in caplog.text and body[:40] not in caplog.text  # ... but no key


async def test_v3_with_a_wrong_apiv3_key_says_no_platform_certificate_and_makes_no_trade(tmp_path: Path) -> None:
    async with v3_store(tmp_path) as env:
        pay = env.app.settings.wechat.pay.model_copy(update={"apiv3_key": SecretStr("w" * 32)})
        settings = env.app.settings.model_copy(update={"wechat": env.app.settings.wechat.model_copy(
            update={"pay": pay})})
        wrong = WeChatPayV3Gateway(settings, env.app.shop)
        order = await env.reserve("o-alice")
        with pytest.raises(WeChatPayError) as err:
            await wrong.create_native(order, "card")
        assert err.value.code == "NO_PLATFORM_CERT" and "apiv3_key" in str(err.value)
        assert env.fake.trades == {} and len(env.fake.requests_to("/v3/certificates")) == 1
