"""The menu, help, the language and the terms of sale: where every conversation starts and comes back to."""
from __future__ import annotations

from core.models import localized
from handlers import members, wallet
from handlers.actions import Home, Link, Orders, Shopping
from handlers.router import Router, Turn
from handlers.screen import Action, Screen

router = Router("home")


def menu_screen(turn: Turn) -> Screen:
    """The menu as every error leads back to it (without the reseller's wallet row)."""
    body = turn.t("menu.body")
    if turn.flow.demo_payments:
        body += "\n" + turn.t("demo.banner")
    rows = [[Action(Shopping.CATALOG.id(), turn.t("menu.catalog"))],
            [Action(Orders.ORDERS.id(0), turn.t("menu.orders"))],
            [Action(Home.HELP.id(), turn.t("menu.help")), Action(Home.LANGUAGE.id(), turn.t("menu.language"))],
            [Action(Link.LINK.id(), turn.t("menu.link"))]]
    account = members.entry(turn)
    if account is not None:  # member levels, points, referrals (marketing.members)
        rows.insert(2, account)
    if turn.flow.webapp_url:  # Telegram with the Mini App on: "Open shop" first (a web_app button)
        rows.insert(0, [Action(Home.MENU.id(), turn.t("miniapp.open_shop"), web_app=turn.flow.webapp_url)])
    return Screen(turn.t("menu.title", shop=turn.flow.shop_name), body, actions=rows)


@router.action(Home.MENU)
async def menu(turn: Turn) -> Screen:
    """The menu; a chat identity that acts for a reseller also gets its wallet there."""
    return await wallet.with_entry(turn, menu_screen(turn))


@router.action(Home.HELP)
async def help_(turn: Turn) -> Screen:
    """How the shop works, and whom to ask."""
    body = turn.t("help.body")
    if turn.flow.support:
        body += "\n" + turn.t("help.support", contact=turn.flow.support)
    return Screen(turn.t("help.title"), body, actions=turn.home())


@router.action(Home.TERMS)
async def terms(turn: Turn) -> Screen:
    """The shop's terms of sale (`store.terms`, in the buyer's language), or the default text of locales/."""
    text = localized(turn.flow.terms, turn.lang, turn.shop.default_language) if turn.flow.terms else ""
    if not text.strip():
        text = turn.t("terms.body", shop=turn.flow.shop_name, contact=turn.flow.support or "—")
    return Screen(turn.t("terms.title"), text.strip(), actions=turn.home())


@router.action(Home.LANGUAGE)
async def language(turn: Turn, code: str = "") -> Screen:
    """The languages to pick from; with one picked, the menu in it."""
    i18n = turn.flow.i18n
    if not code:
        return Screen(turn.t("language.title"), actions=[
            [Action(Home.LANGUAGE.id(c), i18n.language_name(c))] for c in i18n.languages])
    if code not in i18n.languages:
        raise ValueError(code)
    turn.customer.language = turn.lang = code
    await turn.save()
    screen = menu_screen(turn)
    screen.body = turn.t("language.set") + "\n\n" + screen.body
    return screen
