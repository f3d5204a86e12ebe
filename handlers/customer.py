"""The customer's conversation: menu, catalogue, product, quantity, buy, pay, my orders, language, help.

Every entry point is parse -> one use case -> Screen. Action ids are short and stable so they fit in
Telegram's callback_data; WeChat and the console map numbered replies back to them through the stored
conversation state. Bad action data never raises: the buyer gets "did not understand" and the menu.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from core.errors import ErrorCode, StoreError
from core.models import Buyer, Customer, Kind, Order, OrderStatus, Product
from core.orders import PaymentNotice
from core.ports import Delivery
from core.models import localized
from core.risk import rules_of
from core.shop import Shop
from handlers import aftersales as aftersales_ui
from handlers import link as link_ui
from handlers import risk as risk_ui
from handlers import wallet as wallet_ui
from handlers.screen import Action, Screen
from locales import Translator

log = logging.getLogger(__name__)
PAGE = 8
MAX_ACTION_LEN = 64
TOPUP_STATE = "topup"  # conversation state while a top-up's account is asked for: {"p": product id, "a": account}
TOPUP_ACTIONS = frozenset({"tu", "ta", "tuc"})
MAX_ACCOUNT_TYPED = 200


def _n(text: str) -> int:
    """A non-negative number from button data; anything else is garbage (ValueError)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ValueError("not a number")
    return int(text)


@dataclass(slots=True)
class Ctx:
    """Who is talking, where, and the language their app reports (used on first contact)."""

    buyer: Buyer
    chat_id: str
    language_hint: str | None = None


class CustomerFlow:
    def __init__(self, shop: Shop, i18n: Translator, *, shop_name: str, support: str = "",
                 demo_payments: bool = False, show_stars: bool = False, numbered: bool = True,
                 ask_phone: bool = False, no_reveal: str | None = None) -> None:
        self.shop = shop
        self.i18n = i18n
        self.shop_name = shop_name
        self.support = support
        self.demo_payments = demo_payments
        self.show_stars = show_stars  # Telegram shows the Stars price
        # Channels where the buyer answers with a number (console, WeChat) keep the offered actions in the
        # stored state; button channels (Telegram) carry the action in the button and skip that write.
        self.numbered = numbered
        self.ask_phone = ask_phone  # the channel can ask for the buyer's own phone (Telegram's contact button)
        # A message key: "show codes again" answers it and reveals nothing, on a channel that cannot prove who
        # is asking (WeChat in plain mode); deliveries still go to the buyer's own chat.
        self.no_reveal = no_reveal

    # -- entry points -------------------------------------------------------------------------
    async def on_text(self, ctx: Ctx, text: str) -> list[Screen]:
        """A typed message: a command, a number picking an offered action, or anything else."""
        cust = await self.shop.customer(ctx.buyer, ctx.language_hint, fresh=self.numbered)
        word = text.strip()
        command = word.split("@", 1)[0].split(" ", 1)[0].lower() if word.startswith("/") else ""
        if command in ("/start", "/menu"):
            payload = word.split(" ", 1)[1].strip()[:64] if " " in word else ""
            if command == "/start" and payload and "start_payload" not in cust.state:
                cust.state["start_payload"] = payload  # a deep link's payload, kept for referrals
                await self.shop.save_customer(cust)
            return await self._act(cust, ctx, "menu")
        if command == "/help":
            return await self._act(cust, ctx, "help")
        if command == "/language":
            return await self._act(cust, ctx, "lang")
        if command == "/orders":
            return await self._act(cust, ctx, "os:0")
        linking = link_ui.command(self, word)  # /link, /link CODE, /unlink and their words (handlers/link.py)
        if linking is not None:
            return await self._act(cust, ctx, linking[0] + (":" + linking[1][:60] if linking[1] else ""))
        offered = cust.state.get("actions", [])
        try:
            n = _n(word)
        except ValueError:
            n = 0
        topup = cust.state.get(TOPUP_STATE)
        if isinstance(topup, dict) and word and not word.startswith("/"):
            # Waiting for a top-up account: what fits the product's pattern is the account; a number that picks
            # an offered action (and is no account) is that action; anything else is a wrong account.
            product = await self.shop.product(int(topup.get("p", 0)))
            fits = product is not None and self.shop.check_account(product, word) is not None
            if fits or not 1 <= n <= len(offered):
                topup["typed"] = word[:MAX_ACCOUNT_TYPED]
                return await self._act(cust, ctx, "ta")
        answer = risk_ui.typed_answer(cust.state, word)
        if answer is not None:  # a challenge is waiting for its answer (numbered channels type it)
            return await self._act(cust, ctx, answer)
        if aftersales_ui.NOTE in cust.state and word and not word.startswith("/") and not 1 <= n <= len(offered):
            cust.state[aftersales_ui.NOTE]["typed"] = word[:aftersales_ui.MAX_TYPED]  # a problem's description
            return await self._act(cust, ctx, "rn")
        if link_ui.STATE in cust.state and word and not word.startswith("/") and not 1 <= n <= len(offered):
            return await self._act(cust, ctx, "lr:" + word[:60])  # the code asked for ("I have a code")
        if 1 <= n <= len(offered):
            return await self._act(cust, ctx, offered[n - 1])
        return await self._act(cust, ctx, "menu", error="error.unknown")

    async def on_contact(self, ctx: Ctx, phone: str, own: bool) -> list[Screen]:
        """A contact the buyer shared (Telegram's request-contact keyboard): binds their own phone only."""
        return await risk_ui.on_contact(self, ctx, phone, own)

    async def on_action(self, ctx: Ctx, action_id: str) -> list[Screen]:
        """A pressed button (or a resolved numbered reply)."""
        cust = await self.shop.customer(ctx.buyer, ctx.language_hint, fresh=self.numbered)
        return await self._act(cust, ctx, action_id)

    async def _act(self, cust: Customer, ctx: Ctx, action_id: str, error: str | None = None) -> list[Screen]:
        lang = cust.language or self.shop.default_language
        try:
            screens = await self._dispatch(cust, ctx, action_id, lang)
        except StoreError as exc:
            screens = [self._error(lang, exc), await self._menu(lang)]
        except (ValueError, IndexError, KeyError):
            screens = [await self._menu(lang)]
            error = "error.unknown"
        except Exception as exc:  # noqa: BLE001 - the buyer gets an answer; the log gets the type, never data
            log.error("action %r failed: %s", action_id.split(":", 1)[0], type(exc).__name__)
            screens = [await self._menu(lang)]
            error = "error.internal"
        if error:  # the apology first (every channel shows the title first), then the menu it leads back to
            first = screens[0]
            first.body = first.title + ("\n" + first.body if first.body else "")
            first.title = self.i18n.t(lang, error)
            first.error = error
        # The state lives in the database: numbered replies work after a restart or on another process.
        offered = [a.id for a in screens[-1].flat_actions()]
        if self.numbered and cust.state.get("actions") != offered:
            cust.state["actions"] = offered
            await self.shop.save_customer(cust)
        return screens

    async def _dispatch(self, cust: Customer, ctx: Ctx, action_id: str, lang: str) -> list[Screen]:
        if len(action_id) > MAX_ACTION_LEN:
            raise ValueError("action too long")
        name, _, rest = action_id.partition(":")
        args = rest.split(":") if rest else []
        if name not in TOPUP_ACTIONS and TOPUP_STATE in cust.state:  # the buyer left the top-up: forget it
            cust.state.pop(TOPUP_STATE)
            await self.shop.save_customer(cust)
        if risk_ui.STATE in cust.state:  # a challenge is answered (or left) with whatever comes next
            cust.state.pop(risk_ui.STATE)
            await self.shop.save_customer(cust)
        if name not in ("rp", "rn") and aftersales_ui.NOTE in cust.state:  # no problem description awaited now
            await aftersales_ui.forget(self, cust)
        if name != "lc" and link_ui.STATE in cust.state:  # a link code is awaited only right after asking
            cust.state.pop(link_ui.STATE)
            await self.shop.save_customer(cust)
        if name in link_ui.ACTIONS:  # linking this account with the same person's other one (handlers/link.py)
            return await link_ui.dispatch(self, cust, ctx.buyer, lang, name, rest)
        if name == "tu":
            return [await self._topup_ask(cust, lang, _n(args[0]))]
        if name == "ta":
            return [await self._topup_account(cust, lang)]
        if name == "tuc":
            return [await self._topup_confirmed(cust, ctx, lang, _n(args[0]))]
        if name == "menu":
            return [await wallet_ui.with_entry(self, ctx.buyer, lang, await self._menu(lang))]
        if name in wallet_ui.ACTIONS:  # a reseller's wallet: top-ups, commissions (handlers/wallet.py)
            return await wallet_ui.dispatch(self, ctx, lang, name, args)
        if name == "help":
            return [self._help(lang)]
        if name == "lang":
            if args:
                return [await self._set_language(cust, args[0])]
            return [self._languages(lang)]
        if name == "cat":
            return [await self._catalog(lang, _n(args[0]) if args else 0)]
        if name == "c":
            return [await self._category(lang, _n(args[0]), _n(args[1]) if len(args) > 1 else 0)]
        if name == "p":
            return [await self._product(lang, _n(args[0]), _n(args[1]) if len(args) > 1 else None)]
        if name == "buy":
            return [await self._buy(ctx, lang, _n(args[0]), _n(args[1]), cust)]
        if name == "pay":
            return [await self._pay_demo(ctx, lang, args[0])]
        if name == "x":
            order = await self.shop.cancel(args[0], ctx.buyer)
            return [Screen(self.i18n.t(lang, "order.cancelled", order=order.id), actions=self._home(lang))]
        if name == "os":
            return [await self._orders(ctx, lang, _n(args[0]) if args else 0)]
        if name == "o":
            return [await self._order(ctx, lang, args[0])]
        if name == "k" and self.no_reveal:
            return [Screen(self.i18n.t(lang, self.no_reveal), actions=self._home(lang))]
        if name == "k":
            order, product, codes = await self.shop.reveal(args[0], ctx.buyer, ctx.chat_id)
            return [self.render_delivery(Delivery(order, product, codes, again=True), lang)]
        if name == risk_ui.CHALLENGE:  # the buyer's answer to a risk challenge (handlers/risk.py)
            return await risk_ui.answer_challenge(self, ctx, lang, args, cust)
        if name == "rp":  # report a problem with an order (handlers/aftersales.py)
            return [await aftersales_ui.report_problem(self, ctx.buyer, lang, args, cust)]
        if name == "rn":  # the problem's description the buyer typed
            return [await aftersales_ui.note_typed(self, cust, ctx.buyer, lang)]
        if name == "hs":  # history: purchases, reveals, tickets
            return [await aftersales_ui.history(self, ctx.buyer, lang, _n(args[0]) if args else 0)]
        raise ValueError(f"unknown action {name!r}")

    # -- screens ------------------------------------------------------------------------------
    def _home(self, lang: str) -> list[list[Action]]:
        return [[Action("menu", self.i18n.t(lang, "nav.menu"))]]

    async def _menu(self, lang: str) -> Screen:
        t = self.i18n.t
        body = t(lang, "menu.body")
        if self.demo_payments:
            body += "\n" + t(lang, "demo.banner")
        return Screen(t(lang, "menu.title", shop=self.shop_name), body, actions=[
            [Action("cat", t(lang, "menu.catalog"))], [Action("os:0", t(lang, "menu.orders"))],
            [Action("help", t(lang, "menu.help")), Action("lang", t(lang, "menu.language"))],
            [Action("lk", t(lang, "menu.link"))]])

    def _help(self, lang: str) -> Screen:
        body = self.i18n.t(lang, "help.body")
        if self.support:
            body += "\n" + self.i18n.t(lang, "help.support", contact=self.support)
        return Screen(self.i18n.t(lang, "help.title"), body, actions=self._home(lang))

    def _languages(self, lang: str) -> Screen:
        return Screen(self.i18n.t(lang, "language.title"), actions=[
            [Action(f"lang:{code}", self.i18n.language_name(code))] for code in self.i18n.languages])

    async def _set_language(self, cust: Customer, code: str) -> Screen:
        if code not in self.i18n.languages:
            raise ValueError(code)
        cust.language = code
        await self.shop.save_customer(cust)
        menu = await self._menu(code)
        menu.body = self.i18n.t(code, "language.set") + "\n\n" + menu.body
        return menu

    def _title(self, p: Product, lang: str) -> str:
        return localized(p.title, lang, self.shop.default_language)

    def _price(self, amount: int, currency: str, lang: str) -> str:
        return self.i18n.money(amount, currency, lang)

    async def _catalog(self, lang: str, page: int) -> Screen:
        cats = await self.shop.categories()
        if len(cats) <= 1:
            return await self._category(lang, 0, page)
        t = self.i18n.t
        rows = []
        for i, (key, p) in enumerate(cats):
            name = localized(p.category, lang, self.shop.default_language) if key else t(lang, "catalog.uncategorised")
            rows.append([Action(f"c:{i}", name)])
        rows.append([Action("menu", t(lang, "nav.back"))])
        return Screen(t(lang, "catalog.title"), t(lang, "catalog.categories"), actions=rows)

    async def _category(self, lang: str, index: int, page: int) -> Screen:
        t = self.i18n.t
        cats = await self.shop.categories()
        products = await self.shop.products(cats[index][0]) if cats else []
        if not products:
            return Screen(t(lang, "catalog.title"), t(lang, "catalog.empty"), actions=self._home(lang))
        pages = math.ceil(len(products) / PAGE)
        page = max(0, min(page, pages - 1))
        rows = [[Action(f"p:{p.id}", t(lang, "catalog.item", title=self._title(p, lang),
                                          price=self._price(p.price, p.currency, lang)))]
                for p in products[page * PAGE:(page + 1) * PAGE]]
        nav = []
        if page > 0:
            nav.append(Action(f"c:{index}:{page - 1}", t(lang, "nav.prev")))
        if page + 1 < pages:
            nav.append(Action(f"c:{index}:{page + 1}", t(lang, "nav.next")))
        if nav:
            rows.append(nav)
        rows.append([Action("cat" if len(cats) > 1 else "menu", t(lang, "nav.back"))])
        body = t(lang, "catalog.products")
        if pages > 1:
            body += "\n" + t(lang, "catalog.page", page=page + 1, pages=pages)
        return Screen(t(lang, "catalog.title"), body, actions=rows)

    async def _product(self, lang: str, product_id: int, qty: int | None) -> Screen:
        t = self.i18n.t
        view = await self.shop.product_view(product_id)
        p = view.product
        qty = max(p.min_qty, min(p.max_qty, qty if qty is not None else p.min_qty))
        lines = []
        desc = localized(p.description, lang, self.shop.default_language)
        if desc:
            lines.append(desc)
        lines.append(t(lang, "product.price", price=self._price(p.price, p.currency, lang)))
        rules = rules_of(p.rules)
        if rules.effective_from is not None:  # a membership that starts later: say when (and when it arrives)
            key = "rules.effective_delivered_then" if rules.deliver_on_effective else "rules.effective"
            lines.append(t(lang, key, date=rules.effective_from.strftime("%Y-%m-%d")))
        if p.stars and self.show_stars:
            lines.append(t(lang, "product.stars", stars=p.stars))
        if view.available is None:
            lines.append(t(lang, "product.unlimited"))
        elif view.available == 0:
            lines.append(t(lang, "product.sold_out"))
        elif view.low:
            lines.append(t(lang, "product.low", n=view.available))
        else:
            lines.append(t(lang, "product.in_stock"))
        rows: list[list[Action]] = []
        if self.show_stars and not p.stars:
            lines.append(t(lang, "telegram.no_stars"))
        elif view.available != 0 and p.kind is Kind.TOPUP:  # the account comes first, then the invoice
            rows.append([Action(f"tu:{p.id}", t(lang, "product.buy"))])
        elif view.available != 0:
            # Buy comes first so that on numbered channels "1" always means Buy on a product page.
            rows.append([Action(f"buy:{p.id}:{qty}", t(lang, "product.buy"))])
            if p.max_qty > p.min_qty:
                lines.append(t(lang, "product.qty", qty=qty, min=p.min_qty, max=p.max_qty))
                qrow = []
                if qty > p.min_qty:
                    qrow.append(Action(f"p:{p.id}:{qty - 1}", t(lang, "product.less")))
                if qty < p.max_qty:
                    qrow.append(Action(f"p:{p.id}:{qty + 1}", t(lang, "product.more")))
                rows.append(qrow)
            lines.append(t(lang, "product.total", total=self._price(p.price * qty, p.currency, lang)))
        rows.append([Action("cat", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))])
        return Screen(self._title(p, lang), "\n".join(lines), actions=[r for r in rows if r])

    async def _buy(self, ctx: Ctx, lang: str, product_id: int, qty: int, cust: Customer | None = None) -> Screen:
        product = await self.shop.product(product_id)
        if product is not None and self.show_stars and not product.stars:
            # Telegram sells digital goods for Stars only: nothing is held for what cannot be paid here.
            raise StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=product.sku)
        try:
            order = await self.shop.reserve(ctx.buyer, product_id, qty, lang, ctx.chat_id)
        except StoreError as exc:
            if exc.code is ErrorCode.CHALLENGE_REQUIRED:
                if self.numbered and cust is not None:  # the next number typed is the answer
                    cust.state[risk_ui.STATE] = {"t": str(exc.params.get("token", "")), "p": product_id, "q": qty}
                    await self.shop.save_customer(cust)
                return risk_ui.challenge_screen(self, lang, exc.params, product_id, qty)
            if exc.code is ErrorCode.RULE_REFUSED and exc.params.get("rule") == "phone_required" and self.ask_phone:
                screen = risk_ui.ask_phone(self, lang)
                screen.body = self.i18n.t(lang, exc.message_key, **exc.params) + "\n\n" + screen.body
                return screen
            raise
        assert product is not None  # it was just reserved
        return self._invoice(order, product, lang)

    # -- top-ups: account -> confirmation -> invoice ------------------------------------------------
    async def _topup_ask(self, cust: Customer, lang: str, product_id: int, error: str = "") -> Screen:
        """Ask for the account to recharge; the next message the buyer types is taken as the account."""
        view = await self.shop.product_view(product_id)
        if view.product.kind is not Kind.TOPUP:
            raise ValueError("not a top-up product")
        cust.state[TOPUP_STATE] = {"p": product_id}
        await self.shop.save_customer(cust)
        t = self.i18n.t
        body = (error + "\n\n" if error else "") + t(lang, "topup.ask.body")
        return Screen(t(lang, "topup.ask.title", title=self._title(view.product, lang)), body,
                      actions=[[Action(f"p:{product_id}", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))]],
                      error="bad_account" if error else None)

    async def _topup_account(self, cust: Customer, lang: str) -> Screen:
        """The buyer typed an account: shown back for confirmation, or asked again when it does not fit."""
        state = cust.state.get(TOPUP_STATE) or {}
        product = await self.shop.product(int(state.get("p", 0)))
        if product is None or product.kind is not Kind.TOPUP or "typed" not in state:
            raise ValueError("no top-up waiting for an account")
        typed = str(state.pop("typed"))
        account = self.shop.check_account(product, typed)
        t = self.i18n.t
        if account is None:
            return await self._topup_ask(cust, lang, product.id, t(lang, "topup.bad_account", account=typed[:40]))
        state["a"] = account
        await self.shop.save_customer(cust)
        return Screen(t(lang, "topup.confirm.title"), t(
            lang, "topup.confirm.body", title=self._title(product, lang), account=account,
            total=self._price(product.price, product.currency, lang)), actions=[
            [Action(f"tuc:{product.id}", t(lang, "topup.confirm"))],
            [Action(f"tu:{product.id}", t(lang, "topup.change")), Action("menu", t(lang, "nav.menu"))]])

    async def _topup_confirmed(self, cust: Customer, ctx: Ctx, lang: str, product_id: int) -> Screen:
        """Confirmed: the order is made with the account and the invoice shown."""
        state = cust.state.get(TOPUP_STATE) or {}
        if state.get("p") != product_id or not state.get("a"):
            return await self._topup_ask(cust, lang, product_id)
        product = await self.shop.product(product_id)
        if product is not None and self.show_stars and not product.stars:
            raise StoreError(ErrorCode.PRODUCT_UNAVAILABLE, sku=product.sku)
        order = await self.shop.reserve(ctx.buyer, product_id, 1, lang, ctx.chat_id, account=str(state["a"]))
        cust.state.pop(TOPUP_STATE, None)
        await self.shop.save_customer(cust)
        assert product is not None
        return self._invoice(order, product, lang)

    def _invoice(self, order: Order, product: Product, lang: str) -> Screen:
        t = self.i18n.t
        minutes = max(1, round((order.expires_at - order.created_at).total_seconds() / 60))
        rows = []
        if self.demo_payments:
            rows.append([Action(f"pay:{order.id}", t(lang, "order.pay_demo"))])
        rows.append([Action(f"x:{order.id}", t(lang, "order.cancel"))])
        return Screen(
            t(lang, "order.held.title", order=order.id),
            t(lang, "order.held.body", title=self._title(product, lang), qty=order.qty,
              total=self._price(order.amount, order.currency, lang), minutes=minutes)
            + ("\n" + t(lang, "topup.account", account=order.account) if order.account else ""),
            actions=rows,
            invoice={"order_id": order.id, "title": self._title(product, lang), "amount": order.amount,
                     "currency": order.currency, "stars": (order.stars or 0) * order.qty, "qty": order.qty, "lang": lang,
                     "minutes": minutes})

    async def _pay_demo(self, ctx: Ctx, lang: str, order_id: str) -> Screen:
        """Demo payment (terminal demo only): the same path a real provider's notice takes."""
        if not self.demo_payments:
            raise StoreError(ErrorCode.PROVIDER_DISABLED, provider="demo")
        order, _ = await self.shop.order_for(order_id, ctx.buyer)
        result = await self.shop.pay(PaymentNotice(order.id, "demo", f"demo-{order.id}", order.amount,
                                                   order.currency, ctx.buyer))
        t = self.i18n.t
        if result.outcome == "duplicate":
            return Screen(t(lang, "order.already_paid", order=order.id), actions=self._home(lang))
        if result.outcome == "refunding":
            reason = t(lang, f"refund.reason.{result.reason}")
            return Screen(t(lang, "order.refunding", order=order.id, reason=reason), actions=self._home(lang))
        if result.outcome == "pending":  # bought from the supplier next: codes or the top-up follow
            return Screen(t(lang, "topup.pending" if order.account else "supplier.pending"),
                          actions=[[Action(f"o:{order.id}", t(lang, "menu.orders"))], *self._home(lang)])
        return Screen(t(lang, "order.paid", order=order.id),
                      actions=[[Action(f"o:{order.id}", t(lang, "menu.orders"))], *self._home(lang)])

    async def _orders(self, ctx: Ctx, lang: str, page: int) -> Screen:
        t = self.i18n.t
        orders = await self.shop.my_orders(ctx.buyer, limit=PAGE + 1, offset=page * PAGE)
        if not orders and page == 0:
            return Screen(t(lang, "orders.title"), t(lang, "orders.empty"), actions=self._home(lang))
        products = {p.id: p for p in await self.shop.products(include_inactive=True)}  # withdrawn ones too
        rows = []
        for o in orders[:PAGE]:
            p = products.get(o.product_id)
            title = self._title(p, lang) if p else "#" + str(o.product_id)
            label = t(lang, "orders.item", order=o.id, title=title, qty=o.qty,
                      status=t(lang, f"status.{o.status.value}"))
            if o.buyer != ctx.buyer:  # bought by a linked account (handlers/link.py)
                label += " " + t(lang, "link.order_mark", channel=self._channel(lang, o.buyer.channel))
            rows.append([Action(f"o:{o.id}", label)])
        nav = []
        if page > 0:
            nav.append(Action(f"os:{page - 1}", t(lang, "nav.prev")))
        if len(orders) > PAGE:
            nav.append(Action(f"os:{page + 1}", t(lang, "nav.next")))
        if nav:
            rows.append(nav)
        if self.shop.problems is not None:  # purchases, reveals, tickets (handlers/aftersales.py)
            rows.append([Action("hs:0", t(lang, "aftersales.history.button"))])
        rows.append([Action("menu", t(lang, "nav.menu"))])
        return Screen(t(lang, "orders.title"), actions=rows)

    def _channel(self, lang: str, channel: str) -> str:
        name = self.i18n.t(lang, f"link.channel.{channel}")
        return channel if name.startswith("link.channel.") else name

    async def _linked_order(self, ctx: Ctx, lang: str, order_id: str) -> Screen:
        """An order a linked account bought: what and when, but no codes, payment or reports here: those stay
        in the chat that bought it."""
        t = self.i18n.t
        order, product = await self.shop.linked_order(order_id, ctx.buyer)
        body = t(lang, "order.detail", title=self._title(product, lang), qty=order.qty,
                 total=self._price(order.amount, order.currency, lang), status=t(lang, f"status.{order.status.value}"),
                 created=order.created_at.strftime("%Y-%m-%d %H:%M UTC"))
        body += "\n\n" + t(lang, "link.order_elsewhere", channel=self._channel(lang, order.buyer.channel))
        return Screen(t(lang, "order.held.title", order=order.id), body,
                      actions=[[Action("os:0", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))]])

    async def _order(self, ctx: Ctx, lang: str, order_id: str) -> Screen:
        t = self.i18n.t
        try:
            order, product = await self.shop.order_for(order_id, ctx.buyer)
        except StoreError as exc:
            if exc.code is not ErrorCode.NOT_YOUR_ORDER:
                raise
            return await self._linked_order(ctx, lang, order_id)
        if order.status is OrderStatus.HELD and order.expires_at > self.shop.clock.now():
            return self._invoice(order, product, lang)
        body = t(lang, "order.detail", title=self._title(product, lang), qty=order.qty,
                 total=self._price(order.amount, order.currency, lang), status=t(lang, f"status.{order.status.value}"),
                 created=order.created_at.strftime("%Y-%m-%d %H:%M UTC"))
        if order.account:
            body += "\n" + t(lang, "topup.account", account=order.account)
        if order.status is OrderStatus.PENDING:
            body += "\n" + t(lang, "topup.pending" if product.kind is Kind.TOPUP else "supplier.pending")
        body += await aftersales_ui.order_lines(self, order, lang)  # its tickets and their status
        rows = []
        due = rules_of(product.rules).delivery_due(order.paid_at) if order.paid_at else None
        if order.status is OrderStatus.DELIVERED and due is not None and due > self.shop.clock.now():
            body += "\n" + t(lang, "rules.scheduled_line", date=due.strftime("%Y-%m-%d %H:%M UTC"))
        elif order.status is OrderStatus.DELIVERED:
            if product.kind is not Kind.TOPUP:  # a top-up has no code
                rows.append([Action(f"k:{order.id}", t(lang, "order.show_codes"))])
            if self.shop.problems is not None:  # after-sales (handlers/aftersales.py)
                rows.append([Action(f"rp:{order.id}", t(lang, "aftersales.report"))])
        rows.append([Action("os:0", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))])
        return Screen(t(lang, "order.held.title", order=order.id), body, actions=rows)

    def _error(self, lang: str, exc: StoreError) -> Screen:
        return Screen(self.i18n.t(lang, exc.message_key, **exc.params), error=exc.code.value)

    # -- outbound -----------------------------------------------------------------------------
    async def remember(self, buyer: Buyer, screen: Screen) -> None:
        """A screen sent outside a reply (a delivery): numbered replies now refer to its actions."""
        if not self.numbered:
            return
        cust = await self.shop.customer(buyer, fresh=True)
        offered = [a.id for a in screen.flat_actions()]
        if cust.state.get("actions") != offered:
            cust.state["actions"] = offered
            await self.shop.save_customer(cust)

    def render_delivery(self, delivery: Delivery, lang: str | None = None) -> Screen:
        """The message carrying codes (first delivery or shown again)."""
        t = self.i18n.t
        lang = lang or delivery.order.language
        o = delivery.order
        title = t(lang, "delivery.again_title" if delivery.again else "delivery.title", order=o.id)
        body = t(lang, "delivery.body", title=self._title(delivery.product, lang), qty=o.qty)
        effective = rules_of(delivery.product.rules).effective_from
        if effective is not None:
            body += "\n" + t(lang, "rules.effective", date=effective.strftime("%Y-%m-%d"))
        return Screen(title, body, secrets=list(delivery.codes), footer=t(lang, "delivery.keep"),
                      actions=[[Action(f"o:{o.id}", t(lang, "menu.orders")), Action("menu", t(lang, "nav.menu"))]])

    def render_notice(self, lang: str, key: str, params: dict) -> Screen:
        if "_commands" in params:  # a merchant alert offering commands (handlers/aftersales.py)
            return aftersales_ui.alert_screen(self, lang, key, params)
        params = dict(params)
        if "reason" in params and params["reason"]:
            params["reason"] = self.i18n.t(lang, f"refund.reason.{params['reason']}")
        actions = self._home(lang)
        if key == "risk.review.approved" and params.get("order"):  # the shop let the order go on: pay it here
            actions = [[Action(f"o:{params['order']}", self.i18n.t(lang, "risk.review.pay"))], *actions]
        return Screen(self.i18n.t(lang or self.shop.default_language, key, **params), actions=actions)
