"""The buyer's orders: the list, one order, paying (the terminal demo), cancelling a hold, the codes shown again, and
the message that carries codes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ErrorCode, StoreError
from core.group_buy import GROUP
from core.models import Kind, Order, OrderStatus, Product, localized
from core.orders import PaymentNotice
from core.payments import Outcome
from core.ports import Delivery
from core.risk import rules_of
from handlers import aftersales
from handlers.actions import Aftersales, GroupBuying, Home, Orders
from handlers.catalog import invoice
from handlers.router import Router, Turn
from handlers.screen import Action, Screen

if TYPE_CHECKING:
    from handlers.customer import CustomerFlow

PAGE = 8
router = Router("orders")


@router.action(Orders.ORDERS)
async def orders(turn: Turn, page: int = 0) -> Screen:
    """The buyer's orders (a linked account's too, marked), newest first, a page at a time."""
    found = await turn.shop.my_orders(turn.buyer, limit=PAGE + 1, offset=page * PAGE)
    if not found and page == 0:
        return Screen(turn.t("orders.title"), turn.t("orders.empty"), actions=turn.home())
    products = {p.id: p for p in await turn.shop.products(include_inactive=True)}  # withdrawn ones too
    rows = []
    for o in found[:PAGE]:
        p = products.get(o.product_id)
        label = turn.t("orders.item", order=o.id, title=turn.title(p) if p else "#" + str(o.product_id), qty=o.qty,
                       status=turn.t(f"status.{o.status.value}"))
        if o.buyer != turn.buyer:  # bought by a linked account (handlers/link.py)
            label += " " + turn.t("link.order_mark", channel=channel_name(turn, o.buyer.channel))
        rows.append([Action(Orders.ORDER.id(o.id), label)])
    nav = []
    if page > 0:
        nav.append(Action(Orders.ORDERS.id(page - 1), turn.t("nav.prev")))
    if len(found) > PAGE:
        nav.append(Action(Orders.ORDERS.id(page + 1), turn.t("nav.next")))
    if nav:
        rows.append(nav)
    if turn.shop.problems is not None:  # purchases, reveals, tickets (handlers/aftersales.py)
        rows.append([Action(Aftersales.HISTORY.id(0), turn.t("aftersales.history.button"))])
    rows.append([Action(Home.MENU.id(), turn.t("nav.menu"))])
    return Screen(turn.t("orders.title"), actions=rows)


@router.action(Orders.ORDER)
async def order(turn: Turn, order_id: str) -> Screen:
    """One order: a hold still open is its invoice; otherwise what, when, its status, its tickets, and what can be
    done with it (codes again, report a problem)."""
    try:
        o, p = await turn.shop.order_for(order_id, turn.buyer)
    except StoreError as exc:
        if exc.code is not ErrorCode.NOT_YOUR_ORDER:
            raise
        return await _linked_order(turn, order_id)
    now = turn.shop.clock.now()
    if o.status is OrderStatus.HELD and o.expires_at > now:
        return invoice(turn, o, p)
    body = _detail(turn, o, p)
    if o.account:
        body += "\n" + turn.t("topup.account", account=o.account)
    rows = []
    group = (o.promo.get(GROUP) or {}).get("id")
    if o.status is OrderStatus.PENDING and group:  # paid, waiting for its group-buy to fill (core/group_buy.py)
        body += "\n" + turn.t("group_buy.order_waiting", group=group)
        rows.append([Action(GroupBuying.GROUP.id(group), turn.t("group_buy.open"))])
    elif o.status is OrderStatus.PENDING:
        body += "\n" + turn.t("topup.pending" if p.kind is Kind.TOPUP else "supplier.pending")
    body += await aftersales.order_lines(turn, o)  # its tickets and their status
    due = rules_of(p.rules).delivery_due(o.paid_at) if o.paid_at else None
    if o.status is OrderStatus.DELIVERED and due is not None and due > now:
        body += "\n" + turn.t("rules.scheduled_line", date=due.strftime("%Y-%m-%d %H:%M UTC"))
    elif o.status is OrderStatus.DELIVERED:
        if p.kind is not Kind.TOPUP:  # a top-up has no code
            rows.append([Action(Orders.REVEAL.id(o.id), turn.t("order.show_codes"))])
        if turn.shop.problems is not None:  # after-sales (handlers/aftersales.py)
            rows.append([Action(Aftersales.REPORT.id(o.id), turn.t("aftersales.report"))])
    rows.append([Action(Orders.ORDERS.id(0), turn.t("nav.back")), Action(Home.MENU.id(), turn.t("nav.menu"))])
    return Screen(turn.t("order.held.title", order=o.id), body, actions=rows)


async def _linked_order(turn: Turn, order_id: str) -> Screen:
    """An order a linked account bought: what and when, but no codes, payment or reports here: those stay in the
    chat that bought it."""
    o, p = await turn.shop.linked_order(order_id, turn.buyer)
    body = _detail(turn, o, p) + "\n\n" + turn.t("link.order_elsewhere", channel=channel_name(turn, o.buyer.channel))
    return Screen(turn.t("order.held.title", order=o.id), body, actions=[
        [Action(Orders.ORDERS.id(0), turn.t("nav.back")), Action(Home.MENU.id(), turn.t("nav.menu"))]])


def _detail(turn: Turn, o: Order, p: Product) -> str:
    return turn.t("order.detail", title=turn.title(p), qty=o.qty, total=turn.money(o.amount, o.currency),
                  status=turn.t(f"status.{o.status.value}"), created=o.created_at.strftime("%Y-%m-%d %H:%M UTC"))


def channel_name(turn: Turn, channel: str) -> str:
    """A channel as the buyer calls it ("Telegram", "微信"); its id when the catalogue has no name for it."""
    name = turn.t(f"link.channel.{channel}")
    return channel if name.startswith("link.channel.") else name


@router.action(Orders.PAY)
async def pay(turn: Turn, order_id: str) -> Screen:
    """The terminal demo's payment: the same path a real provider's notice takes."""
    if not turn.flow.demo_payments:
        raise StoreError(ErrorCode.PROVIDER_DISABLED, provider="demo")
    o, _ = await turn.shop.order_for(order_id, turn.buyer)
    result = await turn.shop.pay(PaymentNotice(o.id, "demo", f"demo-{o.id}", o.amount, o.currency, turn.buyer))
    if result.outcome is Outcome.DUPLICATE:
        return Screen(turn.t("order.already_paid", order=o.id), actions=turn.home())
    if result.outcome is Outcome.REFUNDING:
        reason = turn.t(f"refund.reason.{result.reason}")
        return Screen(turn.t("order.refunding", order=o.id, reason=reason), actions=turn.home())
    rows = [[Action(Orders.ORDER.id(o.id), turn.t("menu.orders"))], *turn.home()]
    group = (o.promo.get(GROUP) or {}).get("id")
    if result.outcome is Outcome.PENDING and group:  # a group-buy member: codes when the group fills
        return Screen(turn.t("group_buy.order_waiting", group=group),
                      actions=[[Action(GroupBuying.GROUP.id(group), turn.t("group_buy.open"))], *rows])
    if result.outcome is Outcome.PENDING:  # bought from the supplier next: codes or the top-up follow
        return Screen(turn.t("topup.pending" if o.account else "supplier.pending"), actions=rows)
    return Screen(turn.t("order.paid", order=o.id), actions=rows)


@router.action(Orders.CANCEL)
async def cancel(turn: Turn, order_id: str) -> Screen:
    """Give a hold up: its codes go back to the shop."""
    o = await turn.shop.cancel(order_id, turn.buyer)
    return Screen(turn.t("order.cancelled", order=o.id), actions=turn.home())


@router.action(Orders.REVEAL)
async def reveal(turn: Turn, order_id: str) -> Screen:
    """A delivered order's codes again (audited; limited per hour) — unless this channel cannot prove who asks."""
    if turn.flow.no_reveal:
        return Screen(turn.t(turn.flow.no_reveal), actions=turn.home())
    o, p, codes = await turn.shop.reveal(order_id, turn.buyer, turn.ctx.chat_id)
    return delivery_screen(turn.flow, Delivery(o, p, codes, again=True), turn.lang)


def delivery_screen(flow: CustomerFlow, delivery: Delivery, lang: str | None = None) -> Screen:
    """The message carrying codes (first delivery or shown again)."""
    t = flow.i18n.t
    lang = lang or delivery.order.language
    o = delivery.order
    title = t(lang, "delivery.again_title" if delivery.again else "delivery.title", order=o.id)
    body = t(lang, "delivery.body", title=localized(delivery.product.title, lang, flow.shop.default_language),
             qty=o.qty)
    if delivery.product.kind is Kind.BUNDLE:
        body += "\n" + bundle_lines(flow, delivery, lang)
    effective = rules_of(delivery.product.rules).effective_from
    if effective is not None:
        body += "\n" + t(lang, "rules.effective", date=effective.strftime("%Y-%m-%d"))
    return Screen(title, body, secrets=list(delivery.codes), footer=t(lang, "delivery.keep"),
                  actions=[[Action(Orders.ORDER.id(o.id), t(lang, "menu.orders")),
                            Action(Home.MENU.id(), t(lang, "nav.menu"))]])


def bundle_lines(flow: CustomerFlow, delivery: Delivery, lang: str) -> str:
    """What a bundle's codes are, part by part: the codes come grouped by part, the parts in product id order
    (core/outbox.py load_stored), so each part's are a run of the codes shown."""
    t = flow.i18n.t
    lines, first = [], 1
    for part in sorted(delivery.product.parts, key=lambda x: x.product_id):
        n = part.qty * delivery.order.qty
        title = localized(part.title, lang, flow.shop.default_language) or part.sku
        key = "bundle.part_one" if n == 1 else "bundle.part_many"
        lines.append(t(lang, key, title=title, n=n, first=first, last=first + n - 1))
        first += n
    return "\n".join(lines)
