"""A reseller's wallet in the chat: balance, top-up by Telegram Stars or WeChat Pay, commissions.

Entered from the menu ("Wallet", shown to chat identities a merchant bound to a reseller: `run.py reseller owner`)
and routed by customer.py `_dispatch`. Action ids: `wl` the wallet, `wt:<i>` top up by the i-th configured amount
(an invoice / QR code for a wallet top-up, core/resellers/topups.py `start_topup`), `wc` commissions and the
referral link. A chat identity that acts for no reseller gets a clear refusal, never someone else's wallet.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.models import Buyer
from core.resellers import REF_PREFIX, Reseller, ResellerCode, ResellerDesk, ResellerError
from handlers.screen import Action, Screen

if TYPE_CHECKING:
    from handlers.admin import AdminCtx, AdminFlow
    from handlers.customer import Ctx, CustomerFlow

ACTIONS = frozenset({"wl", "wt", "wc"})
# The payment provider of each chat channel (bots/telegram/common.py PROVIDER, bots/wechat/pay.py PROVIDER).
PROVIDERS = {"telegram": "telegram_stars", "wechat": "wechat_pay"}


def _desk(flow: CustomerFlow) -> ResellerDesk | None:
    return flow.shop.resellers


async def with_entry(flow: CustomerFlow, buyer: Buyer, lang: str, menu: Screen) -> Screen:
    """The menu, with a "Wallet" row for a chat identity that acts for a reseller."""
    desk = _desk(flow)
    if desk is not None and await desk.reseller_of(buyer) is not None:
        menu.actions.insert(len(menu.actions) - 1, [Action("wl", flow.i18n.t(lang, "wallet.menu"))])
    return menu


async def dispatch(flow: CustomerFlow, ctx: Ctx, lang: str, name: str, args: list[str]) -> list[Screen]:
    """Parse a wallet action -> one use case -> Screen."""
    from handlers.customer import _n

    desk = _desk(flow)
    reseller = await desk.reseller_of(ctx.buyer) if desk is not None else None
    t = flow.i18n.t
    if reseller is None:
        return [Screen(t(lang, "wallet.not_reseller"), actions=[[Action("menu", t(lang, "nav.menu"))]],
                       error="not_reseller")]
    if name == "wt":
        return [await _topup(flow, ctx, lang, reseller, _n(args[0]))]
    if name == "wc":
        return [await _commissions(flow, lang, reseller)]
    return [await _wallet(flow, ctx, lang, reseller)]


def _choices(flow: CustomerFlow, buyer: Buyer, reseller: Reseller) -> list[tuple[int, int, int | None]]:
    """(index, amount, stars) of the configured amounts this channel can take."""
    out = []
    for i, (amount, stars) in enumerate(_desk(flow).policy.topup_choices):
        if buyer.channel == "telegram" and stars:
            out.append((i, amount, stars))
        elif buyer.channel == "wechat" and reseller.currency == "CNY":
            out.append((i, amount, None))
    return out


async def _wallet(flow: CustomerFlow, ctx: Ctx, lang: str, reseller: Reseller) -> Screen:
    t = flow.i18n.t
    money = flow.i18n.money
    commission, _ = await _desk(flow).commissions(reseller.id, limit=1)
    body = [t(lang, "wallet.balance", name=reseller.name, balance=money(reseller.balance, reseller.currency, lang))]
    if reseller.credit_limit:
        body.append(t(lang, "wallet.credit", limit=money(reseller.credit_limit, reseller.currency, lang)))
    body.append(t(lang, "wallet.commission", amount=money(commission, reseller.currency, lang)))
    rows = []
    for i, amount, stars in _choices(flow, ctx.buyer, reseller):
        label = t(lang, "wallet.topup_stars" if stars else "wallet.topup",
                  amount=money(amount, reseller.currency, lang), stars=stars or 0)
        rows.append([Action(f"wt:{i}", label)])
    if not rows:
        body.append(t(lang, "wallet.no_topup"))
    rows.append([Action("wc", t(lang, "wallet.commissions")), Action("menu", t(lang, "nav.menu"))])
    return Screen(t(lang, "wallet.title"), "\n".join(body), actions=rows)


async def _topup(flow: CustomerFlow, ctx: Ctx, lang: str, reseller: Reseller, index: int) -> Screen:
    """The chosen amount as an invoice (Telegram Stars) or a WeChat Pay QR code; paying it credits the wallet."""
    choice = {i: (amount, stars) for i, amount, stars in _choices(flow, ctx.buyer, reseller)}.get(index)
    if choice is None:
        raise ValueError("no such top-up amount")
    amount, stars = choice
    t = flow.i18n.t
    topup = await _desk(flow).start_topup(reseller, ctx.buyer, amount, PROVIDERS[ctx.buyer.channel], stars)
    minutes = max(1, round((topup.expires_at - topup.created_at).total_seconds() / 60))
    title = t(lang, "wallet.topup_title", amount=flow.i18n.money(amount, topup.currency, lang))
    return Screen(title, t(lang, "wallet.topup_body", name=reseller.name, minutes=minutes),
                  actions=[[Action("wl", t(lang, "wallet.title"))]],
                  invoice={"order_id": topup.id, "title": title, "amount": amount, "currency": topup.currency,
                           "stars": stars or 0, "qty": 1, "lang": lang, "minutes": minutes, "topup": True})


async def _commissions(flow: CustomerFlow, lang: str, reseller: Reseller) -> Screen:
    """Commission balance, the newest entries and the referral payload that binds new customers."""
    t = flow.i18n.t
    balance, entries = await _desk(flow).commissions(reseller.id, limit=10)
    lines = [t(lang, "wallet.commission", amount=flow.i18n.money(balance, reseller.currency, lang)),
             t(lang, "wallet.referral", payload=f"{REF_PREFIX}{reseller.id}")]
    for e in entries:
        lines.append(t(lang, f"wallet.entry.{e.kind}", amount=flow.i18n.money(abs(e.amount), e.currency, lang),
                       order=e.order_id or "", at=e.created_at.strftime("%Y-%m-%d")))
    if not entries:
        lines.append(t(lang, "wallet.no_entries"))
    return Screen(t(lang, "wallet.commissions"), "\n".join(lines),
                  actions=[[Action("wl", t(lang, "wallet.title")), Action("menu", t(lang, "nav.menu"))]])


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
        return Screen(t(lang, f"wallet.payout.{exc.code}", **exc.params), error=exc.code)
    money = flow.i18n.money
    return Screen(t(lang, "wallet.payout.done", reseller=entry.reseller_id,
                    amount=money(-entry.amount, entry.currency, lang), balance=money(balance, entry.currency, lang)))
