"""The updates a test makes users send: messages (with the bot_command entity the real server adds), contacts,
button presses, uploaded files; queued for getUpdates or posted to a webhook as Telegram does. Payments' updates
are in stars.py.
"""
from __future__ import annotations

import re

import aiohttp

from tests.fake_bot_api.state import BotState
from tests.fake_bot_api.wire import snapshot

COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")


class UpdateBuilders(BotState):
    """Sync helpers building updates (call them from the test's event loop) and delivering them."""

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
                 "message": snapshot(message), "data": data}
        return {"callback_query": query}

    def register_file(self, data: bytes, file_name: str, mime_type: str = "text/plain") -> dict:
        """Store a file as if a user had uploaded it; returns its Document object (getFile works on it)."""
        return self._store_file(data, file_name, mime_type, "documents")

    def push_update(self, update: dict) -> dict:
        """Queue an update for getUpdates, giving it the next update_id unless it has one."""
        self._stamp(update)
        self._queue.append(update)
        self._queue.sort(key=lambda u: u["update_id"])
        self._notify()
        return update

    async def post_update_to(self, url: str, update: dict, secret: str | None = None) -> int:
        """Deliver an update like Telegram does to a webhook; returns the HTTP status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with aiohttp.ClientSession() as session, \
                session.post(url, json=self._stamp(update), headers=headers) as resp:
            await resp.read()
            return resp.status
