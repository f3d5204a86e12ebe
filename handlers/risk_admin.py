"""The merchant's side of rules and risk, channel-neutral: parse -> one use case (core/risk/desk.py
RiskDesk) -> Screen. Called by handlers/admin.py for these commands:

    /review                              orders held for review, oldest first, each with approve/reject buttons
    /review approve ORDER                the order goes on: a fresh hold, the buyer is told to pay
    /review reject ORDER [NOTE]          its stock goes back; the buyer is told
    /ban user|phone|payer VALUE [REASON] the buyer's next orders are refused (audited)
    /unban user|phone|payer VALUE
    /bans                                the blacklist, newest first
    /risk USER                           a buyer's standing: linked accounts, activity, bans, scored orders

USER is `telegram:123`, `wechat:OPENID`, or a bare number (a Telegram user id). Buttons carry the commands
themselves ("/review approve R1A2"), so a press is checked like a typed command.
"""
from __future__ import annotations

from typing import Any

from core.errors import StoreError
from core.models import Buyer
from core.risk import BAN_KINDS, OrderRisk, RiskReport
from handlers import errors
from handlers.merchant import Usage
from handlers.screen import Action, Screen

COMMANDS = frozenset({"/review", "/ban", "/unban", "/bans", "/risk"})
QUEUE_SHOWN = 10  # orders with buttons in one /review answer
BANS_SHOWN = 30


def parse_user(text: str) -> Buyer | None:
    """`telegram:123`, `wechat:o6_x`, or a bare Telegram id; None for anything else."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 15:
        return Buyer("telegram", text)
    channel, sep, ident = text.partition(":")
    if sep and channel in ("telegram", "wechat", "console") and ident and len(ident) <= 64 and " " not in ident:
        return Buyer(channel, ident)
    return None


async def run(flow: Any, ctx: Any, command: str, rest: str) -> list[Screen]:
    """One risk command; usage errors raise Usage (handlers/admin.py answers with the usage text)."""
    desk = flow.shop.risk
    lang = ctx.language
    t = flow.i18n.t
    args = rest.split()
    name = command.lstrip("/")
    if command == "/review":
        if not args:
            return [await _queue(flow, lang)]
        if len(args) < 2 or args[0] not in ("approve", "reject") or len(args[1]) > 32:
            raise Usage(name)
        verb, order_id = args[0], args[1]
        try:
            if verb == "approve":
                order = await desk.approve(order_id, ctx.merchant)
            else:
                order = await desk.reject(order_id, ctx.merchant, rest.split(maxsplit=2)[2] if len(args) > 2 else "")
        except StoreError as exc:
            return [Screen(t(lang, "risk.admin.review_failed", order=order_id,
                             reason=errors.text(flow.i18n, lang, exc)), error=exc.code.value)]
        done = "risk.admin.approved" if verb == "approve" else "risk.admin.rejected"
        return [Screen(t(lang, done, order=order.id, buyer=order.buyer.key))]
    if command in ("/ban", "/unban"):
        if len(args) < 2 or args[0] not in BAN_KINDS or (command == "/unban" and len(args) != 2):
            raise Usage(name)
        kind, value = args[0], args[1]
        if kind == "user":
            buyer = parse_user(value)
            if buyer is None:
                raise Usage(name)
            value = buyer.key
        try:
            if command == "/ban":
                reason = rest.split(maxsplit=2)[2] if len(args) > 2 else ""
                ban = await desk.ban(kind, value, ctx.merchant, reason)
                return [Screen(t(lang, "risk.admin.banned", kind=t(lang, f"risk.ban.{kind}"), value=ban.value))]
            found = await desk.unban(kind, value, ctx.merchant)
        except ValueError:
            raise Usage(name) from None
        key = "risk.admin.unbanned" if found else "risk.admin.not_banned"
        return [Screen(t(lang, key, kind=t(lang, f"risk.ban.{kind}"), value=value),
                       error=None if found else "not_found")]
    if command == "/bans":
        bans = await desk.bans(BANS_SHOWN)
        if not bans:
            return [Screen(t(lang, "risk.admin.bans_title"), t(lang, "risk.admin.no_bans"))]
        lines = [t(lang, "risk.admin.ban_line", kind=t(lang, f"risk.ban.{b.kind}"), value=b.value,
                   at=b.at.strftime("%Y-%m-%d %H:%M"), reason=b.reason or "—") for b in bans]
        return [Screen(t(lang, "risk.admin.bans_title"), "\n".join(lines))]
    if command == "/risk":
        buyer = parse_user(args[0]) if len(args) == 1 else None
        if buyer is None:
            raise Usage(name)
        return [_report(flow, lang, await desk.risk_for(buyer))]
    raise ValueError(f"not a risk command: {command!r}")


def reasons_text(flow: Any, lang: str, reasons: list[dict[str, Any]]) -> str:
    """`velocity of orders (+40), new account (+10)` in the merchant's language."""
    t = flow.i18n.t
    parts = [f"{t(lang, 'risk.reason.' + str(r.get('signal', '')))} (+{r.get('points', 0)})" for r in reasons]
    return ", ".join(parts) or "—"


async def _queue(flow: Any, lang: str) -> Screen:
    t = flow.i18n.t
    queue = await flow.shop.risk.review_queue(QUEUE_SHOWN)
    if not queue:
        return Screen(t(lang, "risk.admin.queue_title"), t(lang, "risk.admin.queue_empty"))
    lines, rows = [], []
    for risk, order in queue:
        product = await flow.shop.product(order.product_id)
        lines.append(t(lang, "risk.admin.queue_line", order=order.id, sku=product.sku if product else order.product_id,
                       qty=order.qty, amount=flow.i18n.money(order.amount, order.currency, lang),
                       buyer=order.buyer.key, score=risk.score, reasons=reasons_text(flow, lang, risk.reasons),
                       at=risk.created_at.strftime("%m-%d %H:%M")))
        rows.append([Action(f"/review approve {order.id}", t(lang, "risk.review.approve_button") + f" {order.id}"),
                     Action(f"/review reject {order.id}", t(lang, "risk.review.reject_button") + f" {order.id}")])
    return Screen(t(lang, "risk.admin.queue_title"), "\n\n".join(lines), actions=rows,
                  footer=t(lang, "risk.admin.queue_hint"))


def _report(flow: Any, lang: str, r: RiskReport) -> Screen:
    t = flow.i18n.t
    f = r.facts
    lines = [
        t(lang, "risk.admin.report_phone", phone=f"+{f.phone}" if f.phone else "—", level=f.level,
          reseller=t(lang, "risk.admin.yes" if f.reseller else "risk.admin.no")),
        t(lang, "risk.admin.report_seen", at=f.created_at.strftime("%Y-%m-%d %H:%M") if f.created_at else "—"),
        t(lang, "risk.admin.report_linked", accounts=", ".join(b.key for b in r.linked) or "—"),
        t(lang, "risk.admin.report_activity", recent=r.activity.recent, abandoned=r.activity.abandoned,
          refunds=r.activity.refunds),
        t(lang, "risk.admin.report_bans", bans=", ".join(t(lang, f"risk.ban.{k}") for k in r.banned) or "—"),
        t(lang, "risk.admin.report_standing", score=r.standing.score,
          decision=t(lang, f"risk.decision.{r.standing.decision}"),
          reasons=reasons_text(flow, lang, [x.as_dict() for x in r.standing.reasons])),
    ]
    if r.orders:
        lines.append(t(lang, "risk.admin.report_orders"))
        lines += [_order_line(flow, lang, o) for o in r.orders]
    return Screen(t(lang, "risk.admin.report_title", buyer=r.buyer.key), "\n".join(lines))


def _order_line(flow: Any, lang: str, o: OrderRisk) -> str:
    t = flow.i18n.t
    review = f" · {t(lang, 'risk.admin.review.' + o.review)}" if o.review else ""
    return t(lang, "risk.admin.report_order", order=o.order_id, at=o.created_at.strftime("%m-%d %H:%M"),
             decision=t(lang, f"risk.decision.{o.decision}"), score=o.score,
             reasons=reasons_text(flow, lang, o.reasons)) + review
