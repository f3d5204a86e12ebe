"""A local fake of the WeChat Pay API server, v2 and v3, for tests and benchmarks (aiohttp on 127.0.0.1, any port).

**API v2.** It speaks the protocol as wechatpy sends it: XML bodies signed with MD5 over the sorted `k=v` pairs plus
`key=<api key>` (wechatpy's own calculate_signature), signed XML answers. Endpoints (the paths wechatpy adds to
API_BASE_URL):

- `POST /pay/unifiedorder` -> `code_url` (NATIVE) or `prepay_id` (JSAPI, which needs the buyer's `openid`, as
  WeChat does). A repeat with the same out_trade_no and the same parameters gets the
  same trade (as WeChat does); other parameters -> err_code OUT_TRADE_NO_USED; a paid trade -> ORDERPAID.
- `POST /pay/orderquery` -> trade_state NOTPAY / SUCCESS / REFUND, or err_code ORDERNOTEXIST.
- `POST /secapi/pay/refund` -> refund_id; the same out_refund_no is the same refund. With `tls=True` the server
  speaks HTTPS and this path needs a client certificate (like WeChat's merchant certificate).
- `POST /pay/refundquery` (by out_refund_no) -> refund_status_0 SUCCESS / PROCESSING, or REFUNDNOTEXIST. With
  `instant_refunds=True` (the default) a refund is SUCCESS at once (balance refunds settle in seconds); with
  False it stays PROCESSING until `refund_notice_xml` settles it and builds the encrypted refund notice
  (req_info: AES-256-ECB under md5(api key), as WeChat sends it).

Every request is kept in `requests` as (path, fields). `mark_paid` pays a trade (as if the buyer scanned and
paid; orderquery then says SUCCESS) and `notify_xml` builds the signed notice WeChat would post to notify_url.
`make_cert` writes a self-signed certificate and key (PEM) for the TLS server and the merchant.

**API v3** (when built with `apiv3_key` and `merchant_keys`; as wechatpayv3 sends it). Every request must carry
the merchant's `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,signature=..,timestamp=..,
serial_no=..` (RSA-SHA256 over `METHOD\nPATH?QUERY\ntimestamp\nnonce\nbody\n`, checked with the merchant public
key of that serial; else 401 SIGN_ERROR). Answers are signed with the fake's platform key (`Wechatpay-*`
headers): `Wechatpay-Serial` is the platform certificate's serial, or `public_key_id` when the fake runs in
public-key mode (`FakeWeChatPay(..., public_key_id="PUB_KEY_ID_...")`; the key is `platform_public_key_pem`).

- `GET /v3/certificates` -> the platform certificate, AES-256-GCM encrypted under the APIv3 key.
- `POST /v3/pay/transactions/native` -> `code_url`; `POST /v3/pay/transactions/jsapi` (needs `payer.openid`)
  -> `prepay_id`. A repeat with the same parameters is the same trade; other parameters -> 403
  OUT_TRADE_NO_USED; a paid trade -> 403 ORDERPAID.
- `GET /v3/pay/transactions/out-trade-no/{no}?mchid=` -> trade_state NOTPAY / SUCCESS / REFUND, or 404
  ORDER_NOT_EXIST.
- `POST /v3/refund/domestic/refunds`, `GET /v3/refund/domestic/refunds/{out_refund_no}` -> status SUCCESS /
  PROCESSING (as `instant_refunds` says), or 404 RESOURCE_NOT_EXISTS.

Notices: `v3_notice(out_trade_no, ...)` -> (headers, body) of the signed, encrypted notice WeChat would post
(marks the trade paid first); overrides make bad ones: `total`, `mchid`, `appid` (another amount or merchant,
correctly signed), `sign_key` (signed with another key), `tamper` (the ciphertext altered, then signed),
`timestamp` (an old one). `v3_refund_notice(out_refund_no)` likewise. `await send(headers, body)` posts one to
`notify_target` (set it to the store's notify URL) and returns (status, answer text); posting the same
twice is a replay.

**Paying as the buyer would (both versions):** `await pay_prepay(prepay_id, openid, params=None, notify=True)`
is the buyer confirming WeChat's pay sheet: the trade of that prepay_id is paid by openid (which must be the
openid the JSAPI order was made for; else ValueError, as WeChat refuses), `params` (the getBrandWCPayRequest
parameters, when given) must carry a valid paySign (MD5 with the API key on v2, RSA with the merchant key on
v3; else ValueError), and the signed notice is posted to `notify_target` (or the trade's notify_url) unless
`notify=False` (a notice that never comes). Returns the transaction id; the store's answers are in `notified`.
`make_v3_merchant` writes a merchant RSA key (PKCS#8 PEM) and returns (key file, certificate serial, public key).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import xmltodict
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpy.crypto import RefundCrypto
from wechatpy.pay.utils import calculate_signature, dict_to_xml

from tests.wechat_certs import make_cert, make_v3_merchant, self_signed  # noqa: F401 - tests import them from here

# The fields of a unified order that must be the same for a repeat to get the same trade.
SAME_ORDER = ("body", "total_fee", "fee_type", "trade_type", "product_id", "notify_url", "time_expire")


@dataclass
class Trade:
    out_trade_no: str
    fields: dict[str, Any]
    code_url: str
    state: str = "NOTPAY"  # NOTPAY | SUCCESS | REFUND
    transaction_id: str = ""
    openid: str = ""
    version: int = 2  # the API that made it (its notice is sent in that API's form)
    prepay_id: str = ""  # JSAPI
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # out_refund_no -> request fields


class FakeWeChatPay:
    def __init__(self, appid: str, mch_id: str, api_key: str = "", *, tls: tuple[Path, Path, Path] | None = None,
                 apiv3_key: str = "", merchant_keys: dict[str, rsa.RSAPublicKey] | None = None,
                 public_key_id: str = "") -> None:
        """tls: (server cert, server key, client CA) to serve HTTPS and check merchant certificates.
        apiv3_key, merchant_keys (certificate serial -> merchant public key): API v3; public_key_id: sign v3
        answers and notices as the platform public key of that id instead of a platform certificate."""
        self.appid, self.mch_id, self.api_key = appid, mch_id, api_key
        self.apiv3_key, self.merchant_keys, self.public_key_id = apiv3_key, dict(merchant_keys or {}), public_key_id
        self._platform_key: rsa.RSAPrivateKey | None = None  # made on first use (v3 only)
        self._platform_cert: x509.Certificate | None = None
        self.notify_target = ""  # where notices go (the store's notify URL); empty = the trade's notify_url
        self.notified: list[tuple[int, str]] = []  # the store's answers to notices this fake sent
        self.tls = tls
        self.trades: dict[str, Trade] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.refund_errors: list[str] = []  # err_codes the next refund calls answer with (then success)
        self.instant_refunds = True
        self._txn = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    async def start(self) -> FakeWeChatPay:
        app = web.Application()
        app.router.add_post("/pay/unifiedorder", self._unifiedorder)
        app.router.add_post("/pay/orderquery", self._orderquery)
        app.router.add_post("/secapi/pay/refund", self._refund)
        app.router.add_post("/pay/refundquery", self._refundquery)
        app.router.add_get("/v3/certificates", self._v3_certificates)
        app.router.add_post("/v3/pay/transactions/{kind:native|jsapi}", self._v3_pay)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{no}", self._v3_query)
        app.router.add_post("/v3/refund/domestic/refunds", self._v3_refund)
        app.router.add_get("/v3/refund/domestic/refunds/{no}", self._v3_refund_query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        ctx = None
        if self.tls:
            cert, key, client_ca = self.tls
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL  # asked for; /secapi/ refuses a request without one
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests look at and do -----------------------------------------------------------------
    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [f for p, f in self.requests if p == path]

    def mark_paid(self, out_trade_no: str, openid: str = "o-payer") -> str:
        """The buyer paid the trade (made by a unified order). Returns the transaction id."""
        trade = self.trades[out_trade_no]
        if trade.state == "NOTPAY":
            trade.state, trade.openid = "SUCCESS", openid
            trade.transaction_id = f"42000{next(self._txn):023d}"  # 28 digits, like WeChat's
        return trade.transaction_id

    def notify_xml(self, out_trade_no: str, *, total_fee: int | None = None, transaction_id: str | None = None,
                   appid: str | None = None, mch_id: str | None = None, api_key: str | None = None,
                   result_code: str = "SUCCESS", openid: str = "o-payer") -> bytes:
        """The signed notice WeChat posts for a paid trade; a trade this server made is marked paid first.
        Override a field (or sign with another api_key) to make a bad one."""
        trade = self.trades.get(out_trade_no)
        if trade is not None and result_code == "SUCCESS":
            self.mark_paid(out_trade_no, openid)
        fee = total_fee if total_fee is not None else int(trade.fields["total_fee"]) if trade else 0
        data = {
            "appid": appid or self.appid, "mch_id": mch_id or self.mch_id, "nonce_str": secrets.token_hex(16),
            "result_code": result_code, "return_code": "SUCCESS", "openid": openid, "is_subscribe": "Y",
            "trade_type": trade.fields.get("trade_type", "NATIVE") if trade else "NATIVE", "bank_type": "OTHERS",
            "total_fee": str(fee), "cash_fee": str(fee),
            "fee_type": "CNY", "out_trade_no": out_trade_no, "time_end": "20260101120000",
            "transaction_id": transaction_id or (trade.transaction_id if trade else f"42000{next(self._txn):023d}"),
        }
        return dict_to_xml(data, calculate_signature(data, api_key or self.api_key)).encode("utf-8")

    # -- the API -----------------------------------------------------------------------------------
    async def _read(self, request: web.Request) -> dict[str, Any] | web.Response:
        fields = dict(xmltodict.parse(await request.text())["xml"])
        self.requests.append((request.path, fields))
        sign = fields.pop("sign", None)
        if sign != calculate_signature(fields, self.api_key):
            return self._answer({"return_code": "FAIL", "return_msg": "签名错误"}, signed=False)
        if fields.get("appid") != self.appid or fields.get("mch_id") != self.mch_id:
            return self._answer({"return_code": "FAIL", "return_msg": "appid和mch_id不匹配"}, signed=False)
        return fields

    def _answer(self, data: dict[str, Any], signed: bool = True, **result: Any) -> web.Response:
        if signed:
            data = {"return_code": "SUCCESS", "return_msg": "OK", "appid": self.appid, "mch_id": self.mch_id,
                    "nonce_str": secrets.token_hex(16), "result_code": "SUCCESS", **data, **result}
            data = {k: str(v) for k, v in data.items()}
            body = dict_to_xml(data, calculate_signature(data, self.api_key))
        else:
            body = dict_to_xml(data)
        return web.Response(text=body, content_type="text/xml")

    def _error(self, err_code: str, des: str) -> web.Response:
        return self._answer({}, result_code="FAIL", err_code=err_code, err_code_des=des)

    async def _unifiedorder(self, request: web.Request) -> web.Response:
        f = await self._read(request)
        if isinstance(f, web.Response):
            return f
        missing = [k for k in ("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type")
                   if not f.get(k)]
        if f.get("trade_type") == "NATIVE" and not f.get("product_id"):
            missing.append("product_id")
        if f.get("trade_type") == "JSAPI" and not f.get("openid"):
            missing.append("openid")
        if missing:
            return self._answer({"return_code": "FAIL", "return_msg": f"缺少参数 {','.join(missing)}"}, signed=False)
        trade = self.trades.get(f["out_trade_no"])
        if trade is not None:
            if trade.state != "NOTPAY":
                return self._error("ORDERPAID", "该订单已支付")
            if any(trade.fields.get(k) != f.get(k) for k in SAME_ORDER):
                return self._error("OUT_TRADE_NO_USED", "商户订单号重复")
        else:
            trade = self._new_trade(f["out_trade_no"], f, 2)
        data = {"trade_type": f["trade_type"], "prepay_id": trade.prepay_id}
        return self._answer(data if f["trade_type"] == "JSAPI" else data | {"code_url": trade.code_url})

    def _new_trade(self, out_trade_no: str, fields: dict[str, Any], version: int) -> Trade:
        trade = Trade(out_trade_no, fields, f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}",
                      version=version, prepay_id=f"wx{secrets.token_hex(14)}")
        self.trades[out_trade_no] = trade
        return trade

    async def _orderquery(self, request: web.Request) -> web.Response:
        f = await self._read(request)
        if isinstance(f, web.Response):
            return f
        trade = self.trades.get(f.get("out_trade_no") or "")
        if trade is None:
            return self._error("ORDERNOTEXIST", "此交易订单号不存在")
        data = {"out_trade_no": trade.out_trade_no, "trade_state": trade.state,
                "trade_type": trade.fields.get("trade_type") or "NATIVE",
                "total_fee": trade.fields["total_fee"], "fee_type": trade.fields.get("fee_type") or "CNY"}
        if trade.state != "NOTPAY":
            data |= {"transaction_id": trade.transaction_id, "openid": trade.openid, "time_end": "20260101120000",
                     "cash_fee": trade.fields["total_fee"], "bank_type": "OTHERS"}
        return self._answer(data)

    async def _refund(self, request: web.Request) -> web.Response:
        if self.tls and not request.transport.get_extra_info("peercert"):
            return self._answer({"return_code": "FAIL", "return_msg": "证书错误: no client certificate"},
                                signed=False)
        f = await self._read(request)
        if isinstance(f, web.Response):
            return f
        txn = f.get("transaction_id")
        trade = (next((t for t in self.trades.values() if t.transaction_id == txn), None) if txn
                 else self.trades.get(f.get("out_trade_no") or ""))
        if trade is None or trade.state == "NOTPAY":
            return self._error("ORDERNOTEXIST", "订单不存在")
        if self.refund_errors:
            return self._error(self.refund_errors.pop(0), "injected")
        if int(f["refund_fee"]) > int(f["total_fee"]) or f["total_fee"] != trade.fields["total_fee"]:
            return self._error("INVALID_REQUEST", "退款金额大于支付金额")
        if f["out_refund_no"] not in trade.refunds:  # the same out_refund_no is the same refund
            trade.refunds[f["out_refund_no"]] = {**f, "refund_id": f"50000{next(self._txn):023d}",
                                                 "status": "SUCCESS" if self.instant_refunds else "PROCESSING"}
        first = trade.refunds[f["out_refund_no"]]
        trade.state = "REFUND"
        return self._answer({"transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                             "out_refund_no": f["out_refund_no"], "refund_id": first["refund_id"],
                             "refund_fee": first["refund_fee"], "total_fee": trade.fields["total_fee"],
                             "cash_fee": trade.fields["total_fee"]})

    async def _refundquery(self, request: web.Request) -> web.Response:
        f = await self._read(request)
        if isinstance(f, web.Response):
            return f
        for trade in self.trades.values():
            refund = trade.refunds.get(f.get("out_refund_no") or "")
            if refund is not None:
                return self._answer({"transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                                     "total_fee": trade.fields["total_fee"], "refund_count": 1,
                                     "out_refund_no_0": refund["out_refund_no"], "refund_id_0": refund["refund_id"],
                                     "refund_fee_0": refund["refund_fee"], "refund_status_0": refund["status"]})
        return self._error("REFUNDNOTEXIST", "退款订单查询失败")

    def refund_notice_xml(self, out_refund_no: str, *, status: str = "SUCCESS", api_key: str | None = None,
                          settle: bool = True) -> bytes:
        """The refund result notice WeChat posts to notify_url (settling the refund first, unless told not to).
        `api_key`: encrypt under another key (a forgery)."""
        trade, refund = next((t, t.refunds[out_refund_no]) for t in self.trades.values() if out_refund_no in t.refunds)
        if settle:
            refund["status"] = status
        inner = {"transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                 "refund_id": refund["refund_id"], "out_refund_no": out_refund_no,
                 "total_fee": trade.fields["total_fee"], "refund_fee": refund["refund_fee"],
                 "settlement_refund_fee": refund["refund_fee"], "refund_status": status,
                 "success_time": "2026-01-01 12:00:00", "refund_recv_accout": "支付用户零钱",
                 "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS", "refund_request_source": "API"}
        xml = "<root>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in inner.items()) + "</root>"
        key = hashlib.md5((api_key or self.api_key).encode()).hexdigest().encode()
        req_info = RefundCrypto(key).encrypt(xml).decode()
        outer = {"return_code": "SUCCESS", "appid": self.appid, "mch_id": self.mch_id,
                 "nonce_str": secrets.token_hex(16), "req_info": req_info}
        return dict_to_xml(outer).encode("utf-8")

    def refunds(self) -> list[dict[str, Any]]:
        """Distinct refunds taken (by out_refund_no)."""
        return [r for t in self.trades.values() for r in t.refunds.values()]


    # -- paying as the buyer would (v2 and v3) -------------------------------------------------------
    async def pay_prepay(self, prepay_id: str, openid: str, *, params: dict[str, str] | None = None,
                         notify: bool = True) -> str:
        """The buyer confirms WeChat's pay sheet for a JSAPI prepay_id (see the module docstring). Returns the
        transaction id."""
        trade = next((t for t in self.trades.values() if t.prepay_id == prepay_id and t.fields.get("openid")), None)
        if trade is None:
            raise ValueError(f"no JSAPI trade with prepay_id {prepay_id}")
        if trade.fields["openid"] != openid:
            raise ValueError("this order was made for another WeChat user")
        if params is not None:
            self.check_pay_sign(params)
            if params.get("package") != f"prepay_id={prepay_id}" or params.get("appId") != self.appid:
                raise ValueError("the parameters are for another prepay_id or app")
        txn = self.mark_paid(trade.out_trade_no, openid)
        if notify:
            if trade.version == 3:
                headers, body = self.v3_notice(trade.out_trade_no, openid=openid)
            else:
                headers, body = {"Content-Type": "text/xml"}, self.notify_xml(trade.out_trade_no, openid=openid)
            await self.send(headers, body, trade.fields.get("notify_url", ""))
        return txn

    def check_pay_sign(self, params: dict[str, str]) -> None:
        """What WeChat's client checks before it shows the pay sheet: the paySign (ValueError if wrong)."""
        sign = params.get("paySign", "")
        if params.get("signType") == "MD5":
            fields = {k: params.get(k, "") for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
            if not hmac.compare_digest(sign, calculate_signature(fields, self.api_key)):
                raise ValueError("支付验证签名失败 (MD5)")
            return
        if params.get("signType") != "RSA":
            raise ValueError(f"unknown signType {params.get('signType')!r}")
        message = "".join(f"{params.get(k, '')}\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
        for key in self.merchant_keys.values():
            try:
                key.verify(base64.b64decode(sign), message, padding.PKCS1v15(), hashes.SHA256())
                return
            except (InvalidSignature, ValueError):
                continue
        raise ValueError("支付验证签名失败 (RSA)")

    async def send(self, headers: dict[str, str], body: bytes, url: str = "") -> tuple[int, str]:
        """Post a notice to notify_target (else url) as WeChat would; returns the store's (status, answer)."""
        async with aiohttp.ClientSession() as http, http.post(self.notify_target or url, data=body,
                                                              headers=headers) as r:
            answer = (r.status, await r.text())
        self.notified.append(answer)
        return answer

    # -- API v3 --------------------------------------------------------------------------------------
    @property
    def platform_key(self) -> rsa.RSAPrivateKey:
        """The key WeChat Pay signs v3 answers and notices with (set another to play a man in the middle)."""
        if self._platform_key is None:
            self._platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._platform_key

    @platform_key.setter
    def platform_key(self, key: rsa.RSAPrivateKey) -> None:
        self.platform_cert  # noqa: B018 - the certificate stays the one of the first key
        self._platform_key = key

    @property
    def platform_cert(self) -> x509.Certificate:
        if self._platform_cert is None:
            self._platform_cert = self_signed(self.platform_key, "Tenpay.com Root CA")
        return self._platform_cert

    @property
    def platform_serial(self) -> str:
        return format(self.platform_cert.serial_number, "X")

    @property
    def platform_public_key_pem(self) -> str:
        return self.platform_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def _encrypt(self, plaintext: str, associated_data: str, key: str | None = None) -> dict[str, str]:
        nonce = secrets.token_hex(6)  # 12 characters, used as bytes (as WeChat does)
        data = AESGCM((key or self.apiv3_key).encode()).encrypt(nonce.encode(), plaintext.encode(),
                                                                associated_data.encode())
        return {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce, "associated_data": associated_data,
                "ciphertext": base64.b64encode(data).decode()}

    def _v3_signed(self, body: str, *, sign_key: rsa.RSAPrivateKey | None = None, timestamp: int | None = None
                   ) -> dict[str, str]:
        stamp, nonce = str(int(time.time()) if timestamp is None else timestamp), secrets.token_hex(16)
        signature = (sign_key or self.platform_key).sign(f"{stamp}\n{nonce}\n{body}\n".encode(), padding.PKCS1v15(),
                                                         hashes.SHA256())
        return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": base64.b64encode(signature).decode(),
                "Wechatpay-Serial": self.public_key_id or self.platform_serial,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}

    def _v3_answer(self, data: dict[str, Any] | None, status: int = 200) -> web.Response:
        body = json.dumps(data, ensure_ascii=False) if data is not None else ""
        return web.Response(status=status, text=body or None, content_type="application/json",
                            headers=self._v3_signed(body))

    def _v3_error(self, status: int, code: str, message: str) -> web.Response:
        return self._v3_answer({"code": code, "message": message}, status)

    async def _v3_read(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The merchant's signed request (its JSON body, {} for a GET), or the error answer."""
        body = await request.text()
        self.requests.append((request.path, json.loads(body) if body else dict(request.query)))
        auth = request.headers.get("Authorization", "")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', auth))
        key = self.merchant_keys.get(fields.get("serial_no", ""))
        if not auth.startswith("WECHATPAY2-SHA256-RSA2048 ") or key is None or fields.get("mchid") != self.mch_id:
            return self._v3_error(401, "SIGN_ERROR", "商户证书序列号或商户号错误")
        if abs(time.time() - int(fields.get("timestamp") or 0)) > 300:
            return self._v3_error(401, "SIGN_ERROR", "请求时间戳过期")
        message = f"{request.method}\n{request.raw_path}\n{fields['timestamp']}\n{fields.get('nonce_str')}\n{body}\n"
        try:
            key.verify(base64.b64decode(fields.get("signature", "")), message.encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except (InvalidSignature, ValueError):
            return self._v3_error(401, "SIGN_ERROR", "签名错误")
        return json.loads(body) if body else {}

    async def _v3_certificates(self, request: web.Request) -> web.Response:
        f = await self._v3_read(request)
        if isinstance(f, web.Response):
            return f
        pem = self.platform_cert.public_bytes(serialization.Encoding.PEM).decode()
        return self._v3_answer({"data": [{
            "serial_no": self.platform_serial,
            "effective_time": self.platform_cert.not_valid_before_utc.isoformat(),
            "expire_time": self.platform_cert.not_valid_after_utc.isoformat(),
            "encrypt_certificate": self._encrypt(pem, "certificate")}]})

    async def _v3_pay(self, request: web.Request) -> web.Response:
        f = await self._v3_read(request)
        if isinstance(f, web.Response):
            return f
        kind = request.match_info["kind"].upper()
        amount, payer = f.get("amount") or {}, f.get("payer") or {}
        missing = [k for k in ("appid", "mchid", "description", "out_trade_no", "notify_url") if not f.get(k)]
        if not isinstance(amount.get("total"), int):
            missing.append("amount.total")
        if kind == "JSAPI" and not payer.get("openid"):
            missing.append("payer.openid")
        if missing:
            return self._v3_error(400, "PARAM_ERROR", f"缺少参数 {','.join(missing)}")
        if f["appid"] != self.appid or f["mchid"] != self.mch_id:
            return self._v3_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        # The trade kept in v2 field names, so orderquery, refunds and notices work for both versions.
        fields = {"appid": f["appid"], "mch_id": f["mchid"], "body": f["description"],
                  "out_trade_no": f["out_trade_no"], "total_fee": str(amount["total"]),
                  "fee_type": amount.get("currency") or "CNY", "trade_type": kind, "notify_url": f["notify_url"],
                  "time_expire": f.get("time_expire"), **({"openid": payer["openid"]} if kind == "JSAPI" else {})}
        trade = self.trades.get(f["out_trade_no"])
        if trade is not None:
            if trade.state != "NOTPAY":
                return self._v3_error(403, "ORDERPAID", "该订单已支付")
            if any(trade.fields.get(k) != fields.get(k) for k in (*SAME_ORDER, "openid")):
                return self._v3_error(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        else:
            trade = self._new_trade(f["out_trade_no"], fields, 3)
        return self._v3_answer({"prepay_id": trade.prepay_id} if kind == "JSAPI" else {"code_url": trade.code_url})

    def _v3_transaction(self, trade: Trade) -> dict[str, Any]:
        total = int(trade.fields["total_fee"])
        data: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mch_id, "out_trade_no": trade.out_trade_no,
            "trade_type": trade.fields.get("trade_type") or "NATIVE", "trade_state": trade.state,
            "trade_state_desc": {"NOTPAY": "未支付", "SUCCESS": "支付成功", "REFUND": "转入退款"}[trade.state],
            "amount": {"total": total, "currency": trade.fields.get("fee_type") or "CNY"}}
        if trade.state != "NOTPAY":
            data |= {"transaction_id": trade.transaction_id, "bank_type": "OTHERS", "payer": {"openid": trade.openid},
                     "success_time": "2026-01-01T12:00:00+08:00",
                     "amount": data["amount"] | {"payer_total": total, "payer_currency": "CNY"}}
        return data

    async def _v3_query(self, request: web.Request) -> web.Response:
        f = await self._v3_read(request)
        if isinstance(f, web.Response):
            return f
        if request.query.get("mchid") != self.mch_id:
            return self._v3_error(400, "PARAM_ERROR", "mchid")
        trade = self.trades.get(request.match_info["no"])
        if trade is None:
            return self._v3_error(404, "ORDER_NOT_EXIST", "订单不存在")
        return self._v3_answer(self._v3_transaction(trade))

    def _v3_refund_of(self, trade: Trade, refund: dict[str, Any]) -> dict[str, Any]:
        return {"refund_id": refund["refund_id"], "out_refund_no": refund["out_refund_no"],
                "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no, "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱", "status": refund["status"],
                "create_time": "2026-01-01T12:00:00+08:00",
                "amount": {"total": int(trade.fields["total_fee"]), "refund": int(refund["refund_fee"]),
                           "payer_total": int(trade.fields["total_fee"]), "payer_refund": int(refund["refund_fee"]),
                           "currency": "CNY"}}

    async def _v3_refund(self, request: web.Request) -> web.Response:
        f = await self._v3_read(request)
        if isinstance(f, web.Response):
            return f
        txn, amount = f.get("transaction_id"), f.get("amount") or {}
        trade = (next((t for t in self.trades.values() if t.transaction_id == txn), None) if txn
                 else self.trades.get(f.get("out_trade_no") or ""))
        if trade is None or trade.state == "NOTPAY":
            return self._v3_error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if self.refund_errors:
            return self._v3_error(403, self.refund_errors.pop(0), "injected")
        if (not f.get("out_refund_no") or amount.get("total") != int(trade.fields["total_fee"])
                or not isinstance(amount.get("refund"), int) or amount["refund"] > amount["total"]):
            return self._v3_error(400, "INVALID_REQUEST", "退款金额大于支付金额")
        if f["out_refund_no"] not in trade.refunds:
            trade.refunds[f["out_refund_no"]] = {
                "out_refund_no": f["out_refund_no"], "transaction_id": trade.transaction_id,
                "out_trade_no": trade.out_trade_no, "refund_fee": str(amount["refund"]),
                "total_fee": str(amount["total"]), "refund_desc": f.get("reason", ""),
                "notify_url": f.get("notify_url", ""), "refund_id": f"50000{next(self._txn):023d}",
                "status": "SUCCESS" if self.instant_refunds else "PROCESSING"}
        trade.state = "REFUND"
        return self._v3_answer(self._v3_refund_of(trade, trade.refunds[f["out_refund_no"]]))

    async def _v3_refund_query(self, request: web.Request) -> web.Response:
        f = await self._v3_read(request)
        if isinstance(f, web.Response):
            return f
        for trade in self.trades.values():
            refund = trade.refunds.get(request.match_info["no"])
            if refund is not None:
                return self._v3_answer(self._v3_refund_of(trade, refund))
        return self._v3_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")

    def _v3_event(self, event_type: str, summary: str, resource: dict[str, Any], original_type: str, *,
                  sign_key: rsa.RSAPrivateKey | None, tamper: bool, timestamp: int | None, apiv3_key: str | None
                  ) -> tuple[dict[str, str], bytes]:
        encrypted = self._encrypt(json.dumps(resource, ensure_ascii=False), original_type, apiv3_key)
        if tamper:  # one byte of the ciphertext changed; the notice is then signed as it is
            raw = bytearray(base64.b64decode(encrypted["ciphertext"]))
            raw[0] ^= 0x01
            encrypted["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        doc = {"id": str(uuid.uuid4()), "create_time": "2026-01-01T12:00:00+08:00", "resource_type": "encrypt-resource",
               "event_type": event_type, "summary": summary, "resource": {"original_type": original_type, **encrypted}}
        body = json.dumps(doc, ensure_ascii=False)
        headers = {"Content-Type": "application/json"} | self._v3_signed(body, sign_key=sign_key, timestamp=timestamp)
        return headers, body.encode()

    def v3_notice(self, out_trade_no: str, *, total: int | None = None, mchid: str | None = None,
                  appid: str | None = None, openid: str = "o-payer", transaction_id: str | None = None,
                  sign_key: rsa.RSAPrivateKey | None = None, tamper: bool = False, timestamp: int | None = None,
                  apiv3_key: str | None = None) -> tuple[dict[str, str], bytes]:
        """The TRANSACTION.SUCCESS notice WeChat posts for a paid trade (marked paid first when this fake made it)."""
        trade = self.trades.get(out_trade_no)
        if trade is not None:
            self.mark_paid(out_trade_no, openid)
            resource = self._v3_transaction(trade)
        else:
            txn = transaction_id or f"42000{next(self._txn):023d}"
            resource = {"appid": self.appid, "mchid": self.mch_id, "out_trade_no": out_trade_no,
                        "transaction_id": txn, "trade_type": "NATIVE", "trade_state": "SUCCESS",
                        "payer": {"openid": openid}, "amount": {"total": total or 0, "currency": "CNY"}}
        if total is not None:
            resource["amount"] = resource["amount"] | {"total": total, "payer_total": total}
        resource |= {k: v for k, v in (("mchid", mchid), ("appid", appid), ("transaction_id", transaction_id)) if v}
        return self._v3_event("TRANSACTION.SUCCESS", "支付成功", resource, "transaction", sign_key=sign_key,
                              tamper=tamper, timestamp=timestamp, apiv3_key=apiv3_key)

    def v3_refund_notice(self, out_refund_no: str, *, status: str = "SUCCESS", settle: bool = True,
                         sign_key: rsa.RSAPrivateKey | None = None) -> tuple[dict[str, str], bytes]:
        """The REFUND.<status> notice (settling the refund first, unless told not to)."""
        trade, refund = next((t, t.refunds[out_refund_no]) for t in self.trades.values() if out_refund_no in t.refunds)
        if settle:
            refund["status"] = status
        resource = self._v3_refund_of(trade, refund) | {"mchid": self.mch_id, "refund_status": status}
        return self._v3_event(f"REFUND.{status}", "退款成功", resource, "refund", sign_key=sign_key, tamper=False,
                              timestamp=None, apiv3_key=None)
