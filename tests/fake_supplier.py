"""A local fake card supplier (货源) for tests: aiohttp on 127.0.0.1, any port, speaking the store's default
`http` supplier protocol (config/settings.py SupplierPaths/SupplierFields/SupplierAnswer defaults).

Every request must be signed (suppliers/http.py make_sign with this server's secret); a wrong or missing
signature is answered `{"code": "40001"}` and counted in `bad_signatures`. Purchases and top-ups are idempotent
by request id, as real suppliers are: the same request id gets the same codes and is bought once
(`purchases` counts real purchases per request id). With `duplicate_error=True` a used request id is refused
with code 30001 instead (the client then asks /api/query).

Faults, consumed one per request in order by path: `faults["/api/buy"] = ["500", "slow", "timeout", "lose"]`.
- "500": answers HTTP 500 without doing anything;
- "slow": answers after `slow_seconds` (less than the client's timeout);
- "timeout": waits `hang_seconds` (past the client's timeout) and then does nothing;
- "lose": does the work, then waits `hang_seconds`: the answer is lost (the client times out and retries).
`refuse["/api/buy"] = ["50001"]` answers a business error code once per entry (no purchase).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import ClientSession, web

from suppliers.http import make_sign


@dataclass
class Upstream:
    request_id: str
    kind: str  # buy | topup
    sku: str
    qty: int = 1
    account: str = ""
    codes: list[str] = field(default_factory=list)
    status: str = "success"  # success | processing | failed
    order_no: str = ""
    notify_url: str = ""


class FakeSupplier:
    def __init__(self, app_key: str = "shop-1", secret: str = "s3cret", *, sign: str = "md5",
                 body: str = "form") -> None:
        self.app_key, self.secret, self.sign, self.body = app_key, secret, sign, body
        self.catalog: dict[str, dict[str, Any]] = {
            "SUP-GAME-10": {"name": "Game card 10", "price": "8.50", "stock": 1000},
            "SUP-CM-30": {"name": "China Mobile 30", "price": "29.40", "stock": None},
        }
        self.balance = 100_000  # fen
        self.orders: dict[str, Upstream] = {}
        self.purchases: dict[str, int] = {}  # request id -> times the goods were actually bought
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.bad_signatures = 0
        self.faults: dict[str, list[str]] = {}
        self.refuse: dict[str, list[str]] = {}
        self.topup_status = "processing"  # what a new top-up answers: processing | success | failed
        self.buy_status = "success"
        self.duplicate_error = False
        self.slow_seconds = 0.2
        self.hang_seconds = 2.0
        self.used_codes: set[str] = set()
        self._n = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.clock: Callable[[], float] = time.time  # the callbacks' timestamps

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, **over: Any) -> dict[str, Any]:
        """The store's `suppliers.<name>` entry for this server."""
        return {"type": "http", "base_url": self.base_url, "app_key": self.app_key, "secret": self.secret,
                "sign": self.sign, "body": self.body, "timeout": 1, "retries": 2, "backoff": 0.05,
                "paths": {"check": "/api/check"}, "answer": {"duplicate": ["30001"]}, **over}

    async def start(self) -> FakeSupplier:
        app = web.Application()
        for path in ("/api/balance", "/api/products", "/api/buy", "/api/topup", "/api/query", "/api/check"):
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the API ------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        raw = await request.read()
        params: dict[str, Any] = (json.loads(raw) if request.content_type == "application/json"
                                  else dict(parse_qsl(raw.decode(), keep_blank_values=True)))
        self.requests.append((path, params))
        fault = self.faults.get(path, []).pop(0) if self.faults.get(path) else ""
        if fault == "500":
            return web.Response(status=500, text="upstream error")
        if fault == "timeout":
            await asyncio.sleep(self.hang_seconds)
            return web.json_response({"code": "0", "data": {}})
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        if params.get("app_key") != self.app_key or params.get("sign") != make_sign(params, self.secret, self.sign):
            self.bad_signatures += 1
            return web.json_response({"code": "40001", "msg": "sign error"})
        if self.refuse.get(path):
            return web.json_response({"code": self.refuse[path].pop(0), "msg": "refused"})
        answer = self._answer(path, params)
        if fault == "lose":
            await asyncio.sleep(self.hang_seconds)
        return web.json_response(answer)

    def _answer(self, path: str, p: dict[str, Any]) -> dict[str, Any]:
        if path == "/api/balance":
            return ok({"balance": f"{self.balance / 100:.2f}"})
        if path == "/api/products":
            return ok({"list": [{"sku": k, **v} for k, v in self.catalog.items()]})
        if path in ("/api/buy", "/api/topup"):
            rid = p["request_id"]
            if rid in self.orders:
                if self.duplicate_error:
                    return {"code": "30001", "msg": "duplicate out_trade_no"}
                return ok(self._view(self.orders[rid]))
            if p["sku"] not in self.catalog:
                return {"code": "20001", "msg": "no such goods"}
            kind = "buy" if path == "/api/buy" else "topup"
            up = Upstream(rid, kind, p["sku"], int(p.get("qty", 1)), p.get("account", ""),
                          order_no=f"UP{next(self._n):06d}", notify_url=p.get("notify_url", ""),
                          status=self.buy_status if kind == "buy" else self.topup_status)
            if kind == "buy" and up.status == "success":
                up.codes = [f"SUP-{secrets.token_hex(6).upper()}" for _ in range(up.qty)]
            self.orders[rid] = up
            self.purchases[rid] = self.purchases.get(rid, 0) + 1
            return ok(self._view(up))
        if path == "/api/query":
            up = self.orders.get(p["request_id"])
            if up is None:
                return {"code": "20004", "msg": "order not found"}
            return ok(self._view(up))
        if path == "/api/check":
            code = p["code"]
            known = any(code in o.codes for o in self.orders.values())
            return ok({"status": "used" if code in self.used_codes else "valid" if known else "invalid"})
        return {"code": "404", "msg": "unknown"}

    @staticmethod
    def _view(up: Upstream) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": up.request_id, "order_no": up.order_no, "status": up.status}
        if up.kind == "buy":
            out["cards"] = list(up.codes)
        return out

    # -- callbacks ----------------------------------------------------------------------------------
    def finish(self, request_id: str, status: str) -> None:
        """The top-up (or purchase) finished upstream: `success` or `failed`."""
        up = self.orders[request_id]
        up.status = status
        if up.kind == "buy" and status == "success" and not up.codes:
            up.codes = [f"SUP-{secrets.token_hex(6).upper()}" for _ in range(up.qty)]

    def callback_body(self, request_id: str, *, wrong_sign: bool = False, timestamp: int | str | None = None,
                      status: str | None = None) -> dict[str, str]:
        """The signed callback: timestamp = now by `clock` unless given ("" = none); a request id this supplier
        never had (a forgery) carries `status` (default success)."""
        up = self.orders.get(request_id)
        body = {"app_key": self.app_key, "request_id": request_id, "order_no": up.order_no if up else "FORGED-1",
                "status": status or (up.status if up else "success"),
                "timestamp": str(int(self.clock()) if timestamp is None else timestamp), "nonce": secrets.token_hex(4)}
        body["sign"] = make_sign(body, "not-the-secret" if wrong_sign else self.secret, self.sign)
        return body

    async def send_callback(self, request_id: str, url: str | None = None, *, wrong_sign: bool = False,
                            timestamp: int | str | None = None, status: str | None = None) -> tuple[int, str]:
        """POST the signed result to the store (to the notify_url the store sent, unless url is given)."""
        target = url or self.orders[request_id].notify_url
        body = self.callback_body(request_id, wrong_sign=wrong_sign, timestamp=timestamp, status=status)
        async with ClientSession() as s, s.post(target, data=body) as r:
            return r.status, await r.text()


def ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "ok", "data": data}
