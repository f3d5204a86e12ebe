"""The buyer's "report a problem" from My orders (actions `rp:ORDER` and `rp:ORDER:PROBLEM`): parse -> one use
case (core/aftersales.py ProblemDesk.report) -> Screen. Called by handlers/customer.py."""
from __future__ import annotations

from typing import Any

from core.aftersales import PROBLEMS
from handlers.screen import Action, Screen


async def report_problem(flow: Any, buyer: Any, lang: str, args: list[str]) -> Screen:
    """Ask what is wrong, then reissue or open a ticket, and say which."""
    t = flow.i18n.t
    desk = getattr(flow.shop, "problems", None)
    if desk is None or not args or len(args) > 2:
        raise ValueError("no after-sales here")
    order_id = args[0]
    if len(args) == 1:
        await flow.shop.order_for(order_id, buyer)  # someone else's order is refused here already
        rows = [[Action(f"rp:{order_id}:{p}", t(lang, f"aftersales.problem.{p}"))] for p in PROBLEMS]
        rows.append([Action(f"o:{order_id}", t(lang, "nav.back"))])
        return Screen(t(lang, "aftersales.report_title", order=order_id), t(lang, "aftersales.report_ask"),
                      actions=rows)
    result = await desk.report(buyer, order_id, args[1])
    key = "aftersales.reissued" if result.outcome == "reissued" else "aftersales.ticket"
    return Screen(t(lang, "aftersales.report_title", order=order_id), t(lang, key, order=order_id),
                  actions=[[Action(f"o:{order_id}", t(lang, "menu.orders")), Action("menu", t(lang, "nav.menu"))]])
