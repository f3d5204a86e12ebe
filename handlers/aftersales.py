"""After-sales in the chat, channel-neutral: parse -> one use case (core/aftersales/problems.py ProblemDesk) ->
Screen. Called by handlers/customer.py (one line per action) and handlers/admin.py (the merchant commands).

Buyer actions:
    rp:ORDER                  what is wrong? (does not work / used / wrong product / other)
    rp:ORDER:PROBLEM          checked with the supplier, reissued within policy, or a ticket
    rp:ORDER:PROBLEM:t        a ticket even though the supplier said the code is unused
    rp:ORDER:other            the next message the buyer types is the description (state NOTE), then `rn`
    hs:PAGE                   history: purchases, reveals (when, where) and tickets, newest first
Merchant commands:
    /tickets [PAGE]           open tickets, oldest first, with reissue / refund / reject buttons
    /reissue T12|ORDER        new codes from the pool; the ticket closed as reissued
    /reject T12|ORDER TEXT    the buyer gets TEXT; the ticket closed as rejected
"""
from __future__ import annotations

from typing import Any

from core.admin import AdminError
from core.aftersales import MAX_NOTE, HistoryItem, ProblemDesk, Ticket, clean_note, problems_for, ticket_id_of
from core.models import Customer, Order
from core.models import localized
from handlers.screen import Action, Screen

NOTE = "rp_note"  # conversation state while the buyer's description is awaited: {"o": order id}
MAX_TYPED = 2000  # what is kept of a typed message before it is cut to MAX_NOTE
HISTORY_PAGE = 10
TICKETS_PAGE = 10
MERCHANT = frozenset({"/tickets", "/reissue", "/reject"})


def _desk(flow: Any) -> ProblemDesk:
    desk = flow.shop.problems
    if desk is None:
        raise ValueError("no after-sales here")
    return desk


# -- the buyer -----------------------------------------------------------------------------------------------

async def report_problem(flow: Any, buyer: Any, lang: str, args: list[str], cust: Customer | None = None
                         ) -> Screen:
    """Ask what is wrong, then check / reissue / open a ticket, and say which."""
    t = flow.i18n.t
    desk = _desk(flow)
    if not args or len(args) > 3 or (len(args) == 3 and args[2] != "t"):
        raise ValueError("bad report action")
    order_id = args[0]
    if len(args) == 1:
        _, product = await flow.shop.order_for(order_id, buyer)  # someone else's order is refused here already
        rows = [[Action(f"rp:{order_id}:{p}", t(lang, f"aftersales.problem.{p}"))] for p in problems_for(product.kind)]
        rows.append([Action(f"o:{order_id}", t(lang, "nav.back"))])
        return Screen(t(lang, "aftersales.report_title", order=order_id), t(lang, "aftersales.report_ask"),
                      actions=rows)
    if args[1] == "other" and cust is not None:  # the buyer's own words come next
        await flow.shop.order_for(order_id, buyer)
        cust.state[NOTE] = {"o": order_id}
        await flow.shop.save_customer(cust)
        return Screen(t(lang, "aftersales.report_title", order=order_id),
                      t(lang, "aftersales.note.ask", n=MAX_NOTE), actions=[[Action(f"o:{order_id}", t(lang, "nav.back"))]])
    result = await desk.report(buyer, order_id, args[1], ticket=len(args) == 3)
    return _answer(flow, lang, result, args[1])


def _answer(flow: Any, lang: str, result: Any, problem: str) -> Screen:
    t = flow.i18n.t
    oid = result.order.id
    rows = [[Action(f"o:{oid}", t(lang, "menu.orders")), Action("menu", t(lang, "nav.menu"))]]
    if result.outcome == "unused":  # the supplier vouches for the code; the buyer may still ask a person
        body = t(lang, "aftersales.unused", order=oid)
        return Screen(t(lang, "aftersales.report_title", order=oid), body, actions=[
            [Action(f"rp:{oid}:{problem}:t", t(lang, "aftersales.button.ticket_anyway"))], *rows])
    if result.outcome == "reissued":
        return Screen(t(lang, "aftersales.report_title", order=oid), t(lang, "aftersales.reissued", order=oid),
                      actions=rows)
    body = t(lang, "aftersales.ticket", order=oid)
    if result.ticket is not None:
        body += "\n" + t(lang, "aftersales.ticket_ref", ticket=f"T{result.ticket}")
    return Screen(t(lang, "aftersales.report_title", order=oid), body, actions=rows)


async def note_typed(flow: Any, cust: Customer, buyer: Any, lang: str) -> Screen:
    """The buyer typed the description of an "other" problem: it goes with a ticket to the merchants."""
    state = cust.state.pop(NOTE, None)
    await flow.shop.save_customer(cust)
    if not isinstance(state, dict) or "typed" not in state:
        raise ValueError("no description awaited")
    note = clean_note(str(state["typed"]))
    if not note:
        raise ValueError("empty description")
    result = await _desk(flow).report(buyer, str(state.get("o", "")), "other", note)
    return _answer(flow, lang, result, "other")


async def forget(flow: Any, cust: Customer) -> None:
    """The buyer went elsewhere instead of describing the problem: what they type next is no description."""
    cust.state.pop(NOTE, None)
    await flow.shop.save_customer(cust)


def _ticket_line(flow: Any, lang: str, tk: Ticket) -> str:
    t = flow.i18n.t
    line = t(lang, "aftersales.ticket_line", ticket=tk.ref, status=t(lang, f"aftersales.ticket_status.{tk.status}"))
    if tk.status == "rejected" and tk.answer:
        line += " " + t(lang, "aftersales.ticket_reason", answer=tk.answer)
    return line


async def order_lines(flow: Any, order: Order, lang: str) -> str:
    """Lines for the order screen: each ticket of the order with its status (and the merchant's reason)."""
    desk = flow.shop.problems
    if desk is None:
        return ""
    tickets = (await desk.tickets_for([order.id])).get(order.id, [])
    return "".join("\n" + _ticket_line(flow, lang, tk) for tk in tickets)


async def history(flow: Any, buyer: Any, lang: str, page: int) -> Screen:
    """The buyer's own purchases, reveals (when and where the codes were shown) and tickets, paginated."""
    t = flow.i18n.t
    items: list[HistoryItem] = await _desk(flow).history(buyer, HISTORY_PAGE + 1, page * HISTORY_PAGE)
    products = {p.id: p for p in await flow.shop.products(include_inactive=True)}
    lines = []
    for it in items[:HISTORY_PAGE]:
        when = it.at.strftime("%Y-%m-%d %H:%M")
        if it.kind == "purchase":
            p = products.get(it.product_id or 0)
            title = localized(p.title, lang, flow.shop.default_language) if p else f"#{it.product_id}"
            lines.append(t(lang, "aftersales.history.purchase", at=when, order=it.order_id, title=title, qty=it.qty,
                           status=t(lang, f"status.{it.status}")))
        elif it.kind == "reveal":
            lines.append(t(lang, "aftersales.history.reveal", at=when, order=it.order_id, chat=it.chat,
                           channel=it.channel))
        elif it.ticket is not None:
            lines.append(t(lang, "aftersales.history.ticket", at=when, order=it.order_id)
                         + " " + _ticket_line(flow, lang, it.ticket))
    if not lines:
        lines.append(t(lang, "aftersales.history.empty"))
    nav = []
    if page > 0:
        nav.append(Action(f"hs:{page - 1}", t(lang, "nav.prev")))
    if len(items) > HISTORY_PAGE:
        nav.append(Action(f"hs:{page + 1}", t(lang, "nav.next")))
    rows = [nav] if nav else []
    rows.append([Action("os:0", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))])
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
    from handlers.admin import _Usage  # noqa: PLC0415 - handlers/admin.py imports this module

    t, lang = admin.i18n.t, ctx.language
    args = rest.split()
    if command == "/tickets":
        if len(args) > 1 or (args and not (args[0].isascii() and args[0].isdigit() and 0 < int(args[0]) < 10**6)):
            raise _Usage("tickets")
        return [await _tickets(admin, ctx, int(args[0]) if args else 1)]
    if command == "/reissue":
        if len(args) != 1:
            raise _Usage("reissue")
        order, n = await _translated(admin, lang, admin.service.reissue(ctx.merchant, args[0]))
        return [Screen(t(lang, "aftersales.admin.title", order=order.id), t(
            lang, "aftersales.admin.reissued", order=order.id, n=n, buyer=order.buyer.key))]
    parts = rest.split(maxsplit=1)
    if len(parts) == 1 and ticket_id_of(parts[0]) is not None:  # a pressed Reject button: the reason is typed
        ref = parts[0].upper()
        return [Screen(t(lang, "aftersales.admin.reject_title", ticket=ref),
                       t(lang, "aftersales.admin.reject_how", command=f"/reject {ref}"), error="usage")]
    if len(parts) != 2:
        raise _Usage("reject")
    order = await _translated(admin, lang, admin.service.reject(ctx.merchant, parts[0], parts[1]))
    return [Screen(t(lang, "aftersales.admin.title", order=order.id), t(
        lang, "aftersales.admin.rejected", order=order.id, buyer=order.buyer.key))]


async def _translated(admin: Any, lang: str, call: Any) -> Any:
    """A closed ticket's state named in the merchant's language."""
    try:
        return await call
    except AdminError as exc:
        if exc.reason == "ticket_closed":
            state = str(exc.params.get("state", ""))
            exc.params["state"] = admin.i18n.t(lang, f"aftersales.ticket_status.{state}") if state else "-"
        raise


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
