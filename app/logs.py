"""The store's logging: one format on standard error, and floors for the libraries that would log secrets."""
from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

from core import logcontext

# Libraries that log whole requests at DEBUG (python-telegram-bot: every sendMessage with its text, codes
# included) or the bot token in every request line at INFO (httpx): never below these levels, whatever
# `logging.level` says. Codes and tokens are secrets (README "Codes are secrets").
LIBRARY_LOG_FLOORS = {"telegram": logging.INFO, "httpx": logging.WARNING, "httpcore": logging.WARNING,
                      "hpack": logging.WARNING, "aiogram.client": logging.INFO, "wechatpy": logging.INFO,
                      "urllib3": logging.WARNING, "requests": logging.WARNING, "apscheduler": logging.WARNING}


def quiet_libraries() -> None:
    for name, floor in LIBRARY_LOG_FLOORS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logging.getLogger().getEffectiveLevel()))


# The store's own loggers (module names under these packages, and "store").
OURS = ("app", "bots", "cli", "core", "handlers", "jobs", "storage", "store", "suppliers")


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`logging.format: json`: one JSON object per line: time (UTC, ISO 8601), level, logger, message, and
    order_id, channel and update_id when the line was logged while they were known (core/logcontext.py, or a
    logging `extra=`); an exception's traceback as `exc`. What a message says is the same as in text: the floors
    above and the store's own rule (never a code, token or key in a message) apply to both."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        known = logcontext.current()
        for name in logcontext.FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = known.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def handler(fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The store's log handler: `text` or `json` lines on stream (standard error)."""
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return h


def configure(level: str, *, terminal_demo: bool = False, fmt: str = "text") -> None:
    """One format (`logging.format`: text or json) on standard error at `level` (config `logging.level`), the library
    floors above. In the terminal demo the terminal is the shop's: the libraries (Alembic's lines on every
    migration, ...) speak only of problems (WARNING and above), and the store's own loggers keep `level`."""
    logging.basicConfig(level=level, handlers=[handler(fmt)])
    quiet_libraries()
    if terminal_demo:
        root = logging.getLogger()
        for name in OURS:
            logging.getLogger(name).setLevel(root.getEffectiveLevel())
        root.setLevel(max(logging.WARNING, root.getEffectiveLevel()))
