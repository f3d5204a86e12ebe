"""WeChat Pay API v3 on wechatpayv3: Native and JSAPI orders, order and refund queries, refunds and notices.

The same public surface as the v2 gateway (bots/wechat/pay.py; both are PayGatewayBase): the WeChat
storefront, the outbox's refunds, the reconcile job and wallet top-ups do not know which one is configured.

- Requests are JSON, signed by wechatpayv3 with the merchant private key (`Authorization:
  WECHATPAY2-SHA256-RSA2048 ...`, naming the merchant certificate's serial number); every 2xx answer's signature
  is checked by wechatpayv3 against the WeChat Pay platform key: a configured platform public key
  (`platform_public_key` + `platform_public_key_id`) or the platform certificates it downloads from
  `/v3/certificates` (AES-256-GCM encrypted under the APIv3 key) when an answer names a serial it lacks.
- Notices (`POST /wechat/pay/notify`, the same path as v2: one `notify_url` whatever the version) are JSON with
  `Wechatpay-Timestamp/Nonce/Signature/Serial` headers. The store checks the timestamp (at most 5 minutes
  off), wechatpayv3 the platform signature over `timestamp\\nnonce\\nbody\\n` and decrypts the AES-256-GCM
  resource; then `TRANSACTION.SUCCESS` goes to `shop.pay` and `REFUND.SUCCESS` to `payments.refund_settled`.
  Answers: 204 for a notice taken (repeats included), 4xx/5xx with `{"code": "FAIL", "message": ...}`
  otherwise (WeChat re-sends).
- JSAPI parameters are signed with the merchant key (RSA-SHA256 over `appId\\ntimeStamp\\nnonceStr\\npackage\\n`,
  signType "RSA").

wechatpayv3 is synchronous (requests, a new connection per call): every call that may touch the network runs
in a worker thread. Its Core would download platform certificates from the real server while it is being
built; `_Core` aims it at `wechat.pay.api_base` first and loads certificates on first use.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core
from wechatpayv3.utils import load_private_key, load_public_key, rsa_sign

from bots.wechat.pay import (
    CHANNEL,
    CHINA,
    MAX_NOTIFY_BODY,
    PROVIDER,
    TIMEOUT,
    PayGatewayBase,
    WeChatPayError,
    _clip,
    refund_no,
)
from config.settings import ConfigError
from core.models import Buyer, Order, Payment
from core.orders import PaymentNotice
from core.shop import Shop

log = logging.getLogger(__name__)

NOTICE_MAX_SKEW = 300  # seconds a notice's Wechatpay-Timestamp may be off (WeChat Pay's advice: 5 minutes)
HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial",
           "Wechatpay-Signature-Type")


def answer(code: str = "", message: str = "") -> bytes:
    """A v3 notice answer body: empty for success, else {"code": "FAIL", "message": ...}."""
    return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode() if code else b""


def fail(status: int, message: str) -> tuple[int, bytes]:
    return status, answer("FAIL", message)


class _Core(Core):  # type: ignore[misc]  # wechatpayv3 has no type hints
    """wechatpayv3's Core aimed at the configured pay API server before anything is fetched: its __init__
    would download platform certificates from https://api.mch.weixin.qq.com at once. Certificates are loaded
    (platform_cert_dir, else /v3/certificates) by `ready()`, in a worker thread."""

    def __init__(self, api_base: str, **kw: Any) -> None:
        self._deferred = True
        super().__init__(**kw)
        self._gate_way = api_base.rstrip("/")
        self._deferred = False

    def _init_certificates(self) -> None:
        if not self._deferred:
            super()._init_certificates()

    def ready(self) -> None:
        if self._public_key is None and not self._certificates:
            self._init_certificates()  # raises when no platform certificate could be had


class _Client(WeChatPay):  # type: ignore[misc]
    """wechatpayv3's WeChatPay (direct merchant) on _Core."""

    def __init__(self, api_base: str, *, appid: str, mchid: str, notify_url: str, **core: Any) -> None:
        self._type = WeChatPayType.NATIVE
        self._mchid, self._appid, self._notify_url = mchid, appid, notify_url
        self._partner_mode = False
        self._core = _Core(api_base, mchid=mchid, **core)


class WeChatPayV3Gateway(PayGatewayBase):
    """WeChat Pay API v3 (Native and JSAPI) as a core PaymentGateway and PaymentReconciler."""

    version = 3
    notify_headers = True  # handle_notify(body, headers)

    def __init__(self, settings: Any, shop: Shop) -> None:
        super().__init__(settings, shop)
        pay = settings.wechat.pay
        problems: list[tuple[str, str]] = []
        self._apiv3_key: str = pay.apiv3_key.get_secret_value()
        if len(self._apiv3_key.encode()) != 32:
            problems.append(("wechat.pay.apiv3_key", "required for API v3: the 32-character APIv3 key"))
        self._serial: str = pay.cert_serial_no
        if not self._serial:
            problems.append(("wechat.pay.cert_serial_no", "required for API v3: the merchant certificate's serial"))
        self._private_key: Any = None
        private_pem = self._read(settings, "key", pay.key, problems, "the merchant private key "
                                                                     "(apiclient_key.pem)")
        if private_pem is not None:
            try:
                self._private_key = load_private_key(private_pem)
            except Exception:  # noqa: BLE001 - wechatpayv3 raises a bare Exception
                problems.append(("wechat.pay.key", "not a PEM private key (PKCS#8, as apiclient_key.pem is)"))
        public_pem: str | None = None
        if pay.platform_public_key or pay.platform_public_key_id:
            public_pem = self._read(settings, "platform_public_key", pay.platform_public_key, problems,
                                    "the WeChat Pay platform public key (pub_key.pem)")
            if not pay.platform_public_key_id:
                problems.append(("wechat.pay.platform_public_key_id", "required with platform_public_key"))
            if public_pem is not None:
                try:
                    load_public_key(public_pem)
                except Exception:  # noqa: BLE001
                    problems.append(("wechat.pay.platform_public_key", "not a PEM public key"))
        if problems:
            raise ConfigError(problems)
        self._public_key_pem = public_pem
        self._public_key_id: str | None = pay.platform_public_key_id or None
        self._cert_dir = str(settings.resolve_path(pay.platform_cert_dir)) if pay.platform_cert_dir else None
        self._private_pem = private_pem
        self._lock = threading.Lock()
        self._client_obj: _Client | None = None

    @staticmethod
    def _read(settings: Any, name: str, value: str, problems: list[tuple[str, str]], what: str) -> str | None:
        if not value:
            problems.append((f"wechat.pay.{name}", f"required for API v3: {what}"))
            return None
        path = Path(settings.resolve_path(value))
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((f"wechat.pay.{name}", f"cannot read {path}: {type(exc).__name__}"))
            return None

    # -- the wechatpayv3 client (thread-safe: requests opens a connection per call) ------------------
    def _client(self) -> _Client:
        """In a worker thread: the client, with the platform certificates loaded on first use."""
        with self._lock:
            if self._client_obj is None:
                self._client_obj = _Client(
                    self._api_base, appid=self.appid, mchid=self.mch_id, notify_url=self.notify_url,
                    cert_serial_no=self._serial, private_key=self._private_pem, apiv3_key=self._apiv3_key,
                    cert_dir=self._cert_dir, timeout=TIMEOUT, public_key=self._public_key_pem,
                    public_key_id=self._public_key_id)
            client = self._client_obj
            client._core.ready()  # noqa: SLF001
        return client

    async def _call(self, what: str, fn_name: str, **kw: Any) -> dict[str, Any]:
        """One wechatpayv3 call in a thread: the answer's JSON (its signature checked by wechatpayv3), or
        WeChatPayError with WeChat's error code."""
        def run() -> tuple[int, Any]:
            return getattr(self._client(), fn_name)(**kw)  # type: ignore[no-any-return]

        try:
            status, text = await asyncio.to_thread(run)
        except Exception as exc:  # noqa: BLE001 - wechatpayv3 raises bare Exceptions; network errors, timeouts
            message = str(exc)
            if "verify the signature" in message:
                raise WeChatPayError("BAD_SIGNATURE", f"{what}: the answer's signature does not match") from None
            if "platform certificate" in message:
                raise WeChatPayError("NO_PLATFORM_CERT", f"{what}: no WeChat Pay platform certificate could be "
                                                          "had from /v3/certificates (check apiv3_key)") from None
            raise WeChatPayError(type(exc).__name__, f"{what}: {message}") from None
        try:
            data = json.loads(text) if text else {}
        except (ValueError, TypeError):
            data = None
        if not isinstance(data, dict):
            raise WeChatPayError("BAD_RESPONSE", f"{what}: HTTP {status}, not JSON")
        if not 200 <= status < 300:
            raise WeChatPayError(str(data.get("code") or status), f"{what}: {data.get('message', '')}")
        if data.get("mchid", self.mch_id) != self.mch_id or data.get("appid", self.appid) != self.appid:
            raise WeChatPayError("BAD_RESPONSE", f"{what}: answer for another appid or mchid")
        return data

    # -- paying ------------------------------------------------------------------------------------
    async def _transaction(self, kind: WeChatPayType, out_trade_no: str, title: str, amount: int, created: Any,
                           expires: Any, client_ip: str, **kw: Any) -> dict[str, Any]:
        expire = max(expires, created + timedelta(minutes=1)).astimezone(CHINA).isoformat(timespec="seconds")
        return await self._call("pay", "pay", pay_type=kind, description=_clip(title or out_trade_no, 127),
                                out_trade_no=out_trade_no, amount={"total": amount, "currency": "CNY"},
                                time_expire=expire, notify_url=self.notify_url,
                                scene_info={"payer_client_ip": client_ip}, **kw)

    async def _native(self, order: Order, title: str, client_ip: str) -> str:
        data = await self._transaction(WeChatPayType.NATIVE, order.id, title, order.amount, order.created_at,
                                       order.expires_at, client_ip)
        if not data.get("code_url"):
            raise WeChatPayError("BAD_RESPONSE", "native: no code_url")
        return str(data["code_url"])

    async def _prepay(self, order: Order, title: str, openid: str, client_ip: str) -> str:
        data = await self._transaction(WeChatPayType.JSAPI, order.id, title, order.amount, order.created_at,
                                       order.expires_at, client_ip, payer={"openid": openid})
        if not data.get("prepay_id"):
            raise WeChatPayError("BAD_RESPONSE", "jsapi: no prepay_id")
        return str(data["prepay_id"])

    def _jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """RSA-SHA256 with the merchant key over "appId\\ntimeStamp\\nnonceStr\\npackage\\n" (wechatpayv3's
        rsa_sign; no I/O)."""
        params = {"appId": self.appid, "timeStamp": str(int(time.time())), "nonceStr": secrets.token_hex(16),
                  "package": f"prepay_id={prepay_id}", "signType": "RSA"}
        message = "\n".join((params["appId"], params["timeStamp"], params["nonceStr"], params["package"])) + "\n"
        return params | {"paySign": rsa_sign(self._private_key, message)}

    async def create_native_topup(self, topup: Any, title: str, client_ip: str = "127.0.0.1") -> str:
        """The code_url of a Native order for a reseller's open wallet top-up (out_trade_no = the top-up's id)."""
        self._topup_payable(topup)
        data = await self._transaction(WeChatPayType.NATIVE, topup.id, title, topup.amount, topup.created_at,
                                       topup.expires_at, client_ip)
        if not data.get("code_url"):
            raise WeChatPayError("BAD_RESPONSE", "native: no code_url")
        return str(data["code_url"])

    async def query(self, order_id: str) -> PaymentNotice | None:
        """Query by out-trade-no: a PaymentNotice when WeChat says the trade was paid, else None."""
        try:
            data = await self._call("query", "query", out_trade_no=order_id)
        except WeChatPayError as exc:
            if exc.code in ("ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"):
                return None
            raise
        if data.get("trade_state") not in ("SUCCESS", "REFUND"):  # REFUND: paid, then (partly) refunded
            return None
        notice = notice_of(data)
        if data.get("out_trade_no") != order_id or notice is None:
            raise WeChatPayError("BAD_RESPONSE", "query: answer for another order")
        return notice

    # -- refunds -----------------------------------------------------------------------------------
    async def _refund_apply(self, payment: Payment, desc: str) -> None:
        await self._call("refund", "refund", out_refund_no=refund_no(payment),
                         transaction_id=payment.provider_txn_id, reason=desc, notify_url=self.notify_url,
                         amount={"refund": payment.amount, "total": payment.amount,
                                 "currency": payment.currency or "CNY"})

    async def refund_status(self, payment: Payment) -> str | None:
        """The refund's status: SUCCESS | PROCESSING | ABNORMAL | CLOSED, None if WeChat has none."""
        try:
            data = await self._call("refund query", "query_refund", out_refund_no=refund_no(payment))
        except WeChatPayError as exc:
            if exc.code in ("RESOURCE_NOT_EXISTS", "NOT_FOUND", "REFUNDNOTEXIST"):
                return None
            raise
        status = data.get("status")
        return str(status) if status else None

    # -- notices -----------------------------------------------------------------------------------
    async def handle_notify(self, body: bytes, headers: Any = None) -> tuple[int, bytes]:
        """POST /wechat/pay/notify on v3: (HTTP status, JSON answer). 204 ends WeChat's re-sending; 4xx/5xx with
        {"code": "FAIL"} makes it try again later. Only checks that WeChat sent it (timestamp, platform
        signature, the resource decrypts under the APIv3 key, appid and mchid) and translates it: what the money
        is for, and whether it delivers, credits a top-up or is refunded, is the core's decision."""
        if len(body) > MAX_NOTIFY_BODY:
            return fail(413, "body too large")
        try:
            text = body.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            if body.lstrip().startswith(b"<"):
                log.warning("wechat pay: refused an API v2 notice (this store is on v3; reconcile asks about it)")
                return fail(400, "this store takes WeChat Pay API v3 notices")
            return fail(400, "malformed notice")
        if not isinstance(doc, dict):
            return fail(400, "malformed notice")
        hdrs = {name: str((headers or {}).get(name, "")) for name in HEADERS}
        try:
            stamp = int(hdrs["Wechatpay-Timestamp"])
        except ValueError:
            return fail(401, "bad signature")
        if abs(time.time() - stamp) > NOTICE_MAX_SKEW:
            log.warning("wechat pay: refused a notice with a stale timestamp (a replay?)")
            return fail(401, "stale timestamp")

        def verify() -> dict[str, Any] | str:
            client = self._client()
            try:
                if not client._core._verify_signature(hdrs, text):  # noqa: SLF001
                    return "bad signature"
            except Exception:  # noqa: BLE001 - an unknown algorithm or serial
                return "bad signature"
            try:
                data = client.callback(hdrs, text)  # decrypts the AES-256-GCM resource
            except Exception:  # noqa: BLE001
                data = None
            return data if isinstance(data, dict) and isinstance(data.get("resource"), dict) else "bad resource"

        try:
            found = await asyncio.to_thread(verify)
        except Exception as exc:  # noqa: BLE001 - no platform certificate to be had now: WeChat sends it again
            log.warning("wechat pay: cannot check a notice now: %s", type(exc).__name__)
            return fail(500, "try again")
        if isinstance(found, str):
            log.warning("wechat pay: refused a notice: %s", found)
            return fail(401 if found == "bad signature" else 400, found)
        event, resource = str(found.get("event_type", "")), found["resource"]
        if resource.get("mchid") != self.mch_id or resource.get("appid", self.appid) != self.appid:
            log.warning("wechat pay: refused a notice for another appid or mchid")
            return fail(400, "wrong appid or mchid")
        if event.startswith("REFUND."):
            return await self._refund_notice(event, resource)
        if event != "TRANSACTION.SUCCESS" or resource.get("trade_state") != "SUCCESS":
            log.info("wechat pay: notice %s for %s without a payment", event, resource.get("out_trade_no"))
            return 204, b""
        notice = notice_of(resource)
        if notice is None:
            return fail(400, "malformed notice")
        try:
            result = await self.shop.pay(notice)
        except Exception:  # noqa: BLE001 - not recorded: WeChat sends it again
            log.exception("wechat pay: recording the payment of %s failed", notice.order_id)
            return fail(500, "try again")
        log.info("wechat pay: %s transaction %s: %s %s", notice.order_id, notice.txn_id, result.outcome,
                 result.reason)
        return 204, b""

    async def _refund_notice(self, event: str, resource: dict[str, Any]) -> tuple[int, bytes]:
        txn = resource.get("transaction_id")
        if not isinstance(txn, str) or not txn:
            return fail(400, "malformed notice")
        if event == "REFUND.SUCCESS" and resource.get("refund_status", "SUCCESS") == "SUCCESS":
            found = await self.shop.payments.refund_settled(PROVIDER, txn, str(resource.get("out_refund_no", "")))
            log.info("wechat pay: refund of transaction %s settled (%s)", txn, "recorded" if found else "unknown")
        else:
            log.warning("wechat pay: refund of transaction %s reported %s", txn, event)
        return 204, b""


def notice_of(data: dict[str, Any]) -> PaymentNotice | None:
    """A v3 transaction (notice resource or query answer) as the core's PaymentNotice (None when fields are
    missing). As on v2 anyone may pay a Native code: the payer is recorded and checked, not required."""
    ref, txn = data.get("out_trade_no"), data.get("transaction_id")
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    total, currency = amount.get("total"), amount.get("currency") or "CNY"
    if not isinstance(ref, str) or not ref or not isinstance(txn, str) or not txn or type(total) is not int:
        return None
    payer_info = data.get("payer") if isinstance(data.get("payer"), dict) else {}
    openid = payer_info.get("openid")
    payer = Buyer(CHANNEL, openid) if isinstance(openid, str) and openid else None
    raw = {k: v for k, v in data.items() if isinstance(v, (str, int))}
    return PaymentNotice(ref, PROVIDER, txn, total, str(currency), payer, raw=raw, any_payer=True)
