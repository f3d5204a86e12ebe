"""`run.py wechat menu`: the WeChat custom menu from `wechat.menu` (menu/create), with the H5 shop's Shop button
when it is on."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import Voice
from config.settings import Settings
from locales import Translator


def add_parser(sub: Any, say: Voice) -> None:
    wx = sub.add_parser("wechat", help=say.t("cli.help.wechat")).add_subparsers(dest="wechat_command",
                                                                                required=True)
    wx.add_parser("menu", help=say.t("cli.help.wechat.menu"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    return await create_menu(settings, say)


async def create_menu(settings: Settings, say: Voice) -> int:
    """Creates the WeChat custom menu from `wechat.menu` (menu/create)."""
    # wechatpy loads only for this command, not for every other one (cli/__init__.py imports every group).
    from bots.wechat.client import WeChatApiError  # noqa: PLC0415 - wechatpy only for this command
    from bots.wechat.h5 import MenuFull  # noqa: PLC0415 - likewise
    from bots.wechat.wiring import create_menu as menu_create  # noqa: PLC0415 - likewise

    if not settings.wechat.enabled:
        say.err("cli.wechat.no_appid")
        return 2
    def h5_err(key: str) -> None:  # the H5 shop's words are in its own room (wechat_h5.po), not cli.po
        words = Translator(dict.fromkeys(("en", say.language)), default="en", rooms=("wechat_h5",))
        print(words.t(say.language, key), file=sys.stderr)

    if settings.wechat.h5.enabled and not settings.server.public_url:
        h5_err("wechat.webshop.menu.no_public_url")
    try:
        menu = await menu_create(settings)
    except MenuFull:
        h5_err("wechat.webshop.menu.full")
        return 2
    except WeChatApiError as exc:
        say.err("cli.wechat.refused", error=exc)
        return 1
    for button in menu["button"]:
        subs = button.get("sub_button")
        print(f"{button['name']}: " + (", ".join(f"{b['name']} ({b.get('key') or b.get('url')})" for b in subs)
                                        if subs else str(button.get("key") or button.get("url"))))
    say.out("cli.wechat.created", count=len(menu["button"]))
    return 0
