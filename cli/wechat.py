"""`run.py wechat menu`: the WeChat custom menu from `wechat.menu` (menu/create)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from core.settings import Settings


def add_parser(sub: Any) -> None:
    wx = sub.add_parser("wechat", help="WeChat Official Account commands").add_subparsers(dest="wechat_command",
                                                                                         required=True)
    wx.add_parser("menu", help="create the custom menu from wechat.menu")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    return await create_menu(settings)


async def create_menu(settings: Settings) -> int:
    """Creates the WeChat custom menu from `wechat.menu` (menu/create)."""
    from bots.wechat.client import WeChatApiError
    from bots.wechat.wiring import create_menu as menu_create

    if not settings.wechat.enabled:
        print("error: wechat.appid is not set", file=sys.stderr)
        return 2
    try:
        menu = await menu_create(settings)
    except WeChatApiError as exc:
        print(f"error: WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    for button in menu["button"]:
        subs = button.get("sub_button")
        print(f"{button['name']}: " + (", ".join(f"{b['name']} ({b.get('key') or b.get('url')})" for b in subs)
                                        if subs else str(button.get("key") or button.get("url"))))
    print(f"custom menu created ({len(menu['button'])} buttons)")
    return 0
