"""`/mydata` (core/privacy.py): what the store keeps about the buyer, and "Delete my data", which after one more
confirmation asks the merchants to run `run.py forget` (docs/personal-data.md says why it is a request). The same
screens on Telegram, WeChat (numbered replies, or the words of `privacy.keywords`) and the console."""
from __future__ import annotations

from handlers import link
from handlers.actions import Home, Privacy
from handlers.router import Router, Turn
from handlers.screen import Action, Screen
from locales import Translator

router = Router("privacy")
COMMANDS = ("/mydata",)


def asked(i18n: Translator, word: str) -> bool:
    """`/mydata`, or one of its words (我的数据 on WeChat, where buyers type words)."""
    head = word.split("@", 1)[0].strip().lower()
    return head in COMMANDS or head in link._words(i18n, "privacy.keywords")  # noqa: SLF001 - the shared cache


def _home(turn: Turn) -> list[Action]:
    return [Action(Home.MENU.id(), turn.t("nav.menu"))]


@router.action(Privacy.MYDATA)
async def mydata(turn: Turn) -> Screen:
    kept = await turn.shop.privacy.kept(turn.buyer)
    # The language as this turn read it: a first contact's row may still be on its way to the database (stored by
    # the group commit without being waited for), and it is stored with this very language.
    language = kept.language or turn.customer.language
    yes, no = turn.t("privacy.yes"), turn.t("privacy.no")
    body = turn.t("privacy.kept", accounts=kept.accounts, orders=kept.orders, payments=kept.payments,
                  points=kept.points, tickets=kept.tickets, language=language or "-",
                  phone=yes if kept.phone else no, alerts=kept.alerts, news=no if kept.news_optout else yes)
    return Screen(turn.t("privacy.title"), body + "\n\n" + turn.t("privacy.why"),
                  actions=[[Action(Privacy.DELETE.id(), turn.t("privacy.delete"))], _home(turn)])


@router.action(Privacy.DELETE)
async def ask(turn: Turn) -> Screen:
    return Screen(turn.t("privacy.title"), turn.t("privacy.delete_ask"),
                  actions=[[Action(Privacy.DELETE_CONFIRM.id(), turn.t("privacy.delete_confirm"))], _home(turn)])


@router.action(Privacy.DELETE_CONFIRM)
async def confirm(turn: Turn) -> Screen:
    sent = await turn.shop.privacy.request(turn.buyer, turn.shop.alerts)
    return Screen(turn.t("privacy.title"), turn.t("privacy.requested" if sent else "privacy.requested_already"),
                  actions=[_home(turn)])
