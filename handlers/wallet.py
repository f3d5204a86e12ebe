"""A reseller's wallet in the chat: balance, top-up by Telegram Stars or WeChat Pay, commissions.

Entered from the menu ("Wallet", shown to chat identities a merchant bound to a reseller: `run.py reseller owner`).
Actions (handlers/actions.py Wallet): the wallet, a top-up by the i-th configured amount (an invoice / QR code for
a wallet top-up, core.resellers `start_topup`), commissions and the referral link. A chat identity that acts for no
reseller gets a clear refusal, never someone else's wallet.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.resellers import REF_PREFIX, Reseller, ResellerCode, ResellerDesk, ResellerError
from handlers import errors
from handlers.actions import Home, Wallet
from handlers.merchant import AdminCtx
from handlers.router import Router, Turn
from handlers.screen import Action, Screen

if TYPE_CHECKING:
    from handlers.admin import AdminFlow  # handlers/admin.py hands /payout on to this module

# The payment provider of each chat channel (bots/telegram/common.py PROVIDER, bots/wechat/pay.py PROVIDER).
PROVIDERS = {"telegram": "telegram_stars", "wechat": "wechat_pay"}

router = Router("wallet")


def _desk(turn: Turn) -> ResellerDesk:
    desk = turn.shop.resellers
    if desk is None:  # the wallet actions are offered only where a reseller desk runs
        raise ValueError("no resellers here")
    return desk


async def with_entry(turn: Turn, menu: Screen) -> Screen:
    """The menu, with a "Wallet" row for a chat identity that acts for a reseller."""
    desk = turn.shop.resellers
    if desk is not None and await desk.reseller_of(turn.buyer) is not None:
        menu.actions.insert(len(menu.actions) - 1, [Action(Wallet.WALLET.id(), turn.t("wallet.menu"))])
    return menu


async def _reseller(turn: Turn) -> Reseller | Screen:
    """The reseller this chat identity acts for, or the refusal to show."""
    desk = turn.shop.resellers
    reseller = await desk.reseller_of(turn.buyer) if desk is not None else None
    if reseller is None:
        return Screen(turn.t("wallet.not_reseller"), actions=turn.home(), error="not_reseller")
    return reseller


@router.action(Wallet.WALLET)
async def wallet(turn: Turn) -> Screen:
    """Balance, credit, commission, and the top-up amounts this channel can pay."""
    reseller = await _reseller(turn)
    return reseller if isinstance(reseller, Screen) else await _wallet(turn, reseller)


@router.action(Wallet.WALLET_TOPUP)
async def wallet_topup(turn: Turn, index: int) -> Screen:
    """The chosen amount as an invoice (Telegram Stars) or a WeChat Pay QR code; paying it credits the wallet."""
    reseller = await _reseller(turn)
    return reseller if isinstance(reseller, Screen) else await _topup(turn, reseller, index)


@router.action(Wallet.COMMISSIONS)
async def commissions(turn: Turn) -> Screen:
    """Commission balance, the newest entries and the referral payload that binds new customers."""
    reseller = await _reseller(turn)
    return reseller if isinstance(reseller, Screen) else await _commissions(turn, reseller)


def _choices(turn: Turn, reseller: Reseller) -> list[tuple[int, int, int | None]]:
    """(index, amount, stars) of the configured amounts this channel can take."""
    out: list[tuple[int, int, int | None]] = []
    for i, (amount, stars) in enumerate(_desk(turn).policy.topup_choices):
        if turn.buyer.channel == "telegram" and stars:
            out.append((i, amount, stars))
        elif turn.buyer.channel == "wechat" and reseller.currency == "CNY":
            out.append((i, amount, None))
    return out


async def _wallet(turn: Turn, reseller: Reseller) -> Screen:
    commission, _ = await _desk(turn).commissions(reseller.id, limit=1)
    body = [turn.t("wallet.balance", name=reseller.name, balance=turn.money(reseller.balance, reseller.currency))]
    if reseller.credit_limit:
        body.append(turn.t("wallet.credit", limit=turn.money(reseller.credit_limit, reseller.currency)))
    body.append(turn.t("wallet.commission", amount=turn.money(commission, reseller.currency)))
    rows = []
    for i, amount, stars in _choices(turn, reseller):
        label = turn.t("wallet.topup_stars" if stars else "wallet.topup", amount=turn.money(amount, reseller.currency),
                       stars=stars or 0)
        rows.append([Action(Wallet.WALLET_TOPUP.id(i), label)])
    if not rows:
        body.append(turn.t("wallet.no_topup"))
    rows.append([Action(Wallet.COMMISSIONS.id(), turn.t("wallet.commissions")),
                 Action(Home.MENU.id(), turn.t("nav.menu"))])
    return Screen(turn.t("wallet.title"), "\n".join(body), actions=rows)


async def _topup(turn: Turn, reseller: Reseller, index: int) -> Screen:
    choice = {i: (amount, stars) for i, amount, stars in _choices(turn, reseller)}.get(index)
    if choice is None:
        raise ValueError("no such top-up amount")
    amount, stars = choice
    topup = await _desk(turn).start_topup(reseller, turn.buyer, amount, PROVIDERS[turn.buyer.channel], stars)
    minutes = max(1, round((topup.expires_at - topup.created_at).total_seconds() / 60))
    title = turn.t("wallet.topup_title", amount=turn.money(amount, topup.currency))
    return Screen(title, turn.t("wallet.topup_body", name=reseller.name, minutes=minutes),
                  actions=[[Action(Wallet.WALLET.id(), turn.t("wallet.title"))]],
                  invoice={"order_id": topup.id, "title": title, "amount": amount, "currency": topup.currency,
                           "stars": stars or 0, "qty": 1, "lang": turn.lang, "minutes": minutes, "topup": True})


async def _commissions(turn: Turn, reseller: Reseller) -> Screen:
    balance, entries = await _desk(turn).commissions(reseller.id, limit=10)
    lines = [turn.t("wallet.commission", amount=turn.money(balance, reseller.currency)),
             turn.t("wallet.referral", payload=f"{REF_PREFIX}{reseller.id}")]
    for e in entries:
        lines.append(turn.t(f"wallet.entry.{e.kind}", amount=turn.money(abs(e.amount), e.currency),
                            order=e.order_id or "", at=e.created_at.strftime("%Y-%m-%d")))
    if not entries:
        lines.append(turn.t("wallet.no_entries"))
    return Screen(turn.t("wallet.commissions"), "\n".join(lines),
                  actions=[[Action(Wallet.WALLET.id(), turn.t("wallet.title")),
                            Action(Home.MENU.id(), turn.t("nav.menu"))]])


async def payout_command(flow: AdminFlow, ctx: AdminCtx, args: list[str]) -> Screen:
    """/payout RESELLER AMOUNT: a merchant records a commission paid out (never more than the balance)."""
    t, lang = flow.i18n.t, ctx.language
    if len(args) != 2 or not all(a.isascii() and a.isdigit() and len(a) <= 12 for a in args):
        return Screen(t(lang, "admin.usage.title"), t(lang, "wallet.payout.usage"), error="usage")
    desk = flow.shop.resellers
    try:
        if desk is None:
            raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=args[0])
        entry = await desk.payout(int(args[0]), int(args[1]), actor=ctx.merchant.key)
        balance, _ = await desk.commissions(entry.reseller_id, limit=1)
    except ResellerError as exc:
        return errors.screen(flow.i18n, lang, exc)
    money = flow.i18n.money
    return Screen(t(lang, "wallet.payout.done", reseller=entry.reseller_id,
                    amount=money(-entry.amount, entry.currency, lang), balance=money(balance, entry.currency, lang)))
