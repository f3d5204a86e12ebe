"""The store's logging: one format on standard error, and floors for the libraries that would log secrets."""
from __future__ import annotations

import logging

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
