"""After-sales in the chat, channel-neutral: parse -> one use case (core/aftersales/problems.py ProblemDesk) -> Screen.
The buyer's actions are routed here (handlers/actions.py Aftersales); handlers/admin.py hands the merchant commands on.

Buyer actions:
    report:ORDER              what is wrong? (does not work / used / wrong product / other)
    report:ORDER:PROBLEM      checked with the supplier, reissued within policy, or a ticket
    report:ORDER:PROBLEM:t    a ticket even though the supplier said the code is unused
    report:ORDER:other        the next message the buyer types is the description (Conversation.report_note)
    history:PAGE              history: purchases, reveals (when, where) and tickets, newest first
Merchant commands:
    /tickets [PAGE]           open tickets, oldest first, with reissue / refund / reject buttons
    /reissue T12|ORDER        new codes from the pool; the ticket closed as reissued
    /reject T12|ORDER TEXT    the buyer gets TEXT; the ticket closed as rejected
"""
from __future__ import annotations

from typing import Any

from core.aftersales import MAX_NOTE, HistoryItem, ProblemDesk, Ticket, clean_note, problems_for, ticket_id_of
from core.models import Order, localized
from handlers.actions import Aftersales, Home, Orders
from handlers.merchant import Usage
from handlers.router import Router, Turn
from handlers.screen import Action, Screen
from handlers.state import NoteWait

MAX_TYPED = 2000  # what is kept of a typed message before it is cut to MAX_NOTE
HISTORY_PAGE = 10
TICKETS_PAGE = 10
MERCHANT = frozenset({"/tickets", "/reissue", "/reject"})

router = Router("aftersales")


def _desk(turn: Turn) -> ProblemDesk:
    desk = turn.shop.problems
    if desk is None:
        raise ValueError("no after-sales here")
    return desk


# -- the buyer -----------------------------------------------------------------------------------------------

@router.action(Aftersales.REPORT, keeps=("report_note",))
async def report(turn: Turn, order_id: str, problem: str = "", ticket: str | None = None) -> Screen:
    """Ask what is wrong, then check / reissue / open a ticket, and say which."""
    desk = _desk(turn)
    if ticket not in (None, "t") or (ticket and not problem):
        raise ValueError("bad report action")
    if not problem:
        _, p = await turn.shop.order_for(order_id, turn.buyer)  # someone else's order is refused here already
        rows = [[Action(Aftersales.REPORT.id(order_id, k), turn.t(f"aftersales.problem.{k}"))]
                for k in problems_for(p.kind)]
        rows.append([Action(Orders.ORDER.id(order_id), turn.t("nav.back"))])
        return Screen(turn.t("aftersales.report_title", order=order_id), turn.t("aftersales.report_ask"), actions=rows)
    if problem == "other":  # the buyer's own words come next
        await turn.shop.order_for(order_id, turn.buyer)
        turn.state.report_note = NoteWait(order_id)
        await turn.save()
        return Screen(turn.t("aftersales.report_title", order=order_id), turn.t("aftersales.note.ask", n=MAX_NOTE),
                      actions=[[Action(Orders.ORDER.id(order_id), turn.t("nav.back"))]])
    return _answer(turn, await desk.report(turn.buyer, order_id, problem, ticket=ticket is not None), problem)


@router.action(Aftersales.REPORT_NOTE, keeps=("report_note",))
async def report_note(turn: Turn, typed: str) -> Screen:
    """The buyer typed the description of an "other" problem: it goes with a ticket to the merchants."""
    wait = turn.state.report_note
    turn.state.report_note = None
    await turn.save()
    note = clean_note(typed)
    if wait is None or not note:
        raise ValueError("no description awaited")
    return _answer(turn, await _desk(turn).report(turn.buyer, wait.order_id, "other", note), "other")


def _answer(turn: Turn, result: Any, problem: str) -> Screen:
    oid = result.order.id
    title = turn.t("aftersales.report_title", order=oid)
    rows = [[Action(Orders.ORDER.id(oid), turn.t("menu.orders")), Action(Home.MENU.id(), turn.t("nav.menu"))]]
    if result.outcome == "unused":  # the supplier vouches for the code; the buyer may still ask a person
        return Screen(title, turn.t("aftersales.unused", order=oid), actions=[
            [Action(Aftersales.REPORT.id(oid, problem, "t"), turn.t("aftersales.button.ticket_anyway"))], *rows])
    if result.outcome == "reissued":
        return Screen(title, turn.t("aftersales.reissued", order=oid), actions=rows)
    body = turn.t("aftersales.ticket", order=oid)
    if result.ticket is not None:
        body += "\n" + turn.t("aftersales.ticket_ref", ticket=f"T{result.ticket}")
    return Screen(title, body, actions=rows)


def _ticket_line(t: Any, lang: str, tk: Ticket) -> str:
    line = t(lang, "aftersales.ticket_line", ticket=tk.ref, status=t(lang, f"aftersales.ticket_status.{tk.status}"))
    if tk.status == "rejected" and tk.answer:
        line += " " + t(lang, "aftersales.ticket_reason", answer=tk.answer)
    return line


async def order_lines(turn: Turn, order: Order) -> str:
    """Lines for the order screen: each ticket of the order with its status (and the merchant's reason)."""
    desk = turn.shop.problems
    if desk is None:
        return ""
    tickets = (await desk.tickets_for([order.id])).get(order.id, [])
    return "".join("\n" + _ticket_line(turn.flow.i18n.t, turn.lang, tk) for tk in tickets)


@router.action(Aftersales.HISTORY)
async def history(turn: Turn, page: int = 0) -> Screen:
    """The buyer's own purchases, reveals (when and where the codes were shown) and tickets, paginated."""
    t, lang = turn.flow.i18n.t, turn.lang
    items: list[HistoryItem] = await _desk(turn).history(turn.buyer, HISTORY_PAGE + 1, page * HISTORY_PAGE)
    products = {p.id: p for p in await turn.shop.products(include_inactive=True)}
    lines = []
    for it in items[:HISTORY_PAGE]:
        when = it.at.strftime("%Y-%m-%d %H:%M")
        if it.kind == "purchase":
            p = products.get(it.product_id or 0)
            title = localized(p.title, lang, turn.shop.default_language) if p else f"#{it.product_id}"
            lines.append(t(lang, "aftersales.history.purchase", at=when, order=it.order_id, title=title, qty=it.qty,
                           status=t(lang, f"status.{it.status}")))
        elif it.kind == "reveal":
            lines.append(t(lang, "aftersales.history.reveal", at=when, order=it.order_id, chat=it.chat,
                           channel=it.channel))
        elif it.ticket is not None:
            lines.append(t(lang, "aftersales.history.ticket", at=when, order=it.order_id)
                         + " " + _ticket_line(t, lang, it.ticket))
    if not lines:
        lines.append(t(lang, "aftersales.history.empty"))
    nav = []
    if page > 0:
        nav.append(Action(Aftersales.HISTORY.id(page - 1), t(lang, "nav.prev")))
    if len(items) > HISTORY_PAGE:
        nav.append(Action(Aftersales.HISTORY.id(page + 1), t(lang, "nav.next")))
    rows = [nav] if nav else []
    rows.append([Action(Orders.ORDERS.id(0), t(lang, "nav.back")), Action(Home.MENU.id(), t(lang, "nav.menu"))])
    return Screen(t(lang, "aftersales.history.title", page=page + 1), "\n".join(lines), actions=rows)


def alert_screen(flow: Any, lang: str, key: str, params: dict[str, Any]) -> Screen:
    """A merchant alert that came through the outbox offering commands (core/aftersales/alerts.py OutboxAlerts):
    buttons carrying the command on button channels (Telegram), "label: /command" lines to type elsewhere."""
    t = flow.i18n.t
    lang = lang or flow.shop.default_language
    params = dict(params)
    commands = [(str(label), str(cmd)) for label, cmd in params.pop("_commands", [])]
    body = t(lang, key, **params)
    if flow.numbered:
        return Screen(body + "".join(f"\n{t(lang, label)}: {cmd}" for label, cmd in commands))
    return Screen(body, actions=[[Action(cmd[:64], t(lang, label))] for label, cmd in commands])


# -- the merchant --------------------------------------------------------------------------------------------

async def merchant(admin: Any, ctx: Any, command: str, rest: str) -> list[Screen]:
    """/tickets, /reissue, /reject for AdminFlow (handlers/admin.py); refusals are AdminErrors (answered and
    audited there)."""
    t, lang = admin.i18n.t, ctx.language
    args = rest.split()
    if command == "/tickets":
        if len(args) > 1 or (args and not (args[0].isascii() and args[0].isdigit() and 0 < int(args[0]) < 10**6)):
            raise Usage("tickets")
        return [await _tickets(admin, ctx, int(args[0]) if args else 1)]
    if command == "/reissue":
        if len(args) != 1:
            raise Usage("reissue")
        order, n = await admin.service.reissue(ctx.merchant, args[0])
        return [Screen(t(lang, "aftersales.admin.title", order=order.id), t(
            lang, "aftersales.admin.reissued", order=order.id, n=n, buyer=order.buyer.key))]
    parts = rest.split(maxsplit=1)
    if len(parts) == 1 and ticket_id_of(parts[0]) is not None:  # a pressed Reject button: the reason is typed
        ref = parts[0].upper()
        return [Screen(t(lang, "aftersales.admin.reject_title", ticket=ref),
                       t(lang, "aftersales.admin.reject_how", command=f"/reject {ref}"), error="usage")]
    if len(parts) != 2:
        raise Usage("reject")
    order = await admin.service.reject(ctx.merchant, parts[0], parts[1])
    return [Screen(t(lang, "aftersales.admin.title", order=order.id), t(
        lang, "aftersales.admin.rejected", order=order.id, buyer=order.buyer.key))]


async def _tickets(admin: Any, ctx: Any, page: int) -> Screen:
    """Open tickets, oldest first; each with buttons that run /reissue, /refund and /reject."""
    t, lang = admin.i18n.t, ctx.language
    desk = admin.service._problems()  # noqa: SLF001 - the same "no after-sales" refusal as the other commands
    tickets = await desk.open_tickets(TICKETS_PAGE + 1, (page - 1) * TICKETS_PAGE)
    await admin.service.record(ctx.merchant, "tickets", page=page, shown=min(len(tickets), TICKETS_PAGE))
    if not tickets:
        return Screen(t(lang, "aftersales.tickets.title"), t(lang, "aftersales.tickets.empty"))
    lines, rows = [], []
    for tk in tickets[:TICKETS_PAGE]:
        lines.append(t(lang, "aftersales.tickets.item", ticket=tk.ref, order=tk.order_id, buyer=tk.buyer.key,
                       problem=t(lang, f"aftersales.problem.{tk.problem}"), why=tk.why or "-",
                       at=tk.created_at.strftime("%m-%d %H:%M")))
        if tk.note:
            lines.append("    " + t(lang, "aftersales.tickets.note", note=tk.note))
        rows.append([Action(f"/reissue {tk.ref}", t(lang, "aftersales.button.reissue_ref", ticket=tk.ref)),
                     Action(f"/refund {tk.order_id}", t(lang, "aftersales.button.refund_ref", ticket=tk.ref)),
                     Action(f"/reject {tk.ref}", t(lang, "aftersales.button.reject_ref", ticket=tk.ref))])
    footer = t(lang, "aftersales.tickets.footer")
    if len(tickets) > TICKETS_PAGE:
        footer += "\n" + t(lang, "aftersales.tickets.more", command=f"/tickets {page + 1}")
    return Screen(t(lang, "aftersales.tickets.title"), "\n".join(lines), actions=rows, footer=footer)
