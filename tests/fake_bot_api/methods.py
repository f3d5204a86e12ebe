"""The Bot API methods of the bot itself, of polling and webhooks, commands and descriptions, messages (send, edit,
delete) and files (send, download), each with the checks of the real server that bite in production (text length,
"message is not modified", no getUpdates while a webhook is set, the limits of commands and descriptions).
Payments are in stars.py.

A method is `_m_<name>(params, files)`; the server routes `{base}/bot{token}/<name>` to it (names match
case-insensitively, as Telegram's do).
"""
from __future__ import annotations

import json
import re
import time

from tests.fake_bot_api.state import BotState
from tests.fake_bot_api.wire import ApiError, snapshot


class BotMethods(BotState):
    """The Bot API methods other than payments."""

    # ------------------------------------------------------------------ updates and the webhook
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
        return snapshot(self._queue[:limit])

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

    # ------------------------------------------------------------------ commands
    @staticmethod
    def _commands_key(p: dict) -> str:
        return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code") or ""], sort_keys=True)

    @staticmethod
    def _language_code(p: dict) -> str:
        code = p.get("language_code") or ""
        if code and not re.fullmatch(r"[a-z]{2}", code):  # Telegram: a two-letter ISO 639-1 code, or none
            raise ApiError(400, "Bad Request: invalid language code specified")
        return code

    @staticmethod
    def _utf16(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    def _m_setMyCommands(self, p: dict, files: dict) -> bool:
        self._language_code(p)
        commands = p.get("commands") or []
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c.get("command") or ""):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= self._utf16((c.get("description") or "").strip()) <= 256:
                raise ApiError(400, "Bad Request: command description is invalid")
        scope = p.get("scope") or {"type": "default"}
        if scope.get("type") == "chat" and not isinstance(scope.get("chat_id"), int):
            raise ApiError(400, "Bad Request: chat not found")
        self.commands[self._commands_key(p)] = commands
        return True

    def _m_deleteMyCommands(self, p: dict, files: dict) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    def _m_getMyCommands(self, p: dict, files: dict) -> list[dict]:
        return self.commands.get(self._commands_key(p), [])

    # ------------------------------------------------------------------ the menu button
    def _m_setChatMenuButton(self, p: dict, files: dict) -> bool:
        button = p.get("menu_button") or {"type": "default"}
        kind = button.get("type")
        if kind == "web_app":
            if not 1 <= len(button.get("text") or "") <= 64:  # Telegram: the button's text, 1-64 characters
                raise ApiError(400, "Bad Request: menu button text is invalid")
            self._check_web_app(button.get("web_app"))
        elif kind not in ("default", "commands"):
            raise ApiError(400, "Bad Request: unsupported menu button type")
        chat_id = p.get("chat_id")
        if chat_id is not None and not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        self.menu_buttons[chat_id] = button
        return True

    def _m_getChatMenuButton(self, p: dict, files: dict) -> dict:
        chat_id = p.get("chat_id")
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}

    # ------------------------------------------------------------------ the bot's descriptions
    def _m_setMyDescription(self, p: dict, files: dict) -> bool:
        text = p.get("description") or ""
        if self._utf16(text) > 512:
            raise ApiError(400, "Bad Request: description is too long")
        self.descriptions[self._language_code(p)] = text
        return True

    def _m_getMyDescription(self, p: dict, files: dict) -> dict:
        return {"description": self.descriptions.get(self._language_code(p), "")}

    def _m_setMyShortDescription(self, p: dict, files: dict) -> bool:
        text = p.get("short_description") or ""
        if self._utf16(text) > 120:
            raise ApiError(400, "Bad Request: short description is too long")
        self.short_descriptions[self._language_code(p)] = text
        return True

    def _m_getMyShortDescription(self, p: dict, files: dict) -> dict:
        return {"short_description": self.short_descriptions.get(self._language_code(p), "")}

    # ------------------------------------------------------------------ messages
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
        return snapshot(msg)

    def _m_editMessageReplyMarkup(self, p: dict, files: dict) -> dict:
        msg = self._find_sent(p, "edit")
        markup = self._check_markup(p.get("reply_markup"))
        if msg.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified")
        msg.pop("reply_markup", None)
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return snapshot(msg)

    def _m_deleteMessage(self, p: dict, files: dict) -> bool:
        msg = self._find_sent(p, "delete")
        self._deleted.add((msg["chat"]["id"], msg["message_id"]))
        return True

    def _m_answerCallbackQuery(self, p: dict, files: dict) -> bool:
        return True

    def _m_sendChatAction(self, p: dict, files: dict) -> bool:
        self._chat_id(p)
        return True

    # ------------------------------------------------------------------ files
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
