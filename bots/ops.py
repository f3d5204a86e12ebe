"""`/healthz`, `/readyz` and `/metrics` on the store's HTTP server (bots/http.py HttpServer).

- `/healthz`: liveness: 200 `ok` while the process answers.
- `/readyz`: 200 when every check passes, else 503; a JSON body names each check and its state:
  `database` (`SELECT 1` within a second), `outbox` (fewer than `server.ready_max_backlog` rows due and unsent),
  `scheduler` (a live process holds the scheduler lease), and `redis` when `redis.url` is set (its ping,
  storage/coordination.py). The reasons (numbers, the lease's holder) are shown only to
  those who may read `/metrics`.
- `/metrics`: Prometheus' text format (bots/metrics.py), answered to loopback clients, or to a request with
  `Authorization: Bearer <server.metrics_token>`; 403 otherwise. A request that came through a proxy
  (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) is not taken as loopback, though its peer is the proxy on
  127.0.0.1.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bots.metrics import PromMetrics
from storage.coordination import RedisShared
from storage.jobs import SqlJobStore
from storage.ops import OpsQueries

CHECK_SECONDS = 1.0  # each readiness check answers within this, or fails
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

Check = Callable[[], Awaitable[str]]  # returns a short detail; raises (or times out) when failing


class NotReady(Exception):
    """A readiness check failed; the message says why (no secrets)."""


def metrics_allowed(remote: str | None, headers: Mapping[str, str], token: str) -> bool:
    """May this request read `/metrics` (and the reasons of `/readyz`)? A loopback peer that no proxy
    forwarded, or the bearer token when one is configured (compared in constant time)."""
    given = headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
        return True
    if any(h in headers for h in PROXY_HEADERS):
        return False
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:  # a unix socket's peer, or no address at all
        return False


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


class Ops:
    """The checks and the scrape, over one App (app/bootstrap.py)."""

    def __init__(self, app: Any, metrics: PromMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.queries = OpsQueries(app.db)
        self.leases = SqlJobStore(app.db)
        server = app.settings.server
        self.token = server.metrics_token.get_secret_value()
        self.max_backlog = server.ready_max_backlog
        self.checks: dict[str, Check] = {"database": self._database, "outbox": self._outbox,
                                         "scheduler": self._scheduler}
        if isinstance(app.shop.shared, RedisShared):  # `redis.url` set (storage/coordination.py): its ping
            self.checks["redis"] = self._redis(app.shop.shared.ping)

    def add_check(self, name: str, check: Check) -> None:
        """Another readiness check (`redis`: the shared client's ping)."""
        self.checks[name] = check

    # -- the checks ------------------------------------------------------------------------------
    async def _database(self) -> str:
        await self.queries.ping()
        return "answers"

    async def _outbox(self) -> str:
        backlog = await self.queries.backlog(self.app.clock.now())
        if backlog.due >= self.max_backlog:
            raise NotReady(f"{backlog.due} rows due and unsent (server.ready_max_backlog: {self.max_backlog})")
        return f"{backlog.due} rows due"

    async def _scheduler(self) -> str:
        lease = await self.leases.lease()
        if lease is None or lease.until <= self.app.clock.now():
            raise NotReady("no live process holds the scheduler lease")
        return f"held by {lease.owner}"

    @staticmethod
    def _redis(ping: Callable[[], Awaitable[None]]) -> Check:
        async def check() -> str:
            try:
                await ping()
            except Exception as exc:  # noqa: BLE001 - its type is the reason; the URL may hold a password
                raise NotReady(f"no answer from Redis ({type(exc).__name__})") from None
            return "answers"

        return check

    async def _run(self, name: str, check: Check) -> CheckResult:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                return CheckResult(name, True, await check())
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {CHECK_SECONDS:g} s")
        except NotReady as exc:
            return CheckResult(name, False, str(exc))
        except Exception as exc:  # noqa: BLE001 - the type only: a driver's message may quote a URL
            return CheckResult(name, False, f"failed: {type(exc).__name__}")

    async def ready(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(n, c) for n, c in self.checks.items())))

    # -- the scrape ------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """The database's numbers into the snapshot the registry renders (a failing read leaves the last ones)."""
        snap = self.metrics.snapshot
        now = self.app.clock.now()
        orders, backlog, lease = await asyncio.gather(self.queries.orders_by_status(), self.queries.backlog(now),
                                                      self.leases.lease(), return_exceptions=True)
        if isinstance(orders, dict):
            snap.orders = orders
        if not isinstance(backlog, BaseException):
            snap.backlog = backlog.due
            snap.lag = max(0.0, (now - backlog.oldest_due).total_seconds()) if backlog.oldest_due else 0.0
        if not isinstance(lease, BaseException):
            snap.lease_held = int(lease is not None and lease.until > now)
        shared = self.app.shop.shared
        if isinstance(shared, RedisShared):
            snap.redis = (shared.down, shared.fallbacks, shared.late)

    # -- the routes ------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Cache-Control": "no-store"})

    async def readyz(self, request: web.Request) -> web.Response:
        results = await self.ready()
        ready = all(r.ok for r in results)
        trusted = metrics_allowed(request.remote, request.headers, self.token)
        body = {"ready": ready, "checks": {r.name: {"ok": r.ok, **({"detail": r.detail} if trusted else {})}
                                           for r in results}}
        return web.json_response(body, status=200 if ready else 503, headers={"Cache-Control": "no-store"})

    async def scrape(self, request: web.Request) -> web.Response:
        if not metrics_allowed(request.remote, request.headers, self.token):
            return web.Response(status=403, text="forbidden: loopback or the metrics token only")
        await self.refresh()
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                                 "Cache-Control": "no-store"})


def timing_middleware(metrics: PromMetrics) -> Any:
    """Every request's latency by route template (`/app/api/orders/{order_id}`, never the path itself: ids and
    tokens live in paths); requests that matched no route are `unmatched`."""

    @web.middleware
    async def timed(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in METHODS else "other"  # any token is a method in HTTP
            metrics.observe("http_request", time.perf_counter() - t0, method=method, route=route,
                            status=str(status))

    return timed


def mount_ops(server: Any, app: Any, metrics: PromMetrics) -> Ops:
    """`/healthz`, `/readyz`, `/metrics` and the request timing on `server` (bots/http.py HttpServer)."""
    ops = Ops(app, metrics)
    server.app.middlewares.append(timing_middleware(metrics))
    server.app.router.add_get("/healthz", ops.healthz)
    server.app.router.add_get("/readyz", ops.readyz)
    server.app.router.add_get("/metrics", ops.scrape)
    return ops
