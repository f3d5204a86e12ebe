"""The Bot API's wire format as the fake reads and answers it.

What the clients send (checked in aiogram 3.31 / PTB 22.8): a POST to {base}/bot{token}/{method}, as
application/x-www-form-urlencoded, or multipart/form-data when files are attached. Every value is a
string: ints/bools arrive JSON-encoded ("42", "true"), objects and lists (reply_markup, prices, ...) as JSON
text. aiogram uploads a file as `document=attach://<random>` plus a part named <random>; PTB sends the part
under the field name itself. The fake normalises all that (`decode` here, `FakeBotAPI._read_params` in
server.py), so a recorded `Call.params` holds Python values and `Call.files` is keyed by the API field
("document", "photo").

Answers are {"ok": true, "result": ...} or {"ok": false, "error_code": N, "description": "...",
"parameters": {"retry_after": N}} with HTTP status N; both libraries map 429 + retry_after to their
RetryAfter exceptions, 403 to Forbidden, 400 to BadRequest.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Fields that carry JSON-serialised objects/lists in form data: decoded into Python objects when recorded.
JSON_FIELDS = {"reply_markup", "prices", "entities", "caption_entities", "allowed_updates", "commands",
               "link_preview_options", "reply_parameters", "scope", "media", "suggested_tip_amounts", "results",
               "menu_button"}
# Fields whose JSON-encoded scalars ("42", "true") are turned back into int / bool.
INT_FIELDS = {"chat_id", "message_id", "user_id", "offset", "limit", "timeout", "cache_time", "from_chat_id",
              "message_thread_id", "reply_to_message_id", "max_tip_amount", "max_connections",
              "subscription_period"}
BOOL_FIELDS = {"ok", "show_alert", "disable_notification", "protect_content", "drop_pending_updates",
               "is_flexible", "has_spoiler", "disable_content_type_detection", "allow_sending_without_reply",
               "disable_web_page_preview", "is_personal", "allow_paid_broadcast"}
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


def decode(key: str, value: Any) -> Any:
    """A form value as the Python value the API field holds (see the module docstring)."""
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


def snapshot(value: Any) -> Any:
    """A copy of a JSON value that later changes to the original (an edited message) do not reach: a round trip
    through json, several times cheaper than copy.deepcopy (the fake copies every message it sends)."""
    return json.loads(json.dumps(value))
