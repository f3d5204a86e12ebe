"""Browsing and buying: the catalogue, a category, a product, buy -> the invoice; a top-up's account first (asked,
typed, confirmed); the answer to a risk challenge (the question itself: handlers/risk.py); a coupon code typed on
the product screen (asked, checked, the price shown with it, kept sealed until Buy: core/coupons.py)."""
from __future__ import annotations

import math

from core import flash_sales, stock_alerts
from core.errors import ErrorCode, StoreError
from core.group_buy import GROUP, GroupBuyPromotion
from core.models import Kind, Order, Product, localized
from core.promotions import MONEY_PARAMS, Quote
from core.risk import rules_of
from handlers import errors, risk
from handlers.actions import GroupBuying, Home, Orders, Shopping
from handlers.router import Router, Turn
from handlers.screen import Action, Screen
from handlers.state import CouponWait, TopupWait

PAGE = 8
MAX_COUPON_TYPED = 64  # characters of a typed coupon code looked at
router = Router("catalog")


@router.action(Shopping.CATALOG)
async def catalog(turn: Turn, page: int = 0) -> Screen:
    """The categories; with only one, its products straight away."""
    cats = await turn.shop.categories()
    if len(cats) <= 1:
        return await category(turn, 0, page)
    rows = []
    for i, (key, p) in enumerate(cats):
        name = localized(p.category, turn.lang, turn.shop.default_language) if key else turn.t("catalog.uncategorised")
        rows.append([Action(Shopping.CATEGORY.id(i), name)])
    rows.append([Action(Home.MENU.id(), turn.t("nav.back"))])
    return Screen(turn.t("catalog.title"), turn.t("catalog.categories"), actions=rows)


@router.action(Shopping.CATEGORY)
async def category(turn: Turn, index: int, page: int = 0) -> Screen:
    """A category's products with their prices, a page at a time."""
    cats = await turn.shop.categories()
    products = await turn.shop.products(cats[index][0]) if cats else []
    if not products:
        return Screen(turn.t("catalog.title"), turn.t("catalog.empty"), actions=turn.home())
    pages = math.ceil(len(products) / PAGE)
    page = max(0, min(page, pages - 1))
    rows = [[Action(Shopping.PRODUCT.id(p.id), turn.t("catalog.item", title=turn.title(p),
                                                      price=turn.money(p.price, p.currency)))]
            for p in products[page * PAGE:(page + 1) * PAGE]]
    nav = []
    if page > 0:
        nav.append(Action(Shopping.CATEGORY.id(index, page - 1), turn.t("nav.prev")))
    if page + 1 < pages:
        nav.append(Action(Shopping.CATEGORY.id(index, page + 1), turn.t("nav.next")))
    if nav:
        rows.append(nav)
    rows.append([Action((Shopping.CATALOG if len(cats) > 1 else Home.MENU).id(), turn.t("nav.back"))])
    body = turn.t("catalog.products")
    if pages > 1:
        body += "\n" + turn.t("catalog.page", page=page + 1, pages=pages)
    return Screen(turn.t("catalog.title"), body, actions=rows)


@router.action(Shopping.PRODUCT, keeps=("coupon",))
async def product(turn: Turn, product_id: int, qty: int | None = None) -> Screen:
    """A product: what it is, its price and stock, Buy, and the quantity."""
    view = await turn.shop.product_view(product_id)
    p = view.product
    if qty is None:  # opened (from the catalogue, a link); a quantity button only redraws it
        turn.shop.reports.viewed(p.id, turn.buyer.channel)
    qty = max(p.min_qty, min(p.max_qty, qty if qty is not None else p.min_qty))
    wait = turn.state.coupon
    if wait is not None and not wait.sealed:  # asked for a code, then came back without one: stop waiting
        turn.state.coupon = None
        await turn.save()
    code = _coupon_of(turn, p.id)
    quote = await turn.shop.quote(turn.buyer, p, qty, promo=_promo(code), language=turn.lang)
    lines = []
    desc = localized(p.description, turn.lang, turn.shop.default_language)
    if desc:
        lines.append(desc)
    lines.extend(price_lines(turn, quote))
    rules = rules_of(p.rules)
    if rules.effective_from is not None:  # a membership that starts later: say when (and when it arrives)
        key = "rules.effective_delivered_then" if rules.deliver_on_effective else "rules.effective"
        lines.append(turn.t(key, date=rules.effective_from.strftime("%Y-%m-%d")))
    show_stars = turn.flow.show_stars
    if p.stars and show_stars:
        if quote.discounted and quote.stars is not None:
            lines.append(turn.t("promotions.stars_now", stars=quote.stars, qty=qty))
        else:
            lines.append(turn.t("product.stars", stars=p.stars))
    if view.available is None:
        lines.append(turn.t("product.unlimited"))
    elif view.available == 0:
        lines.append(turn.t("product.sold_out"))
    elif view.low:
        lines.append(turn.t("product.low", n=view.available))
    else:
        lines.append(turn.t("product.in_stock"))
    if quote.refusal is not None:  # the coupon applied earlier does not fit any more (a smaller quantity, used up)
        lines.append(errors.text(turn.flow.i18n, turn.lang, quote.refusal))
    rows: list[list[Action]] = []
    if view.available == 0 and p.kind is Kind.CODE:  # back in stock: an alert when codes come in
        if await stock_alerts.is_waiting(turn.shop, turn.buyer, p.id):
            lines.append(turn.t("stock_alerts.waiting"))
            rows.append([Action(Shopping.UNALERT.id(p.id), turn.t("stock_alerts.cancel"))])
        else:
            rows.append([Action(Shopping.ALERT.id(p.id), turn.t("stock_alerts.notify_me"))])
    if show_stars and not p.stars:
        lines.append(turn.t("telegram.no_stars"))
    elif view.available != 0 and p.kind is Kind.TOPUP:  # the account comes first, then the invoice
        rows.append([Action(Shopping.TOPUP.id(p.id), turn.t("product.buy"))])
    elif view.available != 0:
        # Buy comes first so that on numbered channels "1" always means Buy on a product page. At a flash price the
        # button asks for it: the buyer then gets that price or a clear refusal, never the ordinary price unasked.
        if flash_sales.offered(quote.notes):
            rows.append([Action(Shopping.BUY.id(p.id, qty, flash_sales.WANT), turn.t("flash_sales.buy"))])
        else:
            rows.append([Action(Shopping.BUY.id(p.id, qty), turn.t("product.buy"))])
        if p.max_qty > p.min_qty:
            lines.append(turn.t("product.qty", qty=qty, min=p.min_qty, max=p.max_qty))
            qrow = []
            if qty > p.min_qty:
                qrow.append(Action(Shopping.PRODUCT.id(p.id, qty - 1), turn.t("product.less")))
            if qty < p.max_qty:
                qrow.append(Action(Shopping.PRODUCT.id(p.id, qty + 1), turn.t("product.more")))
            rows.append(qrow)
        if turn.shop.coupons is not None:
            rows.append([Action(Shopping.COUPON_CLEAR.id(p.id, qty), turn.t("coupons.remove")) if code else
                         Action(Shopping.COUPON.id(p.id, qty), turn.t("coupons.action"))])
        lines.append(turn.t("product.total", total=turn.money(quote.amount, p.currency)))
        rows.append(group_start_row(turn, p))
    rows.append([Action(Shopping.CATALOG.id(), turn.t("nav.back")), Action(Home.MENU.id(), turn.t("nav.menu"))])
    return Screen(turn.title(p), "\n".join(lines), actions=[r for r in rows if r])


def group_start_row(turn: Turn, p: Product) -> list[Action]:
    """The product page's "Start a group at X (N people, T hours)", when the product has a group price
    (core/group_buy.py; the group's screens: handlers/group_buy.py)."""
    promo = turn.shop.promotion(GROUP)
    offer = promo.offer_for(p) if isinstance(promo, GroupBuyPromotion) else None
    if offer is None:
        return []
    return [Action(GroupBuying.START.id(p.id), turn.t("group_buy.start", price=turn.money(offer.price, p.currency),
                                                      size=offer.size, hours=offer.hours))]


def price_lines(turn: Turn, quote: Quote) -> list[str]:
    """The price as a buyer would pay it now: the listed one, or the promotion's with the listed one beside it;
    then each promotion's own lines (a sale's countdown, a level's discount)."""
    p = quote.product
    if quote.discounted:
        unit = quote.amount // quote.qty if quote.amount % quote.qty == 0 else None
        lines = [turn.t("promotions.price_now", price=turn.money(unit if unit is not None else quote.amount,
                                                                 p.currency),
                        was=turn.money(p.price if unit is not None else quote.list_amount, p.currency))]
    else:
        lines = [turn.t("product.price", price=turn.money(p.price, p.currency))]
    for note in quote.notes:
        params = {k: turn.money(v, p.currency) if k in MONEY_PARAMS and isinstance(v, int) else v
                  for k, v in note.params.items()}
        lines.append(turn.t(note.key, **params))
    return lines


@router.action(Shopping.ALERT)
async def alert(turn: Turn, product_id: int) -> Screen:
    """Tell me when it is back: the product again, with what was done on top (in stock now: buy it)."""
    done = await stock_alerts.subscribe(turn.shop, turn.buyer, turn.ctx.chat_id, turn.lang, product_id)
    return await _with_note(turn, product_id, done)


@router.action(Shopping.UNALERT)
async def unalert(turn: Turn, product_id: int) -> Screen:
    """Cancel the alert: the product again, saying so."""
    done = await stock_alerts.unsubscribe(turn.shop, turn.buyer, product_id)
    return await _with_note(turn, product_id, done)


async def _with_note(turn: Turn, product_id: int, done: stock_alerts.Subscribed) -> Screen:
    screen = await product(turn, product_id)
    screen.body = turn.t(f"stock_alerts.{done.value}") + "\n\n" + screen.body
    return screen


async def _sellable(turn: Turn, product_id: int) -> Product | None:
    """The product, refused when this channel cannot take its price: Telegram sells digital goods for Stars only,
    so nothing is held for what cannot be paid here."""
    p = await turn.shop.product(product_id)
    if p is not None and turn.flow.show_stars and not p.stars:
        raise StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=p.sku)
    return p


@router.action(Shopping.BUY, keeps=("coupon",))
async def buy(turn: Turn, product_id: int, qty: int, flash: str = "") -> Screen:
    """Hold the codes and show the invoice; a risk challenge or a phone the rules want is asked for first.
    `flash`: the buyer tapped the flash-price button (core/flash_sales.py)."""
    p = await _sellable(turn, product_id)
    promo = _promo(_coupon_of(turn, product_id)) or {}
    if flash == flash_sales.WANT:
        promo[flash_sales.NAME] = flash_sales.WANT
    try:
        order = await turn.shop.reserve(turn.buyer, product_id, qty, turn.lang, turn.ctx.chat_id, promo=promo)
    except StoreError as exc:
        return await risk.ask(turn, exc, product_id, qty)  # or raises exc: the refusal and the menu
    if turn.state.coupon is not None:  # the order carries the coupon now
        turn.state.coupon = None
        await turn.save()
    assert p is not None  # it was just reserved
    return invoice(turn, order, p)


# -- a coupon on the product screen: asked, typed, checked, kept sealed until Buy --------------------------------

def _coupon_of(turn: Turn, product_id: int) -> str:
    """The coupon code applied to this product on this screen ("" when none)."""
    wait, desk = turn.state.coupon, turn.shop.coupons
    if wait is None or not wait.sealed or wait.product_id != product_id or desk is None:
        return ""
    return desk.unseal(wait.sealed) or ""


def _promo(code: str) -> dict[str, str] | None:
    return {"coupon": code} if code else None


@router.action(Shopping.COUPON, keeps=("coupon",))
async def coupon(turn: Turn, product_id: int, qty: int) -> Screen:
    """"Have a coupon?": the next message the buyer types is taken as the code."""
    return await _ask_coupon(turn, product_id, qty)


async def _ask_coupon(turn: Turn, product_id: int, qty: int, error: str = "") -> Screen:
    p = await turn.shop.product(product_id)
    if p is None or turn.shop.coupons is None:
        raise ValueError("no such product")
    turn.state.coupon = CouponWait(p.id, qty)
    await turn.save()
    return Screen(turn.title(p), (error + "\n\n" if error else "") + turn.t("coupons.ask", title=turn.title(p)),
                  actions=[[Action(Shopping.PRODUCT.id(p.id, qty), turn.t("nav.back")),
                            Action(Home.MENU.id(), turn.t("nav.menu"))]])


@router.action(Shopping.COUPON_CODE, keeps=("coupon",))
async def coupon_code(turn: Turn, typed: str) -> Screen:
    """The code the buyer typed: the product with the coupon's price, or why not (asked again; after too many
    wrong codes, back to the product without one)."""
    wait, desk = turn.state.coupon, turn.shop.coupons
    p = await turn.shop.product(wait.product_id) if wait is not None else None
    if wait is None or p is None or desk is None:
        raise ValueError("no coupon asked for")
    try:
        await desk.try_code(turn.buyer, p, wait.qty, typed[:MAX_COUPON_TYPED], turn.lang)
    except StoreError as exc:
        why = errors.text(turn.flow.i18n, turn.lang, exc)
        if exc.code is ErrorCode.RATE_LIMITED:
            turn.state.coupon = None
            await turn.save()
            screen = await product(turn, p.id, wait.qty)
            screen.body, screen.error = why + "\n\n" + screen.body, exc.code.value
            return screen
        screen = await _ask_coupon(turn, p.id, wait.qty, why)
        screen.error = exc.code.value
        return screen
    turn.state.coupon = CouponWait(p.id, wait.qty, desk.seal(typed[:MAX_COUPON_TYPED]))
    await turn.save()
    return await product(turn, p.id, wait.qty)


@router.action(Shopping.COUPON_CLEAR, keeps=("coupon",))
async def coupon_clear(turn: Turn, product_id: int, qty: int) -> Screen:
    """Buy without the coupon: the product at its price again."""
    turn.state.coupon = None
    await turn.save()
    return await product(turn, product_id, qty)


@router.action(Shopping.CHALLENGE, keeps=("coupon",))
async def challenge(turn: Turn, token: str, answer: str, product_id: int, qty: int) -> Screen:
    """The buyer's answer to a risk challenge: right -> the purchase goes on; wrong -> told, back to the product."""
    if not token or len(answer) > 3:
        raise ValueError("garbage challenge")
    if await turn.shop.pass_challenge(turn.buyer, token, answer):
        return await buy(turn, product_id, qty)
    return risk.failed(turn, await product(turn, product_id, qty))


# -- top-ups: account -> confirmation -> invoice ---------------------------------------------------------------

@router.action(Shopping.TOPUP, keeps=("topup",))
async def topup(turn: Turn, product_id: int) -> Screen:
    """Ask for the account to recharge; the next message the buyer types is taken as the account."""
    return await _ask_account(turn, product_id)


async def _ask_account(turn: Turn, product_id: int, error: str = "") -> Screen:
    view = await turn.shop.product_view(product_id)
    if view.product.kind is not Kind.TOPUP:
        raise ValueError("not a top-up product")
    turn.state.topup = TopupWait(product_id)
    await turn.save()
    body = (error + "\n\n" if error else "") + turn.t("topup.ask.body")
    return Screen(turn.t("topup.ask.title", title=turn.title(view.product)), body,
                  actions=[[Action(Shopping.PRODUCT.id(product_id), turn.t("nav.back")),
                            Action(Home.MENU.id(), turn.t("nav.menu"))]],
                  error="bad_account" if error else None)


@router.action(Shopping.TOPUP_ACCOUNT, keeps=("topup",))
async def topup_account(turn: Turn, typed: str) -> Screen:
    """The buyer typed an account: shown back for confirmation, or asked for again when it does not fit."""
    wait = turn.state.topup
    p = await turn.shop.product(wait.product_id) if wait is not None else None
    if p is None or p.kind is not Kind.TOPUP:
        raise ValueError("no top-up waiting for an account")
    account = turn.shop.check_account(p, typed)
    if account is None:
        return await _ask_account(turn, p.id, turn.t("topup.bad_account", account=typed[:40]))
    turn.state.topup = TopupWait(p.id, account)
    await turn.save()
    return Screen(turn.t("topup.confirm.title"), turn.t(
        "topup.confirm.body", title=turn.title(p), account=account, total=turn.money(p.price, p.currency)), actions=[
        [Action(Shopping.TOPUP_CONFIRM.id(p.id), turn.t("topup.confirm"))],
        [Action(Shopping.TOPUP.id(p.id), turn.t("topup.change")), Action(Home.MENU.id(), turn.t("nav.menu"))]])


@router.action(Shopping.TOPUP_CONFIRM, keeps=("topup",))
async def topup_confirm(turn: Turn, product_id: int) -> Screen:
    """Confirmed: the order is made with the account and the invoice shown."""
    wait = turn.state.topup
    if wait is None or wait.product_id != product_id or not wait.account:
        return await _ask_account(turn, product_id)
    p = await _sellable(turn, product_id)
    order = await turn.shop.reserve(turn.buyer, product_id, 1, turn.lang, turn.ctx.chat_id, account=wait.account)
    turn.state.topup = None
    await turn.save()
    assert p is not None
    return invoice(turn, order, p)


def invoice(turn: Turn, order: Order, p: Product) -> Screen:
    """A held order to pay: adapters with a payment UI render `invoice` (Telegram Stars, a WeChat Pay QR code)."""
    minutes = max(1, round((order.expires_at - order.created_at).total_seconds() / 60))
    rows = []
    if turn.flow.demo_payments:
        rows.append([Action(Orders.PAY.id(order.id), turn.t("order.pay_demo"))])
    rows.append([Action(Orders.CANCEL.id(order.id), turn.t("order.cancel"))])
    return Screen(
        turn.t("order.held.title", order=order.id),
        turn.t("order.held.body", title=turn.title(p), qty=order.qty, total=turn.money(order.amount, order.currency),
               minutes=minutes)
        + ("\n" + turn.t("topup.account", account=order.account) if order.account else ""),
        actions=rows,
        invoice={"order_id": order.id, "title": turn.title(p), "amount": order.amount, "currency": order.currency,
                 "stars": order.stars_total or 0, "qty": order.qty, "lang": turn.lang, "minutes": minutes})
