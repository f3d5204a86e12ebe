"""WeChat Pay API v2 on wechatpy: Native (the buyer scans a QR code) and JSAPI (the in-app pay sheet of an H5 page
opened inside WeChat). API v3 (bots/wechat/pay_v3.py) shares PayGatewayBase: the checks before paying, the
per-order caches, reconciliation and the refund flow.

- `create_native` places a unified order (`trade_type=NATIVE`, `out_trade_no` = our order id, `total_fee` =
  the order amount in fen) and returns its `code_url`; `qr_png` draws it.
- `create_jsapi` places a unified order `trade_type=JSAPI` with the buyer's openid and returns the six
  parameters of `WeixinJSBridge.invoke('getBrandWCPayRequest', ...)` (paySign: MD5 with the API key).
- `handle_notify` is the logic of `POST /wechat/pay/notify`: the MD5 signature, appid, mch_id, the order and
  the amount are checked; a paid notice goes into `shop.pay` (recorded once per transaction id, delivered in
  the same transaction); the answer is the SUCCESS XML for every valid notice, repeats included.
- `reconcile` asks `orderquery` about WeChat orders still unpaid, so a notice that never came loses nothing.
- `refund` is called by the outbox for payments that cannot be fulfilled (and merchant refunds):
  `refund.apply` with the merchant certificate, `out_refund_no` derived from the transaction (idempotent).

wechatpy is synchronous (requests): every API call runs in a worker thread (`asyncio.to_thread`), each thread
with its own client (a requests.Session is not shared between threads). Parsing a notice (at most 64 KiB, no
I/O) runs on the loop.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import qrcode
import xmltodict
from qrcode.image.pure import PyPNGImage
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature

from config.settings import ConfigError
from core.errors import ErrorCode, StoreError
from core.models import Buyer, Order, OrderStatus, Payment
from core.orders import PaymentNotice
from core.shop import Shop
from locales import Translator

log = logging.getLogger(__name__)
# wechatpy logs "key=<api_key>" at DEBUG while signing: never let the merchant key reach a log file.
logging.getLogger("wechatpy.pay.utils").setLevel(logging.INFO)

PROVIDER = "wechat_pay"
NOTIFY_PATH = "/wechat/pay/notify"  # where the store's HTTP server takes notices (the path of pay.notify_url)
CHANNEL = "wechat"  # the buyers who pay with WeChat Pay (Buyer.channel of the WeChat storefront)
MAX_NOTIFY_BODY = 64 * 1024
SUCCESS_XML = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
CHINA = timezone(timedelta(hours=8))  # WeChat Pay times (time_start, time_expire) are Beijing time
CODE_URL_TTL = 100 * 60  # code_url is valid 2 h; a cached one is renewed well before that
CACHE_SIZE = 10_000
TIMEOUT = (5, 15)  # (connect, read) seconds for every pay API call
RECONCILE_MIN_AGE = timedelta(seconds=60)  # give the notice a minute before asking
RECONCILE_WINDOW = timedelta(hours=24)  # WeChat re-sends notices for about 24 h; look back as far
RECONCILE_BATCH = 200  # orders asked about per run at most
RECONCILE_CONCURRENCY = 8
_XXE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def fail_xml(reason: str) -> bytes:
    safe = reason.replace("]]>", "")
    return f"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{safe}]]></return_msg></xml>".encode()


class WeChatPayError(Exception):
    """The pay API refused or could not be reached. `code` is WeChat's err_code (or return_code / the
    exception type); the outbox records the message and retries refunds."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if message else code)


class _Client(WeChatPay):
    """wechatpy's WeChatPay aimed at the configured pay API server.

    Every pay endpoint wechatpy uses here is relative to API_BASE_URL (pay/unifiedorder, pay/orderquery,
    secapi/pay/refund). Its only absolute URLs are transfer.get_rsa_key (fraud.mch.weixin.qq.com, not used)
    and, in get_external_ip, a DNS lookup of api.mch.weixin.qq.com that runs when client_ip is missing: we
    always pass it. sandbox stays off (it would fetch a sandbox key from the real server).
    """

    def __init__(self, api_base: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.API_BASE_URL = api_base.rstrip("/") + "/"


@dataclass(slots=True)
class _CodeUrl:
    url: str  # a code_url (Native) or a prepay_id (JSAPI)
    at: float


REFUND_FAILED = ("CHANGE", "REFUNDCLOSE", "ABNORMAL", "CLOSED")  # v2 and v3 names of a refund that needs a person


class PayGatewayBase:
    """What WeChat Pay v2 and v3 share: the checks before paying, one request per order at a time, the
    code_url / prepay_id cached per order under WeChat's 2 h validity, what an OUT_TRADE_NO_USED means,
    reconciliation and the refund flow. Subclasses talk to their API (`_native`, `_prepay`, `_jsapi_params`,
    `query`, `refund_status`, `_refund_apply`, `handle_notify`, `close`)."""

    name = PROVIDER
    version = 2
    notify_headers = False  # handle_notify(body) (v2); v3 also needs the request's headers

    def __init__(self, settings: Any, shop: Shop) -> None:
        wx = settings.wechat
        pay = wx.pay
        self.shop = shop
        self.appid: str = wx.appid
        self.mch_id: str = pay.mch_id
        self.notify_url: str = pay.notify_url
        self._api_base: str = pay.api_base
        self._codes: OrderedDict[str, _CodeUrl] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._closed_unpaid: OrderedDict[str, None] = OrderedDict()  # past time_expire and unpaid: final
        self._asked: dict[str, float] = {}  # order id -> when reconcile last asked WeChat about it
        self.i18n = Translator(settings.store.languages, settings.store.default_language)

    async def reconcile(self) -> int:
        """core.ports.PaymentReconciler: this store's unpaid WeChat Pay orders asked about (reconcile below)."""
        return await reconcile(self.shop, self)

    # -- what each API version does ----------------------------------------------------------------
    async def _native(self, order: Order, title: str, client_ip: str) -> str:
        raise NotImplementedError

    async def _prepay(self, order: Order, title: str, openid: str, client_ip: str) -> str:
        raise NotImplementedError

    def _jsapi_params(self, prepay_id: str) -> dict[str, str]:
        raise NotImplementedError

    async def query(self, order_id: str) -> PaymentNotice | None:
        raise NotImplementedError

    async def refund_status(self, payment: Payment) -> str | None:
        raise NotImplementedError

    async def _refund_apply(self, payment: Payment, desc: str) -> None:
        raise NotImplementedError

    def _refund_ready(self) -> None:
        """Raise WeChatPayError when refunds cannot be made (v2 without the merchant certificate)."""

    async def close(self) -> None:
        """Close the pay API connections (at shutdown)."""

    # -- paying ------------------------------------------------------------------------------------
    def _payable(self, order: Order) -> None:
        if order.status is not OrderStatus.HELD or order.expires_at <= self.shop.clock.now():
            raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
        if order.currency != "CNY":
            raise WeChatPayError("FEE_TYPE", f"WeChat Pay takes CNY, the order is in {order.currency}")

    async def create_native(self, order: Order, title: str, client_ip: str = "127.0.0.1") -> str:
        """The code_url of a Native order for this held order (draw it with qr_png).

        Asking again for the same order returns the same code_url (cached; and the request is the same
        each time, so WeChat answers a repeat with the same trade). Raises StoreError(ORDER_NOT_PAYABLE)
        for an order that is no longer held (or already paid at WeChat), WeChatPayError when the pay API
        refuses or cannot be reached.
        """
        self._payable(order)
        return await self._once(order.id, order, lambda: self._native(order, title, client_ip))

    async def create_jsapi(self, order: Order, title: str, openid: str, client_ip: str = "127.0.0.1"
                           ) -> dict[str, str]:
        """The parameters of `WeixinJSBridge.invoke('getBrandWCPayRequest', params)` for this held order, paid
        inside WeChat by `openid` (the buyer on the H5 page): appId, timeStamp, nonceStr, package
        ("prepay_id=..."), signType and paySign. The prepay_id is cached per order and openid (valid 2 h);
        the parameters are signed afresh each time. Raises as create_native does."""
        self._payable(order)
        if not openid:
            raise WeChatPayError("PARAM_ERROR", "JSAPI needs the buyer's openid")
        prepay_id = await self._once(f"{order.id}\njsapi\n{openid}", order,
                                     lambda: self._prepay(order, title, openid, client_ip))
        return self._jsapi_params(prepay_id)

    async def _once(self, key: str, order: Order, make: Callable[[], Awaitable[str]]) -> str:
        cached = self._codes.get(key)
        if cached is not None and time.monotonic() - cached.at < CODE_URL_TTL:
            return cached.url
        pending = self._inflight.get(key)
        if pending is None:  # one request per order at a time; others wait for its answer
            pending = asyncio.ensure_future(self._placing(key, order, make))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _placing(self, key: str, order: Order, make: Callable[[], Awaitable[str]]) -> str:
        try:
            url = await make()
        except WeChatPayError as exc:
            if exc.code in ("ORDERPAID", "ORDERCLOSED", "ORDER_CLOSED"):
                raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=exc.code.lower()) from None
            if exc.code == "OUT_TRADE_NO_USED":
                # WeChat has a trade for this order made with other parameters (another process, before a
                # restart, the other way of paying): if it was paid, record the payment; either way this order
                # gets no new trade.
                paid = await self.query(order.id)
                if paid is not None:
                    await self.shop.pay(paid)
                    raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status="paid") from None
            raise
        self._codes[key] = _CodeUrl(url, time.monotonic())
        self._codes.move_to_end(key)
        while len(self._codes) > CACHE_SIZE:
            self._codes.popitem(last=False)
        return url

    def _topup_payable(self, topup: Any) -> None:
        if topup.status != "open" or topup.expires_at <= self.shop.clock.now():
            raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=topup.status)
        if topup.currency != "CNY":
            raise WeChatPayError("FEE_TYPE", f"WeChat Pay takes CNY, the wallet is in {topup.currency}")

    # -- refunds -----------------------------------------------------------------------------------
    async def refund(self, payment: Payment, reason: str) -> bool:
        """Refund a whole payment. out_refund_no is derived from the transaction id, so a retry (the outbox
        retries until the money moved) is the same refund, never a second one.

        True only when WeChat says the money went back (refund query: SUCCESS); False while the refund is
        accepted but still processing (the outbox asks again; the refund notice speeds that up). A refund
        WeChat reports as failed (v2 CHANGE / REFUNDCLOSE, v3 ABNORMAL / CLOSED) raises: it needs a person."""
        self._refund_ready()
        status = await self.refund_status(payment)
        if status == "SUCCESS":
            return True
        if status == "PROCESSING":
            return False
        if status in REFUND_FAILED:
            raise WeChatPayError(status, f"refund of payment {payment.id} failed at WeChat; see the merchant console")
        language = None
        if payment.order_id:
            async with self.shop.uow() as uow:
                order = await uow.orders.get(payment.order_id)
            language = order.language if order is not None else None
        desc = self.i18n.t(language, f"wechatpay.refund_reason.{reason}")
        if desc.startswith("wechatpay."):
            desc = self.i18n.t(language, "wechatpay.refund_reason.other")
        await self._refund_apply(payment, _clip(desc, 80))
        log.info("wechat pay: refund of payment %s (order %s, %s) accepted", payment.id, payment.order_id, reason)
        # A refund to the buyer's balance is usually done at once; otherwise the refund notice or the next
        # refund query says when the money moved.
        return await self.refund_status(payment) == "SUCCESS"


class WeChatPayGateway(PayGatewayBase):
    """WeChat Pay v2 (Native and JSAPI) as a core PaymentGateway (registered by the composition root through the
    WeChat runtime's parts, bots/wechat/wiring.py) and a core PaymentReconciler."""

    def __init__(self, settings: Any, shop: Shop) -> None:
        super().__init__(settings, shop)
        pay = settings.wechat.pay
        self._api_key: str = pay.api_key.get_secret_value()
        self._cert = str(settings.resolve_path(pay.cert)) if pay.cert else None
        self._key = str(settings.resolve_path(pay.key)) if pay.key else None
        problems = [(f"wechat.pay.{name}", f"file not found: {path}")
                    for name, path in (("cert", self._cert), ("key", self._key)) if path and not Path(path).is_file()]
        if bool(self._cert) != bool(self._key):
            problems.append(("wechat.pay.key" if self._cert else "wechat.pay.cert",
                             "cert and key go together (the merchant certificate and its private key)"))
        if not self._api_key:
            problems.append(("wechat.pay.api_key", "required for WeChat Pay API v2"))
        if problems:
            raise ConfigError(problems)
        self._local = threading.local()
        self._clients: list[_Client] = []  # every thread's client, to close their connections

    # -- the wechatpy client, one per thread -------------------------------------------------------
    def _client(self) -> _Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = _Client(self._api_base, appid=self.appid, api_key=self._api_key, mch_id=self.mch_id,
                             mch_cert=self._cert, mch_key=self._key, timeout=TIMEOUT)
            self._local.client = client
            self._clients.append(client)
        return client

    async def close(self) -> None:
        """Close the pay API connections (at shutdown)."""
        clients, self._clients = self._clients, []
        for client in clients:
            await asyncio.to_thread(client._http.close)  # noqa: SLF001 - wechatpy's requests.Session

    async def _call(self, what: str, fn_name: str, **kw: Any) -> dict[str, Any]:
        """Run one wechatpy call in a thread; its answer's signature is checked."""
        def run() -> dict[str, Any]:
            client = self._client()
            api, method = fn_name.split(".")
            data = getattr(getattr(client, api), method)(**kw)
            if not isinstance(data, dict):
                raise WeChatPayError("BAD_RESPONSE", f"{what}: not XML")
            if not signed(data, self._api_key):
                raise WeChatPayError("BAD_SIGNATURE", f"{what}: the answer's signature does not match")
            if data.get("appid") != self.appid or data.get("mch_id") != self.mch_id:
                raise WeChatPayError("BAD_RESPONSE", f"{what}: answer for another appid or mch_id")
            return data

        try:
            return await asyncio.to_thread(run)
        except WeChatPayException as exc:
            code = exc.errcode or exc.return_code or "FAIL"
            raise WeChatPayError(str(code), f"{what}: {exc.errmsg or exc.return_msg or ''}") from None
        except WeChatPayError:
            raise
        except Exception as exc:  # noqa: BLE001 - network errors, timeouts, unreadable answers
            raise WeChatPayError(type(exc).__name__, f"{what}: {exc}") from None

    # -- paying ------------------------------------------------------------------------------------
    async def create_native_topup(self, topup: Any, title: str, client_ip: str = "127.0.0.1") -> str:
        """The code_url of a Native unified order for a reseller's open wallet top-up (core.resellers Topup):
        out_trade_no is the top-up's id, so its notice credits the wallet (handle_notify)."""
        self._topup_payable(topup)
        data = await self._call(
            "unifiedorder", "order.create", trade_type="NATIVE", body=_clip(title or topup.id, 128),
            total_fee=topup.amount, notify_url=self.notify_url, client_ip=client_ip, out_trade_no=topup.id,
            product_id="wallet", fee_type="CNY", time_start=topup.created_at.astimezone(CHINA),
            time_expire=max(topup.expires_at, topup.created_at + timedelta(minutes=1)).astimezone(CHINA))
        if not data.get("code_url"):
            raise WeChatPayError("BAD_RESPONSE", "unifiedorder: no code_url")
        return str(data["code_url"])

    async def _unified(self, order: Order, title: str, client_ip: str, **kw: Any) -> dict[str, Any]:
        start = order.created_at.astimezone(CHINA)
        expire = max(order.expires_at, order.created_at + timedelta(minutes=1)).astimezone(CHINA)
        return await self._call(
            "unifiedorder", "order.create", body=_clip(title or order.id, 128), total_fee=order.amount,
            notify_url=self.notify_url, client_ip=client_ip, out_trade_no=order.id, fee_type="CNY",
            time_start=start, time_expire=expire, **kw)

    async def _native(self, order: Order, title: str, client_ip: str) -> str:
        data = await self._unified(order, title, client_ip, trade_type="NATIVE", product_id=str(order.product_id))
        if not data.get("code_url"):
            raise WeChatPayError("BAD_RESPONSE", "unifiedorder: no code_url")
        return str(data["code_url"])

    async def _prepay(self, order: Order, title: str, openid: str, client_ip: str) -> str:
        data = await self._unified(order, title, client_ip, trade_type="JSAPI", user_id=openid)
        if not data.get("prepay_id"):
            raise WeChatPayError("BAD_RESPONSE", "unifiedorder: no prepay_id")
        return str(data["prepay_id"])

    def _jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """Signed as WeChat Pay v2 documents: MD5 with the API key over appId, timeStamp, nonceStr, package and
        signType (wechatpy's calculate_signature)."""
        params = {"appId": self.appid, "timeStamp": str(int(time.time())), "nonceStr": secrets.token_hex(16),
                  "package": f"prepay_id={prepay_id}", "signType": "MD5"}
        return params | {"paySign": calculate_signature(params, self._api_key)}

    async def query(self, order_id: str) -> PaymentNotice | None:
        """orderquery: a PaymentNotice when WeChat says the trade was paid, else None (unpaid, closed,
        unknown to WeChat)."""
        try:
            data = await self._call("orderquery", "order.query", out_trade_no=order_id)
        except WeChatPayError as exc:
            if exc.code == "ORDERNOTEXIST":
                return None
            raise
        if data.get("trade_state") not in ("SUCCESS", "REFUND"):  # REFUND: paid, then (partly) refunded
            return None
        notice = notice_of({k: str(v) if v is not None else "" for k, v in data.items()})
        if data.get("out_trade_no") != order_id or notice is None:
            raise WeChatPayError("BAD_RESPONSE", "orderquery: answer for another order")
        return notice

    # -- refunds -----------------------------------------------------------------------------------
    def _refund_ready(self) -> None:
        if not (self._cert and self._key):
            raise WeChatPayError("NO_CERT", "refunds need wechat.pay.cert and wechat.pay.key")

    async def _refund_apply(self, payment: Payment, desc: str) -> None:
        await self._call("refund", "refund.apply", total_fee=payment.amount, refund_fee=payment.amount,
                         out_refund_no=refund_no(payment), transaction_id=payment.provider_txn_id,
                         out_trade_no=payment.order_id, fee_type=payment.currency or "CNY",
                         refund_desc=desc, notify_url=self.notify_url)

    async def refund_status(self, payment: Payment) -> str | None:
        """refundquery of this payment's one refund: SUCCESS | PROCESSING | CHANGE | REFUNDCLOSE, None if none."""
        try:
            data = await self._call("refundquery", "refund.query", out_refund_no=refund_no(payment))
        except WeChatPayError as exc:
            if exc.code == "REFUNDNOTEXIST":
                return None
            raise
        status = data.get("refund_status_0")
        return str(status) if status else None

    async def _refund_notice(self, text: str) -> tuple[int, bytes]:
        """A refund result notice: req_info is AES-256-ECB encrypted with md5(api key) (wechatpy decrypts it).
        A SUCCESS marks the payment refunded; the outbox then closes the order and tells the buyer."""
        try:  # wechatpy checks the outer appid and mch_id, then decrypts req_info
            data = self._client().parse_refund_notify_result(text)
        except Exception:  # noqa: BLE001 - another merchant's, or a req_info not encrypted under our key
            log.warning("wechat pay: refused a refund notice for another merchant or that does not decrypt")
            return 400, fail_xml("bad req_info")
        if not isinstance(data, dict):
            return 400, fail_xml("malformed notice")
        txn, status = data.get("transaction_id"), data.get("refund_status")
        if not isinstance(txn, str) or not txn:
            return 400, fail_xml("malformed notice")
        if status == "SUCCESS":
            found = await self.shop.payments.refund_settled(PROVIDER, txn, str(data.get("out_refund_no", "")))
            log.info("wechat pay: refund of transaction %s settled (%s)", txn, "recorded" if found else "unknown")
        else:
            log.warning("wechat pay: refund of transaction %s reported %s", txn, status)
        return 200, SUCCESS_XML

    # -- notices -----------------------------------------------------------------------------------
    async def handle_notify(self, body: bytes) -> tuple[int, bytes]:
        """POST /wechat/pay/notify: (HTTP status, XML answer). WeChat only reads the XML: SUCCESS ends its
        re-sending, FAIL (with a reason) makes it try again later.

        This only checks that WeChat sent it (the signature, appid, mch_id) and translates it: what the money
        is for, and whether it delivers, credits a top-up or is refunded, is decided by the core's one payment
        entry (core/payments.py). A refund result notice (req_info) comes to the same URL."""
        if len(body) > MAX_NOTIFY_BODY:
            return 413, fail_xml("body too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, fail_xml("not UTF-8")
        if _XXE.search(text):
            log.warning("wechat pay: refused a notice with a DOCTYPE or ENTITY")
            return 400, fail_xml("DOCTYPE and ENTITY are not allowed")
        try:
            data = parse_xml(text)
        except ValueError:
            return 400, fail_xml("malformed notice")
        if "req_info" in data:
            return await self._refund_notice(text)
        if not signed(data, self._api_key):
            log.warning("wechat pay: refused a notice with a bad signature")
            return 400, fail_xml("bad signature")
        if data.get("return_code") != "SUCCESS" or data.get("result_code") != "SUCCESS":
            log.info("wechat pay: notice for %s without a payment (%s/%s)", data.get("out_trade_no"),
                     data.get("return_code"), data.get("result_code"))
            return 200, SUCCESS_XML  # nothing was paid: nothing to record, nothing to re-send
        if data.get("appid") != self.appid or data.get("mch_id") != self.mch_id:
            log.warning("wechat pay: refused a notice for another appid or mch_id")
            return 400, fail_xml("wrong appid or mch_id")
        notice = notice_of(data)
        if notice is None:
            return 400, fail_xml("malformed notice")
        try:
            result = await self.shop.pay(notice)
        except Exception:  # noqa: BLE001 - not recorded: WeChat sends it again
            log.exception("wechat pay: recording the payment of %s failed", notice.order_id)
            return 500, fail_xml("try again")
        log.info("wechat pay: %s transaction %s: %s %s", notice.order_id, notice.txn_id, result.outcome,
                 result.reason)
        return 200, SUCCESS_XML


def parse_xml(text: str) -> dict[str, Any]:
    """A WeChat Pay XML message as a flat dict of strings (ValueError when it is not one)."""
    try:
        doc = xmltodict.parse(text)
    except Exception as exc:  # noqa: BLE001 - expat errors and xmltodict's own
        raise ValueError("invalid xml") from exc
    data = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or not all(isinstance(v, (str, type(None))) for v in data.values()):
        raise ValueError("not a flat <xml> message")
    return {k: v or "" for k, v in data.items()}


def signed(data: dict[str, Any], api_key: str) -> bool:
    """The MD5 signature of a pay message, compared in constant time (wechatpy compares with ==)."""
    fields = {k: v for k, v in data.items() if k != "sign" and v not in (None, "")}
    expected = calculate_signature(fields, api_key)
    return hmac.compare_digest(str(data.get("sign", "")).encode(), expected.encode())


def notice_of(data: dict[str, Any]) -> PaymentNotice | None:
    """A paid notice or orderquery answer as the core's PaymentNotice (None when fields are missing).
    Anyone may pay a WeChat Pay QR code (a friend, a parent): the payer is recorded and checked against the
    blacklist, but need not be the buyer."""
    ref, txn, fee = data.get("out_trade_no"), data.get("transaction_id"), str(data.get("total_fee", ""))
    if not isinstance(ref, str) or not ref or not isinstance(txn, str) or not txn or not (fee.isascii()
                                                                                          and fee.isdigit()):
        return None
    openid = data.get("openid")
    payer = Buyer(CHANNEL, openid) if isinstance(openid, str) and openid else None
    return PaymentNotice(ref, PROVIDER, txn, int(fee), data.get("fee_type") or "CNY", payer,
                         raw={k: v for k, v in data.items() if k != "sign"}, any_payer=True)


def refund_no(payment: Payment) -> str:
    """The merchant refund number of a whole-payment refund: one per transaction (WeChat: up to 64)."""
    return f"R{payment.provider_txn_id}"[:64]


def _clip(text: str, max_bytes: int) -> str:
    """Cut to at most max_bytes of UTF-8 without splitting a character (WeChat limits fields in bytes)."""
    raw = text.encode("utf-8")
    return text if len(raw) <= max_bytes else raw[:max_bytes].decode("utf-8", "ignore")


def qr_png(code_url: str) -> bytes:
    """The code_url as a QR code PNG (pure Python: qrcode with pypng)."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4,
                       image_factory=PyPNGImage)
    qr.add_data(code_url)
    qr.make(fit=True)
    buf = io.BytesIO()
    qr.make_image().save(buf)
    return buf.getvalue()


async def reconcile(shop: Shop, gateway: PayGatewayBase, *, channel: str = CHANNEL,
                    min_age: timedelta = RECONCILE_MIN_AGE, batch: int = RECONCILE_BATCH) -> int:
    """Ask WeChat about its buyers' unpaid orders (held, or lapsed/cancelled in the last 24 h) that are at
    least min_age old, and record the ones it says were paid; returns how many payments it recorded.

    An order past its time_expire (= the hold's end) that WeChat says is unpaid can never be paid: it is
    remembered and not asked about again by this process.
    """
    now = shop.clock.now()
    candidates = [o for o in await _unpaid_orders(shop, channel, now - RECONCILE_WINDOW)
                  if o.created_at <= now - min_age and o.id not in gateway._closed_unpaid]
    # At most `batch` a run, those asked least recently first: with more open orders than that, every
    # order still gets its turn.
    asked = {o.id: gateway._asked[o.id] for o in candidates if o.id in gateway._asked}
    candidates.sort(key=lambda o: asked.get(o.id, 0.0))
    candidates = candidates[:batch]
    for o in candidates:
        asked[o.id] = time.monotonic()
    gateway._asked = asked  # only orders still open are remembered
    sem = asyncio.Semaphore(RECONCILE_CONCURRENCY)

    async def one(order: Order) -> int:
        async with sem:
            try:
                notice = await gateway.query(order.id)
            except WeChatPayError as exc:
                log.warning("wechat pay: orderquery for %s failed: %s", order.id, exc)
                return 0
        if notice is None:
            if order.expires_at + timedelta(minutes=5) < now:
                gateway._closed_unpaid[order.id] = None
                while len(gateway._closed_unpaid) > CACHE_SIZE:
                    gateway._closed_unpaid.popitem(last=False)
            return 0
        result = await shop.pay(notice)
        if result.outcome == "duplicate":
            return 0
        log.warning("wechat pay: order %s was paid without a notice (transaction %s): %s", order.id,
                    notice.txn_id, result.outcome)
        return 1

    return sum(await asyncio.gather(*(one(o) for o in candidates)))


async def _unpaid_orders(shop: Shop, channel: str, since: datetime) -> list[Order]:
    """Held, expired and cancelled orders of the channel whose hold ended after `since` (newest first)."""
    out: list[Order] = []
    page = 500
    async with shop.uow() as uow:
        for status in (OrderStatus.HELD, OrderStatus.EXPIRED, OrderStatus.CANCELLED):
            offset = 0
            while True:
                rows = await uow.orders.recent(status, page, offset)
                out.extend(o for o in rows if o.buyer.channel == channel and o.expires_at > since)
                # created_at falls page by page; no order is held longer than a day (store.hold_minutes <= 1440)
                if len(rows) < page or rows[-1].created_at < since - timedelta(days=1):
                    break
                offset += page
    return out


def settings_ready(settings: Any) -> bool:
    """WeChat Pay is configured (appid and mch_id)."""
    return bool(settings.wechat.appid and settings.wechat.pay.mch_id)

