"""Group-buy (拼团) screens: start a group from the product page, a group's page (members paid of needed, time left,
the share link, Join), joining by the link (Telegram `/start g_<id>`) or by text (WeChat `拼团 <id>` / `join <id>`).
What a group is and when it completes or fails: core/group_buy.py."""
from __future__ import annotations

import re

from core.errors import ErrorCode, StoreError
from core.group_buy import COMPLETE, FAILED, GROUP, NEW, START_PREFIX, GroupView, parse_group_id
from core.models import Order
from handlers.actions import GroupBuying, Home, Orders
from handlers.catalog import _sellable, invoice
from handlers.router import Router, Turn
from handlers.screen import Action, Screen

router = Router("group_buy")
TYPED = re.compile(r"^\s*(?:拼团|join)\s+([A-Za-z0-9_]{4,18})\s*$", re.IGNORECASE)  # WeChat: 拼团 ABCD2345


def typed_join(text: str) -> str | None:
    """The group id of a typed `拼团 <id>` / `join <id>`, or of a deep link's payload `g_<id>`; None otherwise."""
    m = TYPED.match(text)
    return parse_group_id(m.group(1)) if m else None


def start_payload(payload: str) -> str | None:
    return parse_group_id(payload) if payload.lower().startswith(START_PREFIX) else None


async def share_link(turn: Turn, gid: str) -> str:
    """Telegram: the bot's deep link; a channel without links: the words to send to join."""
    make = turn.flow.share_link
    if make is not None:
        return await make(f"{START_PREFIX}{gid}")
    return turn.t("group_buy.share_text", group=gid)


@router.action(GroupBuying.START)
async def start(turn: Turn, product_id: int) -> list[Screen]:
    """Open a group: the order at the group price (its invoice), and the group's page to share."""
    order, screen = await _group_order(turn, product_id, NEW, "group_buy.opened")
    return [screen, await group(turn, str(order.promo[GROUP]["id"]))]


@router.action(GroupBuying.JOIN)
async def join(turn: Turn, gid: str) -> Screen:
    """Join a group: refused with nothing held when it is closed, full or unknown; else its invoice."""
    view = await _view(turn, gid)
    return (await _group_order(turn, view.product.id, view.group.id, "group_buy.joining"))[1]


async def _group_order(turn: Turn, product_id: int, wish: str, key: str) -> tuple[Order, Screen]:
    """One unit held at the group price (opening a group, or joining one) and its invoice, saying which group."""
    p = await _sellable(turn, product_id)
    order = await turn.shop.reserve(turn.buyer, product_id, 1, turn.lang, turn.ctx.chat_id, promo={GROUP: wish})
    assert p is not None
    screen = invoice(turn, order, p)
    screen.body = turn.t(key, group=order.promo[GROUP]["id"]) + "\n" + screen.body
    return order, screen


async def _view(turn: Turn, gid: str) -> GroupView:
    desk = turn.shop.group_buy
    view = await desk.view(gid) if desk is not None else None
    if view is None:
        raise StoreError(ErrorCode.GROUP_NOT_FOUND, group=gid[:16])
    return view


@router.action(GroupBuying.GROUP)
async def group(turn: Turn, gid: str) -> Screen:
    """A group's page: the product and price, members paid of needed, the time left, the share link, Join."""
    view = await _view(turn, gid)
    g, p = view.group, view.product
    lines = [turn.t("group_buy.page.product", title=turn.title(p), price=turn.money(g.price, p.currency),
                    was=turn.money(p.price, p.currency)),
             turn.t("group_buy.page.paid", paid=g.paid, size=g.size)]
    rows: list[list[Action]] = []
    if g.status == COMPLETE:
        lines.append(turn.t("group_buy.page.complete"))
    elif g.status == FAILED or not g.open_at(view.now):
        lines.append(turn.t("group_buy.page.closed"))
    else:
        minutes = int(view.left.total_seconds() // 60)
        lines.append(turn.t("group_buy.page.left", hours=minutes // 60, minutes=minutes % 60))
        lines.append(turn.t("group_buy.page.share", link=await share_link(turn, g.id)))
        member = view.member(turn.buyer)
        if member is None:
            rows.append([Action(GroupBuying.JOIN.id(g.id), turn.t("group_buy.join",
                                                                  price=turn.money(g.price, p.currency)))])
        else:
            lines.append(turn.t(f"group_buy.page.you_{member.state}"))
            if member.state == "held":
                rows.append([Action(Orders.ORDER.id(member.order_id), turn.t("group_buy.pay"))])
    rows.append([Action(GroupBuying.GROUP.id(g.id), turn.t("group_buy.refresh")),
                 Action(Home.MENU.id(), turn.t("nav.menu"))])
    return Screen(turn.t("group_buy.page.title", group=g.id), "\n".join(lines), actions=rows)
