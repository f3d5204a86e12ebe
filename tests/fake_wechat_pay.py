"""A local fake of the WeChat Pay API v2 server, for tests and benchmarks (aiohttp on 127.0.0.1, any port).

It speaks the protocol as wechatpy sends it: XML bodies signed with MD5 over the sorted `k=v` pairs plus
`key=<api key>` (wechatpy's own calculate_signature), signed XML answers. Endpoints (the paths wechatpy adds to
API_BASE_URL):

- `POST /pay/unifiedorder` -> `code_url`. A repeat with the same out_trade_no and the same parameters gets the
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
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import itertools
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmltodict
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from wechatpy.crypto import RefundCrypto
from wechatpy.pay.utils import calculate_signature, dict_to_xml

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
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # out_refund_no -> request fields


class FakeWeChatPay:
    def __init__(self, appid: str, mch_id: str, api_key: str, *, tls: tuple[Path, Path, Path] | None = None
                 ) -> None:
        """tls: (server cert, server key, client CA) to serve HTTPS and check merchant certificates."""
        self.appid, self.mch_id, self.api_key = appid, mch_id, api_key
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
            "trade_type": "NATIVE", "bank_type": "OTHERS", "total_fee": str(fee), "cash_fee": str(fee),
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
        if missing:
            return self._answer({"return_code": "FAIL", "return_msg": f"缺少参数 {','.join(missing)}"}, signed=False)
        trade = self.trades.get(f["out_trade_no"])
        if trade is not None:
            if trade.state != "NOTPAY":
                return self._error("ORDERPAID", "该订单已支付")
            if any(trade.fields.get(k) != f.get(k) for k in SAME_ORDER):
                return self._error("OUT_TRADE_NO_USED", "商户订单号重复")
        else:
            trade = Trade(f["out_trade_no"], f, f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}")
            self.trades[trade.out_trade_no] = trade
        return self._answer({"trade_type": "NATIVE", "prepay_id": f"wx{trade.out_trade_no}",
                             "code_url": trade.code_url})

    async def _orderquery(self, request: web.Request) -> web.Response:
        f = await self._read(request)
        if isinstance(f, web.Response):
            return f
        trade = self.trades.get(f.get("out_trade_no") or "")
        if trade is None:
            return self._error("ORDERNOTEXIST", "此交易订单号不存在")
        data = {"out_trade_no": trade.out_trade_no, "trade_state": trade.state, "trade_type": "NATIVE",
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


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (usable as its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
