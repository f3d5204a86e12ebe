"""The buyer's account (我的): member level and what it gives, spend to the next level, points with their soonest
expiry and last movements; the points mall (积分商城: products and coupons); the referral link (邀请有礼); the
buyer's coupons (我的优惠券) with their codes. Shown when `marketing.members` configures anything (core/members/)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.coupons import AMOUNT, Coupon
from core.members import MemberDesk, buy_with_points
from core.models import localized
from handlers.actions import Members
from handlers.router import Router, Turn
from handlers.screen import Action, Screen

router = Router("members")
COMMANDS = ("/me", "/points", "/account")

Invite = Callable[[str], Awaitable[str]]  # a start payload -> what the buyer shares (a t.me link, a QR's address)


def desk(turn: Turn) -> MemberDesk:
    members = turn.shop.members
    if members is None:
        raise ValueError("members are not configured")  # the flow answers "did not understand" and the menu
    return members


def entry(turn: Turn) -> list[Action] | None:
    """The menu's row, when members are on."""
    if turn.shop.members is None:
        return None
    return [Action(Members.ACCOUNT.id(), turn.t("members.menu"))]


@router.action(Members.ACCOUNT)
async def account(turn: Turn) -> Screen:
    """Level, spend to the next level, points, their soonest expiry and the last movements."""
    members = desk(turn)
    me = await members.profile(turn.buyer)
    money = turn.shop.currency or ""
    lines = []
    if me.level is not None:
        lines.append(turn.t("members.level", name=localized(me.level.name, turn.lang, turn.shop.default_language),
                            percent=me.level.discount_percent))
        perks = localized(me.level.perks, turn.lang, turn.shop.default_language)
        if perks:
            lines.append(turn.t("members.perks", perks=perks))
    elif members.policy.levels:
        lines.append(turn.t("members.no_level"))
    if me.next_level is not None and money:
        lines.append(turn.t("members.to_next", amount=turn.money(me.to_next, money),
                            name=localized(me.next_level.name, turn.lang, turn.shop.default_language)))
    lines.append(turn.t("members.points", points=me.points))
    if me.expiry is not None:
        lines.append(turn.t("members.expiry", points=me.expiry.points, date=me.expiry.at.strftime("%Y-%m-%d")))
    if me.history:
        lines.append("")
        lines.append(turn.t("members.history"))
        for e in me.history:
            lines.append(turn.t("members.movement", date=e.created_at.strftime("%m-%d"), points=f"{e.delta:+d}",
                                what=turn.t(f"members.kind.{e.kind}")))
    rows = []
    if members.policy.mall:
        rows.append([Action(Members.MALL.id(), turn.t("members.mall"))])
    if members.policy.coupon_rewards and members.coupons is not None:
        rows.append([Action(Members.COUPONS.id(), turn.t("member_coupons.menu"))])
    if members.policy.referral_reward:
        rows.append([Action(Members.INVITE.id(), turn.t("members.invite"))])
    return Screen(turn.t("members.title"), "\n".join(lines), actions=[*rows, *turn.home()])


@router.action(Members.MALL)
async def mall(turn: Turn) -> Screen:
    """The points mall: each product with its points price."""
    members = desk(turn)
    items = await members.mall(turn.shop)
    have = await members.points(turn.buyer)
    rows = [[Action(Members.MALL_ITEM.id(p.id), turn.t("members.mall_line", title=turn.title(p), points=m.points))]
            for p, m in items]
    coupons = await members.mall_coupons()
    rows += [[Action(Members.MALL_COUPON.id(c.name), turn.t("member_coupons.mall_line", name=c.name, off=off(turn, c),
                                                             points=m.points))] for c, m in coupons]
    body = turn.t("members.mall_body", points=have) if items or coupons else turn.t("members.mall_empty")
    return Screen(turn.t("members.mall_title"), body, actions=[*rows, *turn.home()])


@router.action(Members.MALL_ITEM)
async def mall_item(turn: Turn, product_id: int) -> Screen:
    """One mall product: its points price, the buyer's balance, and the button that spends them."""
    members = desk(turn)
    found = [(p, m) for p, m in await members.mall(turn.shop) if p.id == product_id]
    if not found:
        raise ValueError("not in the mall")
    p, m = found[0]
    have = await members.points(turn.buyer)
    actions = [[Action(Members.MALL_BUY.id(p.id), turn.t("members.mall_buy", points=m.points))]] \
        if have >= m.points else []
    body = turn.t("members.mall_item", title=turn.title(p), points=m.points, have=have)
    return Screen(turn.title(p), body, actions=[*actions, [Action(Members.MALL.id(), turn.t("members.mall"))],
                                                *turn.home()])


@router.action(Members.MALL_BUY)
async def mall_buy(turn: Turn, product_id: int) -> Screen:
    """Buy one with points: made and paid at once (the codes follow as a delivery)."""
    desk(turn)
    result = await buy_with_points(turn.shop, turn.buyer, product_id, 1, turn.lang, turn.ctx.chat_id)
    order = result.order
    key = "members.mall_paid" if result.outcome in ("delivered", "pending") else "members.mall_refunding"
    return Screen(turn.t(key, order=order.id if order else ""), actions=turn.home())


def off(turn: Turn, c: Coupon) -> str:
    """What a coupon takes off: `10%` or an amount."""
    return turn.money(c.terms.value, c.terms.currency) if c.terms.kind == AMOUNT else f"{c.terms.value}%"


@router.action(Members.MALL_COUPON)
async def mall_coupon(turn: Turn, name: str) -> Screen:
    """A coupon of the mall: what it takes off, its points price, the buyer's balance and the button that buys it."""
    members = desk(turn)
    found = [(c, m) for c, m in await members.mall_coupons() if c.name == name]
    if not found:
        raise ValueError("not in the mall")
    c, m = found[0]
    have = await members.points(turn.buyer)
    actions = [[Action(Members.MALL_COUPON_BUY.id(c.name), turn.t("members.mall_buy", points=m.points))]] \
        if have >= m.points else []
    body = turn.t("member_coupons.mall_item", name=c.name, off=off(turn, c), points=m.points, have=have)
    return Screen(c.name, body, actions=[*actions, [Action(Members.MALL.id(), turn.t("members.mall"))], *turn.home()])


@router.action(Members.MALL_COUPON_BUY)
async def mall_coupon_buy(turn: Turn, name: str) -> Screen:
    """Buy one new code with points: the code is shown at once and stays in My coupons."""
    mine = await desk(turn).buy_coupon(turn.buyer, name)
    body = turn.t("member_coupons.bought", name=mine.coupon.name, off=off(turn, mine.coupon))
    return Screen(turn.t("member_coupons.title"), body, secrets=[mine.code] if mine.code else [],
                  footer=turn.t("member_coupons.how"),
                  actions=[[Action(Members.COUPONS.id(), turn.t("member_coupons.menu"))], *turn.home()])


@router.action(Members.COUPONS)
async def my_coupons(turn: Turn) -> Screen:
    """The buyer's coupons, newest first: the usable ones numbered, their codes as secrets in the same order (hidden
    and protected on Telegram; typed on a product's "Have a coupon?"); used and taken back ones marked after them."""
    mine = await desk(turn).my_coupons(turn.buyer)
    usable = [c for c in mine if c.code and not c.used and not c.voided]
    lines = [turn.t("member_coupons.line_usable", n=n, name=c.coupon.name, off=off(turn, c.coupon),
                    what=turn.t(f"member_coupons.source.{c.source}"), date=c.issued_at.strftime("%Y-%m-%d"))
             for n, c in enumerate(usable, start=1)]
    lines += [turn.t("member_coupons.line_voided" if c.voided else "member_coupons.line_used", name=c.coupon.name,
                     off=off(turn, c.coupon)) for c in mine if c not in usable]
    back = [[Action(Members.ACCOUNT.id(), turn.t("members.menu"))], *turn.home()]
    if not lines:
        return Screen(turn.t("member_coupons.title"), turn.t("member_coupons.none"), actions=back)
    return Screen(turn.t("member_coupons.title"), "\n".join(lines), secrets=[c.code for c in usable if c.code],
                  footer=turn.t("member_coupons.how") if usable else "", actions=back)


@router.action(Members.INVITE)
async def invite(turn: Turn) -> Screen:
    """The buyer's referral link (Telegram: a t.me link; WeChat: a QR code's address) and what it earns them."""
    members = desk(turn)
    payload = await members.invite_payload(turn.buyer)
    make = turn.flow.invite
    link = await make(payload) if make is not None else f"/start {payload}"
    body = turn.t("members.invite_body", link=link, points=members.policy.referral_points) \
        if members.policy.referral_points else turn.t("member_coupons.invite_body", link=link)
    if members.policy.referral_points and members.policy.referral_coupon:
        body += "\n" + turn.t("member_coupons.invite_also", name=members.policy.referral_coupon)
    return Screen(turn.t("members.invite_title"), body, actions=turn.home())
