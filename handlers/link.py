"""Linking one person's accounts (core/links.py) in the chat: the same flow on Telegram, WeChat and the console.

`/link` (or the menu's 🔗, or a keyword such as 关联 on WeChat) gives a one-time code; `/link CODE` sent from the
other account links the two ("I have a code" asks for it: the next message typed is the code, `Conversation.link`).
`/unlink` ends the link of the account it is sent from, after a confirmation. The typed code is never stored: it goes
straight from the message to the core, which keeps only its hash. Actions: handlers/actions.py Link.
"""
from __future__ import annotations

import functools

from core.errors import ErrorCode, StoreError
from core.links import shown
from handlers import errors
from handlers.actions import Home, Link, Orders
from handlers.router import Router, Turn
from handlers.screen import Action, Screen
from handlers.state import LinkWait
from locales import Translator

MAX_TYPED = 60  # what is kept of a typed code (a code is 8 characters)
router = Router("link")


def command(i18n: Translator, word: str) -> tuple[Link, list[str]] | None:
    """(action, arguments) for a typed link command: `/link`, `/link CODE`, `/unlink`, or the localized words."""
    head, _, rest = word.partition(" ")
    head = head.split("@", 1)[0].lower()
    if head == "/link" or head in _words(i18n, "link.keywords"):
        return (Link.LINK_REDEEM, [rest.strip()[:MAX_TYPED]]) if rest.strip() else (Link.LINK_CODE, [])
    if head == "/unlink" or (head in _words(i18n, "link.unlink_keywords") and not rest.strip()):
        return Link.UNLINK, []
    return None


@functools.lru_cache(maxsize=16)
def _words(i18n: Translator, key: str) -> frozenset[str]:
    """The words (every language's) that mean a command, e.g. 关联 for /link: WeChat buyers type words."""
    return frozenset(w.strip().lower() for lang in i18n.languages for w in i18n.t(lang, key).split(",") if w.strip())


def _home(turn: Turn) -> list[Action]:
    return [Action(Home.MENU.id(), turn.t("nav.menu"))]


@router.action(Link.LINK)
async def intro(turn: Turn) -> Screen:
    """What linking does, and the ways on: get a code, type one, or unlink."""
    return await _intro(turn)


async def _intro(turn: Turn, note: str = "") -> Screen:
    accounts = await turn.shop.links.linked(turn.buyer)
    body = turn.t("link.intro")
    if len(accounts) > 1:
        body += "\n\n" + turn.t("link.linked_now", n=len(accounts) - 1)
    rows = [[Action(Link.LINK_CODE.id(), turn.t("link.get_code"))],
            [Action(Link.LINK_ENTER.id(), turn.t("link.have_code"))]]
    if len(accounts) > 1:
        rows.append([Action(Link.UNLINK.id(), turn.t("link.unlink"))])
    rows.append(_home(turn))
    return Screen(turn.t("link.title"), (note + "\n\n" if note else "") + body, actions=rows)


@router.action(Link.LINK_CODE)
async def issue(turn: Turn) -> Screen:
    """A one-time code for the other account, as the whole command to paste there."""
    try:
        issued = await turn.shop.links.issue(turn.buyer)
    except StoreError as exc:
        return await _refused(turn, exc)
    # The whole command is the secret line (Telegram: hidden until tapped, with a copy button): copied in one
    # chat, pasted as it is into the other.
    return Screen(turn.t("link.title"), turn.t("link.code", minutes=issued.minutes),
                  secrets=[f"/link {shown(issued.code)}"], footer=turn.t("link.code_footer"),
                  actions=[[Action(Link.LINK_ENTER.id(), turn.t("link.have_code"))], _home(turn)])


@router.action(Link.LINK_ENTER, keeps=("link",))
async def enter(turn: Turn) -> Screen:
    """The buyer has a code: the next message they type is taken as the code."""
    turn.state.link = LinkWait()
    await turn.save()
    return Screen(turn.t("link.title"), turn.t("link.ask"), actions=[_home(turn)])


@router.action(Link.LINK_REDEEM)
async def redeem(turn: Turn, typed: str) -> Screen:
    """Link this account with the one that was given the code."""
    try:
        linked = await turn.shop.links.redeem(turn.buyer, typed[:64])
    except StoreError as exc:
        if exc.code is ErrorCode.LINK_CODE_INVALID:  # a typo: the next message is taken as the code again
            turn.state.link = LinkWait()
            await turn.save()
        return await _refused(turn, exc)
    key = "link.already" if linked.already else "link.done"
    return Screen(turn.t("link.title"), turn.t(key, n=len(linked.accounts) - 1),
                  actions=[[Action(Orders.ORDERS.id(0), turn.t("menu.orders"))], _home(turn)])


async def _refused(turn: Turn, exc: StoreError) -> Screen:
    screen = await _intro(turn, errors.text(turn.flow.i18n, turn.lang, exc))
    screen.error = exc.code.value
    return screen


@router.action(Link.UNLINK)
async def unlink_ask(turn: Turn) -> Screen:
    """Unlinking: what it ends, and a button to confirm."""
    accounts = await turn.shop.links.linked(turn.buyer)
    if len(accounts) < 2:
        return await _refused(turn, StoreError(ErrorCode.NOT_LINKED))
    return Screen(turn.t("link.unlink_title"), turn.t("link.unlink_ask", n=len(accounts) - 1),
                  actions=[[Action(Link.UNLINK_CONFIRM.id(), turn.t("link.unlink_confirm"))], _home(turn)])


@router.action(Link.UNLINK_CONFIRM)
async def unlink(turn: Turn) -> Screen:
    """End this account's link (quotas and bans stay with the person)."""
    try:
        others = await turn.shop.links.unlink(turn.buyer)
    except StoreError as exc:
        return await _refused(turn, exc)
    return Screen(turn.t("link.unlink_title"), turn.t("link.unlinked", n=len(others)), actions=[_home(turn)])
