"""A local fake of the Telegram Bot API for end-to-end tests (aiohttp.web, real HTTP on 127.0.0.1).

Both client libraries can poll it for real:

    async with FakeBotAPI(token="123:ABC") as api:
        # aiogram
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base)))
        # python-telegram-bot
        app = (ApplicationBuilder().token(api.token)
               .base_url(f"{api.base}/bot").base_file_url(f"{api.base}/file/bot").build())
        api.push_update(api.message_update(api.user(42), "/start"))
        call = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 42)

What the clients send (checked in aiogram 3.31 / PTB 22.8): a POST to {base}/bot{token}/{method}, as
application/x-www-form-urlencoded, or multipart/form-data when files are attached. Every value is a
string: ints/bools arrive JSON-encoded ("42", "true"), objects and lists (reply_markup, prices, ...) as JSON
text. aiogram uploads a file as `document=attach://<random>` plus a part named <random>; PTB sends the part
under the field name itself. The fake normalises all that (see `_decode` and `_read_params`), so a recorded
`Call.params` holds Python values and `Call.files` is keyed by the API field ("document", "photo").

Answers are {"ok": true, "result": ...} or {"ok": false, "error_code": N, "description": "...",
"parameters": {"retry_after": N}} with HTTP status N; both libraries map 429 + retry_after to their
RetryAfter exceptions, 403 to Forbidden, 400 to BadRequest.

Like the real server it also enforces a few rules that bite in production: callback_data of 1-64 bytes,
text <= 4096 / caption <= 1024 chars, "message is not modified" on a no-op edit, no getUpdates while a
webhook is set, Stars invoices with exactly one price and no provider_token, refunds only of known charges.
Not modelled: parse_mode (text is stored as sent, tags included), media groups, inline mode, chat members.
Everything runs on the test's event loop: call the sync helpers from that loop, not from other threads.

Client quirks: aiogram's `bot.id` comes from the token prefix, getMe says `bot_id` (777): use a token like
"777:ABC" where that matters. Under `-W error`, PTB 22's RetryAfter() itself emits PTBDeprecationWarning
(int retry_after) unless PTB_TIMEDELTA=1 is set, so a PTB 429 test sees that warning instead of RetryAfter.
aiogram's Dispatcher runs handlers as tasks by default; with `handle_as_tasks=False`, `wait_confirmed(update)`
means the handler has finished, which makes stopping polling deterministic.
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import json
import mimetypes
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from aiohttp import web

# Fields that carry JSON-serialised objects/lists in form data: decoded into Python objects when recorded.
JSON_FIELDS = {"reply_markup", "prices", "entities", "caption_entities", "allowed_updates", "commands",
               "link_preview_options", "reply_parameters", "scope", "media", "suggested_tip_amounts", "results"}
# Fields whose JSON-encoded scalars ("42", "true") are turned back into int / bool.
INT_FIELDS = {"chat_id", "message_id", "user_id", "offset", "limit", "timeout", "cache_time", "from_chat_id",
              "message_thread_id", "reply_to_message_id", "max_tip_amount", "max_connections",
              "subscription_period"}
BOOL_FIELDS = {"ok", "show_alert", "disable_notification", "protect_content", "drop_pending_updates",
               "is_flexible", "has_spoiler", "disable_content_type_detection", "allow_sending_without_reply",
               "disable_web_page_preview", "is_personal", "allow_paid_broadcast"}
COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")
BLOCKED = "Forbidden: bot was blocked by the user"
DEFAULT_ERRORS = {400: "Bad Request: injected failure", 403: BLOCKED, 500: "Internal Server Error",
                  502: "Bad Gateway"}


@dataclass
class Call:
    """One recorded API request. `status` is the HTTP status answered, `result` the "result" sent back."""
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]]
    at: float
    status: int = 200
    result: Any = None


class ApiError(Exception):
    """Raised by a method implementation; becomes an {"ok": false, ...} answer."""

    def __init__(self, status: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in BOOL_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


class FakeBotAPI:
    """The fake server plus its state; see the module docstring. Sync helpers build/queue updates and
    inspect what the bot did; `wait_for` / `wait_confirmed` await the bot's reactions."""

    def __init__(self, token: str = "123:ABC", *, bot_id: int = 777, username: str = "test_shop_bot",
                 first_name: str = "Test Shop") -> None:
        self.token = token
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username}
        self.base = ""
        self.webhook: dict[str, Any] = {"url": "", "secret_token": None}
        self.commands: dict[str, list[dict]] = {}  # key: json of [scope, language_code]
        self._calls: list[Call] = []
        self._queue: list[dict] = []             # unconfirmed updates, ascending update_id
        self._next_update_id = 1000
        self._confirmed_below = 0                # every update_id < this was confirmed by an offset
        self._ids = itertools.count(1)           # file ids, callback/pre-checkout query ids
        self._chats: dict[int, dict] = {}        # known chat objects (private chats of users, groups)
        self._last_mid: dict[int, int] = {}      # message ids are per chat, shared by user and bot
        self._sent: dict[int, list[dict]] = {}   # messages the bot sent (latest version after edits)
        self._deleted: set[tuple[int, int]] = set()
        self._files: dict[str, dict] = {}        # file_id -> {"path", "data", "mime", "unique"}
        self._charges: dict[str, dict] = {}      # telegram_payment_charge_id -> {"user_id", "refunded"}
        self.star_transactions: list[dict] = []  # the bot's Star balance history (getStarTransactions), in order
        self._faults: dict[str, list[tuple[int, int, str | None]]] = {}
        self._blocked: set[int] = set()
        self._waiters: set[asyncio.Future] = set()
        self.polls = 0                           # getUpdates requests received, answered or still waiting
        self._closing = False
        self._runner: web.AppRunner | None = None
        # The canonical name of every method served; Telegram matches method names case-insensitively.
        self._methods = {name[3:].lower(): name[3:] for name in dir(self) if name.startswith("_m_")}

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

    # ------------------------------------------------------------------ waiting
    def _notify(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def _wait_until(self, check: Callable[[], Any], timeout: float) -> Any:
        """Re-evaluate `check` after every state change until it is truthy or `timeout` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := check()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return found
            fut = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(fut)
        return found

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
        return [copy.deepcopy(m) for m in self._sent.get(chat_id, [])
                if include_deleted or (chat_id, m["message_id"]) not in self._deleted]

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

    # ------------------------------------------------------------------ update builders
    def user(self, id: int, first_name: str = "Ann", language_code: str | None = "en",
             username: str | None = None) -> dict:
        user = {"id": id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        if username:
            user["username"] = username
        self._chats.setdefault(id, {"id": id, "type": "private", "first_name": first_name})
        return user

    def group_chat(self, id: int, title: str) -> dict:
        self._chats[id] = {"id": id, "type": "supergroup", "title": title}
        return dict(self._chats[id])

    def _chat(self, chat_id: int) -> dict:
        if chat_id in self._chats:
            return dict(self._chats[chat_id])
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        return {"id": chat_id, "type": "private"}

    def _message(self, chat_id: int, sender: dict, **content: Any) -> dict:
        self._last_mid[chat_id] = mid = self._last_mid.get(chat_id, 0) + 1
        msg = {"message_id": mid, "date": int(time.time()), "chat": self._chat(chat_id), "from": dict(sender)}
        msg.update({k: v for k, v in content.items() if v is not None})
        return msg

    def message_update(self, user: dict, text: str | None = None, chat_id: int | None = None, *,
                       chat: dict | None = None, document: dict | None = None, caption: str | None = None,
                       contact: dict | None = None) -> dict:
        """A user's message (in their private chat unless `chat`/`chat_id` is given); a leading /command
        (also /cmd@botname) gets its bot_command entity like the real server adds."""
        if chat:
            self._chats.setdefault(chat["id"], dict(chat))
        target = chat["id"] if chat else (chat_id if chat_id is not None else user["id"])
        entities = None
        if text and (m := COMMAND_RE.match(text)):
            entities = [{"type": "bot_command", "offset": 0, "length": len(m.group(0))}]
        return {"message": self._message(target, user, text=text, entities=entities, document=document,
                                         caption=caption, contact=contact)}

    @staticmethod
    def contact(phone: str, user_id: int | None = None, first_name: str = "Ann") -> dict:
        """A Contact as a message carries it: Telegram sets user_id only when the contact is a Telegram user;
        sharing one's own contact through a request_contact button gives the sender's own id."""
        c = {"phone_number": phone, "first_name": first_name}
        if user_id is not None:
            c["user_id"] = user_id
        return c

    def callback_update(self, user: dict, data: str, message: dict) -> dict:
        """A press on an inline button with `data`, on `message` (a Message the bot sent)."""
        query = {"id": str(next(self._ids)), "from": user, "chat_instance": f"ci{message['chat']['id']}",
                 "message": copy.deepcopy(message), "data": data}
        return {"callback_query": query}

    def pre_checkout_update(self, user: dict, payload: str, total_amount: int, currency: str = "XTR",
                            id: str | None = None) -> dict:
        return {"pre_checkout_query": {"id": id or f"pcq{next(self._ids)}", "from": user, "currency": currency,
                                       "total_amount": total_amount, "invoice_payload": payload}}

    def successful_payment_update(self, user: dict, payload: str, total_amount: int, charge_id: str,
                                  currency: str = "XTR") -> dict:
        """The service message announcing a payment; registers `charge_id` for refundStarPayment."""
        self._charges[charge_id] = {"user_id": user["id"], "refunded": False, "amount": total_amount, "user": user}
        if currency == "XTR":  # Stars reach the bot's balance: an incoming transaction from the user
            self.star_transactions.append({
                "id": charge_id, "amount": total_amount, "date": int(time.time()),
                "source": {"type": "user", "transaction_type": "invoice_payment", "user": user,
                           "invoice_payload": payload}})
        payment = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload,
                   "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        return {"message": self._message(user["id"], user, successful_payment=payment)}

    def register_file(self, data: bytes, file_name: str, mime_type: str = "text/plain") -> dict:
        """Store a file as if a user had uploaded it; returns its Document object (getFile works on it)."""
        return self._store_file(data, file_name, mime_type, "documents")

    def _store_file(self, data: bytes, file_name: str, mime_type: str | None, folder: str) -> dict:
        n = next(self._ids)
        file_id = f"FILE{n:05d}"
        ext = mimetypes.guess_extension(mime_type or "") or "." + file_name.rpartition(".")[2]
        self._files[file_id] = {"path": f"{folder}/file_{n}{ext}", "data": data, "mime": mime_type,
                                "unique": f"U{n}"}
        doc = {"file_id": file_id, "file_unique_id": f"U{n}", "file_name": file_name, "file_size": len(data)}
        if mime_type:
            doc["mime_type"] = mime_type
        return doc

    def push_update(self, update: dict) -> dict:
        """Queue an update for getUpdates, giving it the next update_id unless it has one."""
        self._stamp(update)
        self._queue.append(update)
        self._queue.sort(key=lambda u: u["update_id"])
        self._notify()
        return update

    def _stamp(self, update: dict) -> dict:
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        return update

    async def post_update_to(self, url: str, update: dict, secret: str | None = None) -> int:
        """Deliver an update like Telegram does to a webhook; returns the HTTP status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with aiohttp.ClientSession() as session, \
                session.post(url, json=self._stamp(update), headers=headers) as resp:
            await resp.read()
            return resp.status

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
        return {k: _decode(k, v) for k, v in params.items()}, files

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
        self._notify()
        return web.json_response(body, status=call.status)

    # ------------------------------------------------------------------ method helpers
    def _chat_id(self, p: dict) -> int:
        chat_id = p.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _check_markup(markup: Any) -> dict | None:
        """Validate inline buttons; only an inline keyboard is echoed in the returned Message (a reply
        keyboard is not part of Message.reply_markup, and aiogram would fail to parse it)."""
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return None
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _bot_message(self, p: dict, **content: Any) -> dict:
        chat_id = self._chat_id(p)
        if len(p.get("caption") or "") > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        msg = self._message(chat_id, self.bot_user, reply_markup=self._check_markup(p.get("reply_markup")),
                            caption=p.get("caption"), caption_entities=p.get("caption_entities"), **content)
        self._sent.setdefault(chat_id, []).append(msg)
        return copy.deepcopy(msg)

    def _find_sent(self, p: dict, what: str) -> dict:
        chat_id = self._chat_id(p)
        for msg in self._sent.get(chat_id, []):
            if msg["message_id"] == p.get("message_id") and (chat_id, msg["message_id"]) not in self._deleted:
                return msg
        raise ApiError(400, f"Bad Request: message to {what} not found")

    def _upload(self, p: dict, files: dict, field_name: str, folder: str) -> dict:
        if field_name in files:
            filename, data = files[field_name]
            return self._store_file(data, filename, mimetypes.guess_type(filename)[0], folder)
        ref = p.get(field_name)
        if isinstance(ref, str) and ref in self._files:  # re-sending a known file_id
            stored = self._files[ref]
            return {"file_id": ref, "file_unique_id": stored["unique"], "file_size": len(stored["data"])}
        raise ApiError(400, f"Bad Request: there is no {field_name} in the request")

    # ------------------------------------------------------------------ Bot API methods (_m_<name>)
    def _m_getMe(self, p: dict, files: dict) -> dict:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _m_getUpdates(self, p: dict, files: dict) -> list[dict]:
        if self.webhook["url"]:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        self.polls += 1
        offset = p.get("offset") or 0
        if offset > 0:    # confirms every update below offset
            self._queue = [u for u in self._queue if u["update_id"] >= offset]
            self._confirmed_below = max(self._confirmed_below, offset)
        elif offset < 0:  # keeps only the last -offset updates
            self._queue = self._queue[offset:]
        self._notify()
        limit = min(max(p.get("limit") or 100, 1), 100)
        await self._wait_until(lambda: self._queue or self._closing, float(p.get("timeout") or 0))
        return copy.deepcopy(self._queue[:limit])

    def _m_setWebhook(self, p: dict, files: dict) -> bool:
        self.webhook = {"url": p.get("url", ""), "secret_token": p.get("secret_token")}
        if p.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _m_deleteWebhook(self, p: dict, files: dict) -> bool:
        self.webhook = {"url": "", "secret_token": None}
        if p.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _m_getWebhookInfo(self, p: dict, files: dict) -> dict:
        return {"url": self.webhook["url"], "has_custom_certificate": False, "pending_update_count": len(self._queue)}

    def _m_logOut(self, p: dict, files: dict) -> bool:
        return True

    _m_close = _m_logOut

    @staticmethod
    def _commands_key(p: dict) -> str:
        return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code") or ""], sort_keys=True)

    def _m_setMyCommands(self, p: dict, files: dict) -> bool:
        self.commands[self._commands_key(p)] = p.get("commands") or []
        return True

    def _m_deleteMyCommands(self, p: dict, files: dict) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    def _m_getMyCommands(self, p: dict, files: dict) -> list[dict]:
        return self.commands.get(self._commands_key(p), [])

    def _m_sendMessage(self, p: dict, files: dict) -> dict:
        text = p.get("text") or ""
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._bot_message(p, text=text, entities=p.get("entities"))

    def _m_editMessageText(self, p: dict, files: dict) -> dict:
        msg = self._find_sent(p, "edit")
        markup = self._check_markup(p.get("reply_markup"))
        if msg.get("text") == p.get("text") and msg.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                "markup are exactly the same as a current content and reply markup of the message")
        msg.update(text=p.get("text"), edit_date=int(time.time()))
        msg.pop("reply_markup", None)  # an edit without reply_markup removes the keyboard
        if markup:
            msg["reply_markup"] = markup
        return copy.deepcopy(msg)

    def _m_editMessageReplyMarkup(self, p: dict, files: dict) -> dict:
        msg = self._find_sent(p, "edit")
        markup = self._check_markup(p.get("reply_markup"))
        if msg.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified")
        msg.pop("reply_markup", None)
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    def _m_deleteMessage(self, p: dict, files: dict) -> bool:
        msg = self._find_sent(p, "delete")
        self._deleted.add((msg["chat"]["id"], msg["message_id"]))
        return True

    def _m_answerCallbackQuery(self, p: dict, files: dict) -> bool:
        return True

    def _m_sendInvoice(self, p: dict, files: dict) -> dict:
        prices = p.get("prices") or []
        if p.get("currency") == "XTR" and (len(prices) != 1 or p.get("provider_token")):
            raise ApiError(400, "Bad Request: Stars invoices need exactly one price and no provider_token")
        if not 1 <= len((p.get("payload") or "").encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload must be 1-128 bytes")
        markup = p.get("reply_markup")
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            first = (markup["inline_keyboard"][0] or [{}])[0]
            if first.get("pay") is not True:
                raise ApiError(400, "Bad Request: the first button of an invoice must be a Pay button")
        invoice = {"title": p.get("title", ""), "description": p.get("description", ""),
                   "start_parameter": p.get("start_parameter", ""), "currency": p.get("currency", ""),
                   "total_amount": sum(int(price["amount"]) for price in prices)}
        return self._bot_message(p, invoice=invoice)

    def _m_answerPreCheckoutQuery(self, p: dict, files: dict) -> bool:
        return True

    def _m_refundStarPayment(self, p: dict, files: dict) -> bool:
        charge = self._charges.get(p.get("telegram_payment_charge_id", ""))
        if charge is None or charge["user_id"] != p.get("user_id"):
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        if charge["refunded"]:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge["refunded"] = True
        if any(t["id"] == p["telegram_payment_charge_id"] for t in self.star_transactions):
            self.star_transactions.append({
                "id": p["telegram_payment_charge_id"], "amount": charge["amount"], "date": int(time.time()),
                "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": charge["user"]}})
        return True

    def _m_getStarTransactions(self, p: dict, files: dict) -> dict:
        """Telegram's order (oldest first); offset = how many to skip; 1 <= limit <= 100 (default 100)."""
        offset, limit = int(p.get("offset") or 0), int(p.get("limit") or 100)
        if offset < 0 or not 1 <= limit <= 100:
            raise ApiError(400, "Bad Request: invalid offset or limit")
        return {"transactions": self.star_transactions[offset:offset + limit]}

    def _m_sendDocument(self, p: dict, files: dict) -> dict:
        return self._bot_message(p, document=self._upload(p, files, "document", "documents"))

    def _m_sendPhoto(self, p: dict, files: dict) -> dict:
        photo = self._upload(p, files, "photo", "photos")
        photo.pop("file_name", None)
        photo.pop("mime_type", None)
        return self._bot_message(p, photo=[{**photo, "width": 320, "height": 320}])

    def _m_getFile(self, p: dict, files: dict) -> dict:
        stored = self._files.get(p.get("file_id", ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": p["file_id"], "file_unique_id": stored["unique"], "file_size": len(stored["data"]),
                "file_path": stored["path"]}

    def _m_sendChatAction(self, p: dict, files: dict) -> bool:
        self._chat_id(p)
        return True
