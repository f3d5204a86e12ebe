"""What the fake Telegram holds: the bot, the update queue and what the bot confirmed of it, the chats with the
messages the bot sent (latest version after edits, deletions), files, Star charges and transactions, injected
faults and blocked chats; waiting until any of it changes; and the helpers the Bot API methods share to make,
find and check messages and files.
"""
from __future__ import annotations

import asyncio
import itertools
import mimetypes
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fake_bot_api.wire import ApiError, Call, snapshot


class BotState:
    """The fake's state; the parts of FakeBotAPI (updates, methods, stars, server) build on it."""

    def __init__(self, token: str = "123:ABC", *, bot_id: int = 777, username: str = "test_shop_bot",
                 first_name: str = "Test Shop") -> None:
        self.token = token
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username}
        self.base = ""
        self.webhook: dict[str, Any] = {"url": "", "secret_token": None}
        self.commands: dict[str, list[dict]] = {}  # key: json of [scope, language_code]
        self.descriptions: dict[str, str] = {}  # language_code ("" for the default) -> setMyDescription's text
        self.short_descriptions: dict[str, str] = {}  # likewise, setMyShortDescription's
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
        self.invoice_links: dict[str, dict] = {}  # createInvoiceLink: slug -> the invoice (a test pays it)
        self.menu_buttons: dict[int | None, dict] = {}  # setChatMenuButton: chat id (None: every chat) -> button
        self._faults: dict[str, list[tuple[int, int, str | None]]] = {}
        self._blocked: set[int] = set()
        self._waiters: set[asyncio.Future] = set()
        self._hook: Any = None                   # webhook delivery (delivery.py), once deliver_to was called
        self.webhook_answers: list[Any] = []     # ... every POST of an update and its outcome (delivery.Posted)
        self.answered_ok: Counter[int] = Counter()  # ... update id -> how many of its POSTs were answered 200
        self._pushed: set[int] = set()           # ... update ids pushed for delivery
        self.polls = 0                           # getUpdates requests received, answered or still waiting
        self._closing = False
        self._runner: web.AppRunner | None = None
        # The canonical name of every method served; Telegram matches method names case-insensitively.
        self._methods = {name[3:].lower(): name[3:] for name in dir(self) if name.startswith("_m_")}

    # ------------------------------------------------------------------ waiting
    def _answered(self, call: Call) -> None:
        """Each call once answered, in order (a harness that routes calls to the users waiting for them overrides
        it)."""

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

    # ------------------------------------------------------------------ chats, messages and files
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
                if "web_app" in button:
                    BotState._check_web_app(button["web_app"])
        return markup

    @staticmethod
    def _check_web_app(web_app: Any) -> None:
        """A WebAppInfo: Telegram opens Mini Apps on https addresses only."""
        url = web_app.get("url") if isinstance(web_app, dict) else None
        if not isinstance(url, str) or not url.startswith("https://"):
            raise ApiError(400, "Bad Request: BUTTON_URL_INVALID: only HTTPS links are allowed for web_app")

    def _bot_message(self, p: dict, **content: Any) -> dict:
        chat_id = self._chat_id(p)
        if len(p.get("caption") or "") > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        msg = self._message(chat_id, self.bot_user, reply_markup=self._check_markup(p.get("reply_markup")),
                            caption=p.get("caption"), caption_entities=p.get("caption_entities"), **content)
        self._sent.setdefault(chat_id, []).append(msg)
        return snapshot(msg)

    def _find_sent(self, p: dict, what: str) -> dict:
        chat_id = self._chat_id(p)
        for msg in self._sent.get(chat_id, []):
            if msg["message_id"] == p.get("message_id") and (chat_id, msg["message_id"]) not in self._deleted:
                return msg
        raise ApiError(400, f"Bad Request: message to {what} not found")

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

    def _upload(self, p: dict, files: dict, field_name: str, folder: str) -> dict:
        if field_name in files:
            filename, data = files[field_name]
            return self._store_file(data, filename, mimetypes.guess_type(filename)[0], folder)
        ref = p.get(field_name)
        if isinstance(ref, str) and ref in self._files:  # re-sending a known file_id
            stored = self._files[ref]
            return {"file_id": ref, "file_unique_id": stored["unique"], "file_size": len(stored["data"])}
        raise ApiError(400, f"Bad Request: there is no {field_name} in the request")

    def _stamp(self, update: dict) -> dict:
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        return update
