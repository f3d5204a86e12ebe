"""Linking one person's accounts (core/links.py) in the chat: the same flow on Telegram, WeChat and the console.

`/link` (or the menu's 🔗, or a keyword such as 关联 on WeChat) gives a one-time code; `/link CODE` sent from the
other account links the two ("I have a code" asks for it: the next message typed is the code). `/unlink` ends the
link of the account it is sent from, after a confirmation. The typed code is never stored: it goes straight from
the message to the core, which keeps only its hash.
"""
from __future__ import annotations

import functools
from typing import Any

from core.errors import ErrorCode, StoreError
from core.links import shown
from core.models import Buyer
from handlers.screen import Action, Screen

STATE = "link"  # waiting for a code typed after "I have a code" (numbered and button channels alike)
ACTIONS = frozenset({"lk", "lg", "lc", "lr", "lu", "lux"})


def command(flow: Any, word: str) -> tuple[str, str] | None:
    """(action, argument) for a typed link command: `/link`, `/link CODE`, `/unlink`, or the localized words."""
    head, _, rest = word.partition(" ")
    head = head.split("@", 1)[0].lower()
    if head == "/link" or head in _words(flow.i18n, "link.keywords"):
        return ("lr", rest.strip()) if rest.strip() else ("lg", "")
    if head == "/unlink" or (head in _words(flow.i18n, "link.unlink_keywords") and not rest.strip()):
        return ("lu", "")
    return None


@functools.lru_cache(maxsize=16)
def _words(i18n: Any, key: str) -> frozenset[str]:
    """The words (every language's) that mean a command, e.g. 关联 for /link: WeChat buyers type words."""
    return frozenset(w.strip().lower() for lang in i18n.languages for w in i18n.t(lang, key).split(",") if w.strip())


async def dispatch(flow: Any, cust: Any, buyer: Buyer, lang: str, name: str, arg: str) -> list[Screen]:
    if name == "lk":
        return [await _intro(flow, buyer, lang)]
    if name == "lg":
        return [await _issue(flow, buyer, lang)]
    if name == "lc":
        cust.state[STATE] = {"w": 1}
        await flow.shop.save_customer(cust)
        t = flow.i18n.t
        return [Screen(t(lang, "link.title"), t(lang, "link.ask"), actions=[[Action("menu", t(lang, "nav.menu"))]])]
    if name == "lr":
        return [await _redeem(flow, cust, buyer, lang, arg)]
    if name == "lu":
        return [await _unlink_ask(flow, buyer, lang)]
    if name == "lux":
        return [await _unlink(flow, buyer, lang)]
    raise ValueError(f"unknown link action {name!r}")


def _home(flow: Any, lang: str) -> list[Action]:
    return [Action("menu", flow.i18n.t(lang, "nav.menu"))]


async def _intro(flow: Any, buyer: Buyer, lang: str, note: str = "") -> Screen:
    """What linking does, and the ways on: get a code, type one, or unlink."""
    t = flow.i18n.t
    accounts = await flow.shop.links.linked(buyer)
    body = t(lang, "link.intro")
    if len(accounts) > 1:
        body += "\n\n" + t(lang, "link.linked_now", n=len(accounts) - 1)
    rows = [[Action("lg", t(lang, "link.get_code"))], [Action("lc", t(lang, "link.have_code"))]]
    if len(accounts) > 1:
        rows.append([Action("lu", t(lang, "link.unlink"))])
    rows.append(_home(flow, lang))
    return Screen(t(lang, "link.title"), (note + "\n\n" if note else "") + body, actions=rows)


async def _issue(flow: Any, buyer: Buyer, lang: str) -> Screen:
    t = flow.i18n.t
    try:
        issued = await flow.shop.links.issue(buyer)
    except StoreError as exc:
        return await _refused(flow, buyer, lang, exc)
    # The whole command is the secret line (Telegram: hidden until tapped, with a copy button): copied in one
    # chat, pasted as it is into the other.
    return Screen(t(lang, "link.title"), t(lang, "link.code", minutes=issued.minutes),
                  secrets=[f"/link {shown(issued.code)}"], footer=t(lang, "link.code_footer"),
                  actions=[[Action("lc", t(lang, "link.have_code"))], _home(flow, lang)])


async def _redeem(flow: Any, cust: Any, buyer: Buyer, lang: str, typed: str) -> Screen:
    t = flow.i18n.t
    try:
        linked = await flow.shop.links.redeem(buyer, typed[:64])
    except StoreError as exc:
        if exc.code is ErrorCode.LINK_CODE_INVALID:  # a typo: the next message is taken as the code again
            cust.state[STATE] = {"w": 1}
            await flow.shop.save_customer(cust)
        return await _refused(flow, buyer, lang, exc)
    key = "link.already" if linked.already else "link.done"
    return Screen(t(lang, "link.title"), t(lang, key, n=len(linked.accounts) - 1),
                  actions=[[Action("os:0", t(lang, "menu.orders"))], _home(flow, lang)])


async def _refused(flow: Any, buyer: Buyer, lang: str, exc: StoreError) -> Screen:
    screen = await _intro(flow, buyer, lang, flow.i18n.t(lang, exc.message_key, **exc.params))
    screen.error = exc.code.value
    return screen


async def _unlink_ask(flow: Any, buyer: Buyer, lang: str) -> Screen:
    t = flow.i18n.t
    accounts = await flow.shop.links.linked(buyer)
    if len(accounts) < 2:
        return await _refused(flow, buyer, lang, StoreError(ErrorCode.NOT_LINKED))
    return Screen(t(lang, "link.unlink_title"), t(lang, "link.unlink_ask", n=len(accounts) - 1),
                  actions=[[Action("lux", t(lang, "link.unlink_confirm"))], _home(flow, lang)])


async def _unlink(flow: Any, buyer: Buyer, lang: str) -> Screen:
    t = flow.i18n.t
    try:
        others = await flow.shop.links.unlink(buyer)
    except StoreError as exc:
        return await _refused(flow, buyer, lang, exc)
    return Screen(t(lang, "link.unlink_title"), t(lang, "link.unlinked", n=len(others)),
                  actions=[_home(flow, lang)])
