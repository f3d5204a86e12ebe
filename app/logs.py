"""The store's logging: one format on standard error, and floors for the libraries that would log secrets."""
from __future__ import annotations

import logging
import sys

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


def configure(level: str, *, terminal_demo: bool = False) -> None:
    """One format on standard error at `level` (config `logging.level`), the library floors above. In the terminal
    demo the terminal is the shop's: the libraries (Alembic's lines on every migration, ...) speak only of problems
    (WARNING and above), and the store's own loggers keep `level`."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    quiet_libraries()
    if terminal_demo:
        root = logging.getLogger()
        for name in OURS:
            logging.getLogger(name).setLevel(root.getEffectiveLevel())
        root.setLevel(max(logging.WARNING, root.getEffectiveLevel()))
