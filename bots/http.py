"""The store's HTTP server (aiohttp): Telegram webhooks now; the WeChat callback and the B2B API join it.

Telegram webhook: `POST <path of telegram.webhook.url>` with the header X-Telegram-Bot-Api-Secret-Token,
compared in constant time (missing: 401, wrong: 403, nothing processed). Bodies over 1 MiB are refused.
Updates are processed before the answer, so Telegram re-sends what a crash interrupted; update ids already
processed (the last 10,000 per process) are answered 200 and skipped. An update id is claimed before it is
handled: a copy arriving while the first is still being handled (Telegram re-sends when an answer is slow)
waits for it and gets the same answer, so it is handled once and a failed one is still sent again. With several
processes (`redis.url`) the claim is shared: a copy reaching another process is answered 503 while the first is
handled (Telegram sends it again) and 200 once it was (for DONE_SECONDS).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

from core.coordination import Shared

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024
SEEN_UPDATES = 10_000
HANDLING_SECONDS = 30.0  # a claim on an update id while it is handled (a process killed meanwhile: free after this)
DONE_SECONDS = 600.0  # an update id handled, remembered by every process (a 200 lost on the way is re-sent)
DONE = "done"


def webhook_path(url: str) -> str:
    path = urlsplit(url).path
    return path if path and path != "/" else "/telegram/webhook"


class _ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log. Bytes that are not valid HTTP (a raw byte in the URL, broken chunked framing, a gzip
    body that is not gzip) are the client's mistake, answered 400: one WARNING line without a traceback, so an
    ERROR still means something broke in the store."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if isinstance(exc_info, (BadHttpMessage, RequestPayloadError)):
            detail = getattr(exc_info, "message", None) or str(exc_info)
            lines = [line.strip() for line in str(detail).splitlines()]  # "400, message:" comes first
            first = next((line for line in lines if line and not re.fullmatch(r"\d+, message:", line)), "")
            self.logger.warning("%s: %s (%s)", str(msg) % args, type(exc_info).__name__, first[:100])
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kw)  # what Logger.exception does with exc_info given


class HttpServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=MAX_BODY)
        self._runner: web.AppRunner | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._handling: dict[int, asyncio.Future[int]] = {}  # update id -> the HTTP status its handling ends with

    def add_telegram(self, runtime: Any, path: str, secret: str, shared: Shared | None = None,
                     bot: str = "bot") -> None:
        """`shared` (core/coordination.py, Redis): an update id is claimed by one process of all; a copy that
        reaches another process while the first is handled is answered 503 (Telegram sends it again later), one
        handled already 200."""
        shared = shared if shared is not None and shared.distributed else None
        owner = secrets.token_hex(6)

        async def webhook(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER)
            if given is None:
                return web.Response(status=401, text="missing secret token")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=403, text="wrong secret token")
            try:
                update = json.loads(await request.read())
                update_id = int(update["update_id"])
            except (ValueError, KeyError, TypeError):
                return web.Response(status=400, text="not a Telegram update")
            if update_id in self._seen:
                return web.Response(text="ok")  # a re-sent update: handled already
            first = self._handling.get(update_id)
            if first is not None:  # the same update is being handled right now: answer as that copy is answered
                status = await asyncio.shield(first)
                return web.Response(status=status, text="ok" if status == 200 else "not handled")
            key, mine = f"tg:{bot}:update:{update_id}", f"{owner}:handling"
            if shared is not None:
                held = await shared.claim(key, mine, HANDLING_SECONDS)
                if held is not None:  # another process has it
                    if held == DONE:
                        return web.Response(text="ok")
                    return web.Response(status=503, text="being handled by another process")
            claim: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._handling[update_id] = claim
            status = 500  # an exception (or a cancelled request) leaves the id unclaimed: a re-send is handled
            try:
                await runtime.feed_webhook(update)
                status = 200
                self._seen[update_id] = None
                while len(self._seen) > SEEN_UPDATES:
                    self._seen.popitem(last=False)
            finally:
                del self._handling[update_id]
                claim.set_result(status)
                if shared is not None:
                    await asyncio.shield(shared.put(key, DONE, DONE_SECONDS) if status == 200
                                         else shared.release(key, mine))
            return web.Response(text="ok")

        self.app.router.add_post(path, webhook)

    def add_wechat_pay(self, path: str, notify: Any, max_body: int = 64 * 1024, *, v3: bool = False) -> None:
        """WeChat Pay notices (`POST path`, e.g. /wechat/pay/notify): `notify(body) -> (status, xml)` decides
        (bots/wechat/pay.py WeChatPayGateway.handle_notify); with v3, `notify(body, headers) -> (status, json)`
        (bots/wechat/pay_v3.py). Bodies over max_body are refused unread."""
        too_large = (b'{"code": "FAIL", "message": "body too large"}' if v3 else
                     b"<xml><return_code><![CDATA[FAIL]]></return_code>"
                     b"<return_msg><![CDATA[body too large]]></return_msg></xml>")
        content_type = "application/json" if v3 else "text/xml"

        async def pay_notify(request: web.Request) -> web.Response:
            if request.content_length is not None and request.content_length > max_body:
                return web.Response(status=413, body=too_large, content_type=content_type)
            body = bytearray()
            async for chunk in request.content.iter_chunked(16384):  # chunked bodies: stop at the limit
                body += chunk
                if len(body) > max_body:
                    return web.Response(status=413, body=too_large, content_type=content_type)
            status, answer = await (notify(bytes(body), request.headers) if v3 else notify(bytes(body)))
            return web.Response(status=status, body=answer or None, content_type=content_type)

        self.app.router.add_post(path, pay_notify)

    def add_wechat(self, path: str, callback: Any, max_body: int = 64 * 1024) -> None:
        """The WeChat Official Account callback (`GET`/`POST path`, e.g. /wechat): `callback.verify(query)` and
        `callback.refuse(query)` / `callback.receive(query, body)` (bots/wechat/callback.py) return the answer.
        Bodies over max_body are refused (413) without reading further."""

        def answer(a: Any) -> web.Response:
            return web.Response(status=a.status, body=a.body, content_type=a.content_type)

        async def verify(request: web.Request) -> web.Response:
            return answer(await callback.verify(request.query))

        async def receive(request: web.Request) -> web.Response:
            refused = callback.refuse(request.query)  # a wrong signature: the body is not even read
            if refused is not None:
                return answer(refused)
            if request.content_length is not None and request.content_length > max_body:
                return web.Response(status=413, text="too large")
            body = bytearray()
            async for chunk in request.content.iter_chunked(16384):  # chunked bodies: stop at the limit
                body += chunk
                if len(body) > max_body:
                    return web.Response(status=413, text="too large")
            return answer(await callback.receive(request.query, bytes(body)))

        self.app.router.add_get(path, verify)
        self.app.router.add_post(path, receive)

    def add_supplier_callback(self, handle: Any, path: str = "/supplier/{name}/callback",
                              max_body: int = 64 * 1024) -> None:
        """Suppliers' top-up results (`POST /supplier/<name>/callback`): `handle(name, body, content_type) ->
        (status, text)` decides (suppliers.handle_callback: a wrong signature is refused with 403). Bodies over
        max_body are refused unread."""

        async def callback(request: web.Request) -> web.Response:
            if request.content_length is not None and request.content_length > max_body:
                return web.Response(status=413, text="too large")
            body = bytearray()
            async for chunk in request.content.iter_chunked(16384):
                body += chunk
                if len(body) > max_body:
                    return web.Response(status=413, text="too large")
            status, text = await handle(request.match_info["name"], bytes(body), request.content_type)
            return web.Response(status=status, text=text)

        self.app.router.add_post(path, callback)

    def add_b2b_api(self, api: Any, prefix: str = "/api/v1") -> None:
        """The B2B API (bots/b2b_api.py `B2BApi`): resellers' signed requests under prefix, and
        `prefix/openapi.json`."""
        api.mount(self.app, prefix)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None,
                                     logger=_ProtocolLog(logging.getLogger("aiohttp.server"), {}))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            server = site._server  # noqa: SLF001 - aiohttp exposes the bound socket only here
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]
        log.info("HTTP server on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
