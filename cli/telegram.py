"""`run.py telegram setup`: the bot's face in Telegram (its "/" commands for buyers and for each merchant, its
description and short description, per language; bots/telegram/face.py) set once, as every start does in the
background. Exit 0: set; 1: Telegram refused (its error said); 2: no `telegram.token`."""
from __future__ import annotations

import argparse
from typing import Any

from app import App
from cli.common import Voice
from config.settings import Settings


def add_parser(sub: Any, say: Voice) -> None:
    tg = sub.add_parser("telegram", help=say.t("cli.help.telegram")).add_subparsers(dest="telegram_command",
                                                                                    required=True)
    tg.add_parser("setup", help=say.t("cli.help.telegram.setup"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    return await setup(settings, say)


async def setup(settings: Settings, say: Voice) -> int:
    if not settings.telegram.enabled:
        say.err("cli.telegram.no_token")
        return 2
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        try:
            face = await runtime.set_face()
        except Exception as exc:  # noqa: BLE001 - Telegram's refusal (or the network's), said with its words
            say.err("cli.telegram.refused", error=f"{type(exc).__name__}: {exc}")
            return 1
        finally:
            await runtime.stop()
    for words in face.words:
        say.out("cli.telegram.language", language=words.language or "*", short=words.short_description)
    say.out("cli.telegram.set", languages=len(face.words), merchants=len(face.merchants))
    return 0
