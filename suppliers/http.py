"""The `http` supplier: a signed JSON/form HTTP API in the common style of Chinese card suppliers (卡密/直充 货源).

Every request carries the app key, a timestamp (Unix seconds), a nonce and `sign`: the non-empty parameters
except `sign`, sorted by name, joined as `k=v&k=v`, then
- md5: MD5 of that string plus `&key=<secret>` (`sign_key_param: ""`: plus the secret as is), hex;
- hmac-sha256: HMAC-SHA256 of that string with the secret as key, hex;
upper case unless `sign_case: lower`. Paths and parameter/answer names come from the config
(config/settings/suppliers.py SupplierPaths, SupplierFields, SupplierAnswer). Answers are JSON:
`{code, msg, data}` by default.

A call is tried 1 + `retries` times on timeouts, connection errors, 5xx and unreadable answers, waiting
`backoff` seconds (doubling) in between; every attempt of a purchase or top-up carries the same request id, so
the supplier never books it twice (a supplier that refuses a used request id — `answer.duplicate` — is asked
for that order instead). Codes never reach the log or an exception.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import aiohttp

from config.settings import Supplier as SupplierConf
from core.errors import SupplierError
from core.ports import SupplierProduct, TopupResult

log = logging.getLogger(__name__)


def sign_string(params: Mapping[str, Any], sign_field: str = "sign") -> str:
    """The canonical string: non-empty parameters except the signature, sorted by name, `k=v` joined by `&`."""
    items = sorted((k, _text(v)) for k, v in params.items() if k != sign_field and _text(v) != "")
    return "&".join(f"{k}={v}" for k, v in items)


def make_sign(params: Mapping[str, Any], secret: str, method: str = "md5", *, case: str = "upper",
              key_param: str = "key", sign_field: str = "sign") -> str:
    base = sign_string(params, sign_field)
    if method == "md5":
        tail = f"&{key_param}={secret}" if key_param else secret
        digest = hashlib.md5((base + tail).encode()).hexdigest()  # noqa: S324 - the suppliers' protocol
    else:
        digest = hmac.new(secret.encode(), base.encode(), hashlib.sha256).hexdigest()
    return digest.upper() if case == "upper" else digest.lower()


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(v)


class _Duplicate(Exception):
    """The supplier says this request id was used: ask for that order instead."""


class HttpSupplier:
    def __init__(self, name: str, conf: SupplierConf, *, currency_digits: int = 2) -> None:
        self.name = name
        self.conf = conf
        self.digits = currency_digits
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0  # HTTP requests made (attempts included): benchmarks and alerts read it

    # -- the port -----------------------------------------------------------------------------------
    async def balance(self) -> int:
        data = await self._call("balance", {})
        return self._money(self._get(data, self.conf.answer.balance), "balance")

    async def products(self) -> list[SupplierProduct]:
        a = self.conf.answer
        data = await self._call("products", {})
        items = self._get(data, a.products)
        if not isinstance(items, list):
            raise SupplierError("the product list is not a list", retryable=False, supplier=self.name)
        out = []
        for it in items:
            if not isinstance(it, Mapping):
                continue
            stock = it.get(a.product_stock)
            out.append(SupplierProduct(_text(it.get(a.product_sku)), _text(it.get(a.product_title)),
                                       self._money(it.get(a.product_price), "price"),
                                       int(stock) if _is_int(stock) else None))
        return out

    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
        f = self.conf.fields
        try:
            data = await self._call("buy", {f.sku: supplier_sku, f.qty: qty, f.request_id: request_id})
        except _Duplicate:
            data = await self._query(request_id)
        status = self._status(data)
        if status == "pending":
            raise SupplierError("the purchase is still being processed", retryable=True, supplier=self.name)
        if status == "failed":
            raise SupplierError(f"the purchase failed ({self._message(data)})", retryable=False,
                                supplier=self.name)
        codes = self._codes(data)
        if len(codes) != qty:
            # Not retried: the same request id gets the same answer. Counted, never shown.
            raise SupplierError(f"the supplier delivered {len(codes)} codes for {qty} bought", retryable=False,
                                supplier=self.name)
        return codes

    async def topup(self, supplier_sku: str, account: str, request_id: str) -> TopupResult:
        f = self.conf.fields
        params: dict[str, Any] = {f.sku: supplier_sku, f.account: account, f.request_id: request_id}
        if self.conf.callback_url:
            params[f.callback_url] = self.conf.callback_url
        try:
            data = await self._call("topup", params)
        except _Duplicate:
            data = await self._query(request_id)
        return self._topup_result(request_id, data, default="pending")

    async def topup_status(self, request_id: str) -> TopupResult:
        return self._topup_result(request_id, await self._query(request_id), default="pending")

    async def check_code(self, supplier_sku: str, code: str) -> str:
        if not self.conf.paths.check:
            return "unknown"
        f, a = self.conf.fields, self.conf.answer
        data = await self._call("check", {f.sku: supplier_sku, f.code: code})
        value = _text(self._get(data, a.status))
        for status in ("valid", "used", "invalid"):
            if value in getattr(a, status):
                return status
        return "unknown"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- callbacks ------------------------------------------------------------------------------------
    def parse_callback(self, body: bytes, content_type: str = "", *, now: float | None = None) -> TopupResult:
        """A top-up result the supplier posted to us. Raises SupplierError (not retryable) when the signature is
        missing or wrong (code `bad_signature`), the timestamp is missing or further than `callback_max_skew`
        seconds from `now` (code `stale_timestamp`), or the body is not a flat form/JSON object."""
        params = self._flat(body, content_type)
        f, a = self.conf.fields, self.conf.answer
        given = _text(params.get(f.sign))
        if not given or not self.verify(params):
            raise SupplierError("callback signature missing or wrong", retryable=False, supplier=self.name,
                                code="bad_signature")
        window = self.conf.callback_max_skew
        if window:
            # A signed callback caught on the way (a proxy's log) must not be played back later.
            ts = _text(params.get(f.timestamp))
            if not re.fullmatch(r"[0-9]{1,13}", ts):
                raise SupplierError("callback without a timestamp", retryable=False, supplier=self.name,
                                    code="stale_timestamp")
            seconds = int(ts) / 1000 if len(ts) == 13 else int(ts)
            if abs((time.time() if now is None else now) - seconds) > window:
                raise SupplierError(f"callback timestamp {ts} is more than {window} s from the store's clock",
                                    retryable=False, supplier=self.name, code="stale_timestamp")
        request_id = _text(params.get(a.request_id) or params.get(f.request_id))
        if not request_id:
            raise SupplierError("callback without a request id", retryable=False, supplier=self.name)
        return self._topup_result(request_id, params, default="pending")

    def verify(self, params: Mapping[str, Any]) -> bool:
        c = self.conf
        expected = make_sign(params, c.secret.get_secret_value(), c.sign, case=c.sign_case,
                             key_param=c.sign_key_param, sign_field=c.fields.sign)
        return hmac.compare_digest(expected.lower(), _text(params.get(c.fields.sign)).lower())

    @staticmethod
    def _flat(body: bytes, content_type: str) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SupplierError("callback body is not UTF-8", retryable=False) from None
        if "json" in content_type or text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
                raise SupplierError("callback body is not JSON", retryable=False) from None
            if not isinstance(data, dict):
                raise SupplierError("callback body is not an object", retryable=False)
            return data
        return dict(parse_qsl(text, keep_blank_values=True))

    # -- the wire -------------------------------------------------------------------------------------
    def _signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        c, f = self.conf, self.conf.fields
        out: dict[str, Any] = {f.app_key: c.app_key, f.timestamp: int(time.time()), f.nonce: secrets.token_hex(8),
                               **params}
        out[f.sign] = make_sign(out, c.secret.get_secret_value(), c.sign, case=c.sign_case,
                                key_param=c.sign_key_param, sign_field=f.sign)
        return out

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.conf.timeout))
        return self._session

    async def _call(self, op: str, params: Mapping[str, Any]) -> Any:
        """One operation, retried on transport trouble. Returns the answer's data; raises SupplierError."""
        c = self.conf
        path = getattr(c.paths, op)
        if not path:
            raise SupplierError(f"{op} is not offered by this supplier (paths.{op} is empty)", retryable=False,
                                supplier=self.name)
        url = c.base_url.rstrip("/") + "/" + path.lstrip("/")
        delay = c.backoff
        last = ""
        for attempt in range(c.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            body = self._signed(params)  # a fresh timestamp and nonce; the same request id
            self.calls += 1
            try:
                session = self._session_now()
                kw = {"json": body} if c.body == "json" else {"data": {k: _text(v) for k, v in body.items()}}
                async with session.post(url, **kw) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__} calling {op}"
                log.warning("supplier %s: %s (attempt %d)", self.name, last, attempt + 1)
                continue
            if status >= 500 or status == 429:
                last = f"HTTP {status} from {op}"
                log.warning("supplier %s: %s (attempt %d)", self.name, last, attempt + 1)
                continue
            if status >= 400:
                raise SupplierError(f"HTTP {status} from {op}", retryable=False, supplier=self.name)
            try:
                answer = json.loads(raw)
            except ValueError:
                last = f"an unreadable answer from {op}"
                continue
            return self._unwrap(op, answer)
        raise SupplierError(last or f"{op} failed", retryable=True, supplier=self.name)

    def _unwrap(self, op: str, answer: Any) -> Any:
        a = self.conf.answer
        if not isinstance(answer, Mapping):
            raise SupplierError(f"the answer to {op} is not an object", retryable=True, supplier=self.name)
        code = _text(answer.get(a.code))
        if code in a.ok:
            return answer.get(a.data) if a.data else answer
        if code in a.duplicate:
            raise _Duplicate()
        message = _text(answer.get(a.message))[:200]
        raise SupplierError(f"{op} refused: {code} {message}".strip(), retryable=code in a.retry,
                            supplier=self.name, code=code)

    async def _query(self, request_id: str) -> Any:
        try:
            return await self._call("query", {self.conf.fields.request_id: request_id})
        except _Duplicate:
            raise SupplierError("query answered 'duplicate'", retryable=False, supplier=self.name) from None

    # -- reading answers ------------------------------------------------------------------------------
    @staticmethod
    def _get(data: Any, key: str) -> Any:
        return data.get(key) if isinstance(data, Mapping) else None

    def _message(self, data: Any) -> str:
        return _text(self._get(data, self.conf.answer.message) or self._get(data, "msg"))[:200]

    def _status(self, data: Any) -> str:
        """done | pending | failed, or "" when the answer carries no status."""
        a = self.conf.answer
        value = self._get(data, a.status)
        if value is None:
            return ""
        text = _text(value)
        for status in ("done", "pending", "failed"):
            if text in getattr(a, status):
                return status
        return "unknown"

    def _topup_result(self, request_id: str, data: Any, default: str) -> TopupResult:
        status = self._status(data)
        if status in ("", "unknown"):
            status = default
        return TopupResult(request_id, status, _text(self._get(data, self.conf.answer.upstream_id)),
                           self._message(data) if status == "failed" else "")

    def _codes(self, data: Any) -> list[str]:
        a = self.conf.answer
        items = self._get(data, a.codes)
        if items is None:
            return []
        if not isinstance(items, list):
            raise SupplierError("the codes are not a list", retryable=False, supplier=self.name)
        out = []
        for it in items:
            if isinstance(it, Mapping):
                parts = [_text(it.get(k)) for k in a.card_fields] if a.card_fields else [_text(v) for v in it.values()]
                code = " ".join(p for p in parts if p)
            else:
                code = _text(it)
            code = code.strip()
            if not code or len(code) > 512 or any(ord(ch) < 32 and ch != "\t" for ch in code):
                raise SupplierError("the supplier sent an empty or malformed code", retryable=False,
                                    supplier=self.name)
            out.append(code)
        return out

    def _money(self, value: Any, what: str) -> int:
        try:
            amount = Decimal(_text(value))
        except InvalidOperation:
            raise SupplierError(f"the {what} is not a number", retryable=False, supplier=self.name) from None
        if self.conf.amounts == "yuan":
            amount = amount.scaleb(self.digits)
        return int(amount.to_integral_value())


def _is_int(v: Any) -> bool:
    try:
        int(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, bool)
