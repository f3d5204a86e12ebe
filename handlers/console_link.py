"""`/console` in the chat (Telegram and WeChat): a merchant or staff member gets a one-time sign-in link to the web
console (core/console.py), built from `server.public_url`. Anyone else is refused (audited as `admin_denied`); with
the console off, the answer says how to turn it on."""
from __future__ import annotations

from core.console import ConsoleCode, ConsoleDesk, ConsoleError
from core.models import Buyer
from handlers.screen import Screen
from locales import Translator

COMMAND = "/console"


async def console_link(desk: ConsoleDesk | None, i18n: Translator, who: Buyer, lang: str) -> Screen:
    if desk is None:
        return Screen(i18n.t(lang, "console.off"), error="console_off")
    try:
        token = await desk.issue_link(who)
    except ConsoleError as exc:
        assert exc.code is ConsoleCode.NOT_MERCHANT
        return Screen(i18n.t(lang, "console.not_allowed"), error=exc.code.value)
    return Screen(i18n.t(lang, "console.link", minutes=desk.link_minutes, url=desk.login_url(token)))
