"""The fake Bot API server: `FakeBotAPI` serves the methods (methods.py, stars.py) over real HTTP on 127.0.0.1,
records every request as a `Call` (after injected faults and blocked chats had their say), serves downloads,
and lets a test wait for the bot's reactions. See the package docstring for how the client libraries use it.
"""
from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from tests.fake_bot_api.delivery import WebhookDelivery
from tests.fake_bot_api.methods import BotMethods
from tests.fake_bot_api.stars import StarsPayments
from tests.fake_bot_api.wire import BLOCKED, DEFAULT_ERRORS, ApiError, Call, decode, snapshot


class FakeBotAPI(WebhookDelivery, BotMethods, StarsPayments):
    """The fake server plus its state; see the package docstring. Sync helpers build/queue updates and
    inspect what the bot did; `wait_for` / `wait_confirmed` await the bot's reactions."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away (aiogram cancels it on stop) ends at once.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.base

    async def stop(self) -> None:
        await self.stop_delivery()
        self._closing = True
        self._notify()  # pending long polls answer [] right away, so cleanup does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ recording
    def calls(self, method: str | None = None) -> list[Call]:
        return [c for c in self._calls if method is None or c.method == method]

    def calls_since(self, mark: int, method: str | None = None) -> list[Call]:
        """The calls recorded after `mark` (see mark()), of `method` when given."""
        return [c for c in self._calls[mark:] if method is None or c.method == method]

    def mark(self) -> int:
        """The current number of recorded calls: pass it as `since=` to only see later calls."""
        return len(self._calls)

    async def wait_for(self, method: str, predicate: Callable[[Call], bool] | None = None, *,
                       timeout: float = 5.0, since: int = 0) -> Call:
        """The first call of `method` (index >= since) matching `predicate`, waiting for it if needed."""
        def find() -> Call | None:
            return next((c for c in self._calls[since:]
                         if c.method == method and (predicate is None or predicate(c))), None)
        call = await self._wait_until(find, timeout)
        if call is None:
            seen = [(c.method, c.status) for c in self._calls[since:] if c.method != "getUpdates"]
            raise TimeoutError(f"no matching {method} call within {timeout}s; recorded: {seen}")
        return call

    async def wait_polling(self, since: int, timeout: float = 5.0) -> None:
        """Wait until a getUpdates request arrives after `since` (a value of `polls`): the bot is polling. A long
        poll is recorded in calls() only when answered, up to its `timeout` later."""
        if not await self._wait_until(lambda: self.polls > since, timeout):
            raise TimeoutError(f"no getUpdates within {timeout}s")

    async def wait_confirmed(self, update: dict | int, timeout: float = 5.0) -> None:
        """Wait until the bot confirmed an update (a getUpdates offset beyond it). With aiogram's
        `handle_as_tasks=False` this means its handler has finished."""
        update_id = update if isinstance(update, int) else update["update_id"]
        if not await self._wait_until(lambda: self._confirmed_below > update_id, timeout):
            raise TimeoutError(f"update {update_id} not confirmed within {timeout}s")

    # ------------------------------------------------------------------ state helpers for tests
    def sent_to(self, chat_id: int, *, include_deleted: bool = True) -> list[dict]:
        return [snapshot(m) for m in self._sent.get(chat_id, [])
                if include_deleted or (chat_id, m["message_id"]) not in self._deleted]

    def my_commands(self, language: str = "", chat_id: int | None = None) -> list[tuple[str, str]]:
        """The "/" menu set for a language_code ("" the default) in the default scope or one chat's."""
        scope = {"type": "default"} if chat_id is None else {"type": "chat", "chat_id": chat_id}
        found = self.commands.get(self._commands_key({"scope": scope, "language_code": language}), [])
        return [(c["command"], c["description"]) for c in found]

    def last_message(self, chat_id: int) -> dict | None:
        sent = self.sent_to(chat_id)
        return sent[-1] if sent else None

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        return (chat_id, message_id) in self._deleted

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, times: int = 1,
                  description: str | None = None, *, after: int = 0) -> None:
        """The next `times` calls of `method` fail with `status` (429 carries parameters.retry_after); `after`
        calls go through first."""
        self._faults.setdefault(method.lower(), []).extend(
            [(0, 0, None)] * after + [(status, retry_after, description)] * times)

    def block_chat(self, chat_id: int) -> None:
        self._blocked.add(chat_id)

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    # ------------------------------------------------------------------ HTTP layer
    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        stored = next((f for f in self._files.values() if f["path"] == request.match_info["path"]), None)
        if stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored["data"], content_type=stored["mime"] or "application/octet-stream")

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:  # urlencoded or multipart
                for key, value in (await request.post()).items():
                    if isinstance(value, web.FileField):
                        files[key] = (value.filename, value.file.read())
                        value.file.close()  # a spooled temp file: close it or -W error trips on it
                    else:
                        params[key] = value
        for key, value in list(params.items()):  # aiogram: field="attach://<part>" -> files[field]
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                files[key] = files.pop(value[9:])
                del params[key]
        return {k: decode(k, v) for k, v in params.items()}, files

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        raw = request.match_info["method"]
        method = self._methods.get(raw.lower(), raw)
        params, files = await self._read_params(request)
        call = Call(method, params, files, time.time())
        err: ApiError | None = None
        try:
            if raw.lower() not in self._methods:
                raise ApiError(404, "Not Found: method not found")
            if self._faults.get(raw.lower()):
                status, retry_after, description = self._faults[raw.lower()].pop(0)
                if status == 0:
                    pass  # let through (fail_next's `after`)
                elif status == 429:
                    raise ApiError(429, description or f"Too Many Requests: retry after {retry_after}",
                                   retry_after=retry_after)
                else:
                    raise ApiError(status, description or DEFAULT_ERRORS.get(status, f"Error {status}"))
            if method.startswith("send") and params.get("chat_id") in self._blocked:
                raise ApiError(403, BLOCKED)
            result = getattr(self, f"_m_{method}")(params, files)
            call.result = await result if asyncio.iscoroutine(result) else result
        except ApiError as exc:
            err = exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # malformed input: a 400, as Telegram
            err = ApiError(400, f"Bad Request: fake API could not process the parameters ({exc!r})")
        if err is None:
            body = {"ok": True, "result": call.result}
        else:
            call.status = err.status
            body = {"ok": False, "error_code": err.status, "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
        self._calls.append(call)
        self._answered(call)
        self._notify()
        return web.json_response(body, status=call.status)
