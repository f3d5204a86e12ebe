"""The `store` supplier: this store buying from ANOTHER instance of this store through its B2B API (/api/v1).

Shops chain: the upstream store made us a reseller (`run.py reseller add` and `reseller key` there) and gave us a
key id and secret; every request is signed like core/signing.py says (`signed_headers`: key id, timestamp,
nonce, body hash and the Idempotency-Key). Purchases and top-ups are `POST /api/v1/orders` with our request id as
the Idempotency-Key, so a retry after a timeout or a lost answer gets the same order and the same codes, never a
second purchase; a top-up's later status is read with `GET /api/v1/orders?idempotency_key=<request id>`.

A call is tried 1 + `retries` times on timeouts, connection errors, 5xx, 429 and a refused nonce (each attempt
has a fresh timestamp and nonce, the same Idempotency-Key), waiting `backoff` seconds (doubling). The upstream
store's error codes (sold_out, insufficient_funds, bad_signature, ...) are final: SupplierError with that code.
Codes go from the answer straight to the caller (core/supply/desk.py puts them into the vault); they never reach
the log or an exception.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from config.settings import Supplier as SupplierConf
from core.errors import SupplierError
from core.ports import SupplierProduct, TopupResult
from core.signing import PREFIX, signed_headers

log = logging.getLogger(__name__)

# upstream error codes a later attempt of the same request may get past
_RETRY_CODES = frozenset({"rate_limited", "replayed_nonce", "internal"})
# upstream error codes that mean our key or clock is wrong: the merchant must act, not the buyer's order
_AUTH_CODES = frozenset({"missing_auth", "bad_timestamp", "stale_timestamp", "unknown_key", "bad_signature"})
_TOPUP_STATUS = {"delivered": "done", "pending": "pending", "refunding": "failed", "refunded": "failed"}


class StoreSupplier:
    """core.ports.Supplier over another store's signed B2B API."""

    def __init__(self, name: str, conf: SupplierConf) -> None:
        self.name = name
        self.conf = conf
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0  # HTTP requests made (attempts included)

    # -- the port -----------------------------------------------------------------------------------
    async def balance(self) -> int:
        """What we can spend upstream: the wallet balance plus its credit limit (minor units)."""
        data = await self._call("GET", "/balance", op="balance")
        return self._int(data.get("available"), "balance")

    async def products(self) -> list[SupplierProduct]:
        data = await self._call("GET", "/products", op="products")
        items = data.get("products")
        if not isinstance(items, list):
            raise SupplierError("the product list is not a list", retryable=False, supplier=self.name)
        return [SupplierProduct(str(it.get("sku", "")), str(it.get("title", "")), self._int(it.get("price"), "price"),
                                it.get("available") if isinstance(it.get("available"), int) else None)
                for it in items if isinstance(it, dict)]

    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
        order = await self._order({"sku": supplier_sku, "qty": qty}, request_id, "buy")
        status = order.get("status")
        if status == "pending":  # the upstream store is buying from its own supplier: ask again later
            raise SupplierError("the purchase is still being processed upstream", retryable=True,
                                supplier=self.name)
        if status != "delivered":
            raise SupplierError(f"the upstream order {order.get('id')} is {status}", retryable=False,
                                supplier=self.name, code=str(status))
        codes = order.get("codes")
        if not isinstance(codes, list) or not all(isinstance(c, str) and c.strip() and len(c) <= 512 for c in codes):
            raise SupplierError("the upstream store sent malformed codes", retryable=False, supplier=self.name)
        if len(codes) != qty:
            raise SupplierError(f"the upstream store delivered {len(codes)} codes for {qty} bought", retryable=False,
                                supplier=self.name)
        return [c.strip() for c in codes]

    async def topup(self, supplier_sku: str, account: str, request_id: str) -> TopupResult:
        return self._topup_result(request_id, await self._order({"sku": supplier_sku, "account": account},
                                                                request_id, "topup"))

    async def topup_status(self, request_id: str) -> TopupResult:
        data = await self._call("GET", "/orders?idempotency_key=" + quote(request_id, safe=""), op="query")
        return self._topup_result(request_id, self._order_of(data))

    async def check_code(self, supplier_sku: str, code: str) -> str:
        return "unknown"  # the B2B API has no code check

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the wire -------------------------------------------------------------------------------------
    async def _order(self, body: dict[str, Any], request_id: str, op: str) -> dict[str, Any]:
        data = await self._call("POST", "/orders", body, op=op, idempotency_key=request_id)
        return self._order_of(data)

    def _order_of(self, data: dict[str, Any]) -> dict[str, Any]:
        order = data.get("order")
        if not isinstance(order, dict):
            raise SupplierError("the answer carries no order", retryable=True, supplier=self.name)
        return order

    def _topup_result(self, request_id: str, order: dict[str, Any]) -> TopupResult:
        status = _TOPUP_STATUS.get(str(order.get("status")), "pending")
        return TopupResult(request_id, status, str(order.get("id", "")),
                           f"upstream order {order.get('status')}" if status == "failed" else "")

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.conf.timeout))
        return self._session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, op: str,
                    idempotency_key: str | None = None) -> dict[str, Any]:
        """One signed call, retried on transport trouble. Returns the JSON answer; raises SupplierError."""
        c = self.conf
        path_qs = PREFIX + path
        url = URL(c.base_url.rstrip("/") + path_qs, encoded=True)
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        delay = c.backoff
        last = ""
        for attempt in range(c.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            # a fresh timestamp and nonce each attempt; the same Idempotency-Key, signed with them
            h = signed_headers(c.key_id, c.secret.get_secret_value(), method, path_qs, raw,
                               idempotency_key=idempotency_key)
            if raw:
                h["Content-Type"] = "application/json"
            self.calls += 1
            try:
                async with self._session_now().request(method, url, data=raw or None, headers=h) as resp:
                    status = resp.status
                    payload = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__} calling {op}"
                log.warning("supplier %s: %s (attempt %d)", self.name, last, attempt + 1)
                continue
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                if 400 <= status < 500 and status != 429:  # not the B2B API answering: a wrong base_url
                    raise SupplierError(f"HTTP {status} from {op} without an API answer: is suppliers.{self.name}"
                                        ".base_url the other store's server?", retryable=False, supplier=self.name,
                                        code=f"http_{status}")
                last = f"HTTP {status} with an unreadable answer from {op}"
                log.warning("supplier %s: %s (attempt %d)", self.name, last, attempt + 1)
                continue
            if status < 400:
                return answer
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            code = str(error.get("code") or f"http_{status}")
            if code in _RETRY_CODES or status >= 500:
                last = f"{op} refused for now: {code} (HTTP {status})"
                log.warning("supplier %s: %s (attempt %d)", self.name, last, attempt + 1)
                continue
            if code in _AUTH_CODES:
                raise SupplierError(f"the upstream store refused our API key ({code}): check suppliers.{self.name}"
                                    ".key_id, secret and this machine's clock", retryable=False,
                                    supplier=self.name, code=code)
            raise SupplierError(f"{op} refused: {code}", retryable=False, supplier=self.name, code=code)
        raise SupplierError(last or f"{op} failed", retryable=True, supplier=self.name)

    def _int(self, value: Any, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SupplierError(f"the {what} is not an integer", retryable=False, supplier=self.name)
        return value
