"""The customer's conversation: typed messages and pressed buttons in, Screens out, for every channel.

Each feature owns a router of its actions (handlers/home.py, catalog.py, orders.py, aftersales.py, link.py,
wallet.py); CustomerFlow includes them, finds the handler of an action (by today's name or an old one: buttons
already sent keep working), forgets what the conversation waited for when the buyer goes elsewhere, runs the
handler, and turns refusals into their message (handlers/errors.py) followed by the menu. Bad action data never
raises: the buyer gets "did not understand" and the menu. WeChat and the console answer with numbers: the offered
actions are stored with the customer (handlers/state.py), so "2" means the same after a restart or on another
process.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from core import stock_alerts
from core.errors import Refused
from core.models import Buyer, Customer
from core.ports import Delivery
from core.shop import Shop
from handlers import (
    aftersales,
    broadcast,
    catalog,
    errors,
    group_buy,
    home,
    link,
    members,
    orders,
    privacy,
    risk,
    wallet,
)
from handlers.actions import (
    MAX_ACTION_BYTES,
    OLD_NAMES,
    Aftersales,
    GroupBuying,
    Home,
    Link,
    Members,
    Orders,
    Privacy,
    Shopping,
)
from handlers.router import Ctx, Router, Turn, number
from handlers.screen import Action, Screen
from handlers.state import Conversation
from locales import Translator

__all__ = ["Ctx", "CustomerFlow"]

log = logging.getLogger(__name__)
MAX_ACCOUNT_TYPED = 200


class CustomerFlow:
    def __init__(self, shop: Shop, i18n: Translator, *, shop_name: str, support: str = "",
                 demo_payments: bool = False, show_stars: bool = False, numbered: bool = True,
                 ask_phone: bool = False, no_reveal: str | None = None, terms: Mapping[str, str] | None = None,
                 webapp_url: str | None = None) -> None:
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
        self.terms = dict(terms or {})  # store.terms per language ({} : the default text of locales/)
        self.webapp_url = webapp_url  # Telegram: the Mini App's https address; the menu gets an "Open shop" button
        # The channel's referral link for a start payload (bots/telegram/wiring.py: a t.me link; bots/wechat: a QR
        # code's address); None: the payload is shown as a /start command (the console).
        self.invite: members.Invite | None = None
        # Telegram: the bot's deep link for a payload (a group-buy's share link); None: the channel has none
        self.share_link: Callable[[str], Awaitable[str]] | None = None
        self.router = Router("customer", aliases=OLD_NAMES).include(
            home.router, catalog.router, orders.router, aftersales.router, link.router, wallet.router, members.router,
            group_buy.router, privacy.router)

    # -- entry points -------------------------------------------------------------------------
    async def on_text(self, ctx: Ctx, text: str) -> list[Screen]:
        """A typed message: a command, a number picking an offered action, what a flow waits for, or else."""
        cust = await self.shop.customer(ctx.buyer, ctx.language_hint, fresh=self.numbered)
        state = Conversation(cust)
        word = text.strip()
        command = word.split("@", 1)[0].split(" ", 1)[0].lower() if word.startswith("/") else ""
        if command in ("/start", "/menu"):
            payload = word.split(" ", 1)[1].strip()[:64] if " " in word else ""
            if command == "/start" and payload and state.start_payload is None:
                state.start_payload = payload  # a deep link's payload, kept for referrals
                await self.shop.save_customer(cust)
            joining = group_buy.start_payload(payload) if command == "/start" else None
            if joining is not None:  # a group-buy's shared link: the group's page
                return await self._act(cust, ctx, GroupBuying.GROUP, [joining])
            gift = await self.shop.members.welcome(ctx.buyer) if command == "/start" and self.shop.members else None
            screens = await self._act(cust, ctx, Home.MENU)
            if gift:  # the new-buyer gift (新人礼包), once per person
                lang = cust.language or self.shop.default_language
                said = ([self.i18n.t(lang, "members.gift", points=gift.points)] if gift.points else []) + \
                    ([self.i18n.t(lang, "member_coupons.gift", name=gift.coupon)] if gift.coupon else [])
                screens[0].body = "\n".join(said) + "\n\n" + screens[0].body
            return screens
        if command == "/help":
            return await self._act(cust, ctx, Home.HELP)
        if command == "/terms":
            return await self._act(cust, ctx, Home.TERMS)
        if command == "/language":
            return await self._act(cust, ctx, Home.LANGUAGE)
        if command == "/orders":
            return await self._act(cust, ctx, Orders.ORDERS, ["0"])
        if command in members.COMMANDS:
            return await self._act(cust, ctx, Members.ACCOUNT)
        if privacy.asked(self.i18n, word):  # what is kept about me
            return await self._act(cust, ctx, Privacy.MYDATA)
        if command in broadcast.BUYER_COMMANDS:  # opting out of (or back into) merchants' broadcasts
            return [await broadcast.news(self, cust, command)]
        joining = group_buy.typed_join(word)  # `拼团 <id>` / `join <id>`: the group's page
        if joining is not None:
            return await self._act(cust, ctx, GroupBuying.GROUP, [joining])
        linking = link.command(self.i18n, word)  # /link, /link CODE, /unlink and their words
        if linking is not None:
            return await self._act(cust, ctx, *linking)
        offered = state.actions or []
        try:
            n = number(word)
        except ValueError:
            n = 0
        picked = offered[n - 1] if 1 <= n <= len(offered) else None
        typed = bool(word) and not word.startswith("/")
        wait = state.topup
        if wait is not None and typed:
            # Waiting for a top-up account: what fits the product's pattern is the account; a number that picks
            # an offered action (and is no account) is that action; anything else is a wrong account.
            product = await self.shop.product(wait.product_id)
            fits = product is not None and self.shop.check_account(product, word) is not None
            if fits or picked is None:
                return await self._act(cust, ctx, Shopping.TOPUP_ACCOUNT, [word[:MAX_ACCOUNT_TYPED]])
        answer = risk.typed_answer(state, word)
        if answer is not None:  # a challenge is waiting for its answer (numbered channels type it)
            return await self._act(cust, ctx, Shopping.CHALLENGE, answer)
        if state.report_note is not None and typed and picked is None:  # a problem's description
            return await self._act(cust, ctx, Aftersales.REPORT_NOTE, [word[:aftersales.MAX_TYPED]])
        if state.link is not None and typed and picked is None:  # the code asked for ("I have a code")
            return await self._act(cust, ctx, Link.LINK_REDEEM, [word[:link.MAX_TYPED]])
        coupon = state.coupon
        if coupon is not None and not coupon.sealed and typed and picked is None:  # "Have a coupon?": the code
            return await self._act(cust, ctx, Shopping.COUPON_CODE, [word[:catalog.MAX_COUPON_TYPED]])
        if picked is not None:
            return await self._act(cust, ctx, picked)
        return await self._act(cust, ctx, Home.MENU, error="error.unknown")

    async def on_contact(self, ctx: Ctx, phone: str, own: bool) -> list[Screen]:
        """A contact the buyer shared (Telegram's request-contact keyboard): binds their own phone only."""
        return await risk.on_contact(self, ctx, phone, own)

    async def on_action(self, ctx: Ctx, action_id: str) -> list[Screen]:
        """A pressed button (or a resolved numbered reply)."""
        cust = await self.shop.customer(ctx.buyer, ctx.language_hint, fresh=self.numbered)
        return await self._act(cust, ctx, action_id)

    async def _act(self, cust: Customer, ctx: Ctx, action: str, args: Sequence[str] | None = None,
                   error: str | None = None) -> list[Screen]:
        """Run an action: `action` is an id as a button carries it, or, with `args`, a name and its arguments as
        typed (taken whole: never split at ":")."""
        turn = Turn(self, cust, ctx, cust.language or self.shop.default_language)
        name = action
        try:
            if args is None:
                if len(action) > MAX_ACTION_BYTES:
                    raise ValueError("action too long")
                name, _, rest = action.partition(":")
                args = rest.split(":") if rest else []
            route = self.router.find(name)
            if turn.state.forget(keep=route.keeps if route else ()):  # the buyer went elsewhere
                await turn.save()
            if route is None:
                raise ValueError("unknown action")
            screens = await route(turn, args)
        except Refused as exc:
            screens = [errors.screen(self.i18n, turn.lang, exc), home.menu_screen(turn)]
        except (ValueError, IndexError, KeyError):
            screens = [home.menu_screen(turn)]
            error = "error.unknown"
        except Exception as exc:  # noqa: BLE001 - the buyer gets an answer; the log gets the type, never data
            log.error("action %r failed: %s", name.partition(":")[0][:MAX_ACTION_BYTES], type(exc).__name__)
            screens = [home.menu_screen(turn)]
            error = "error.internal"
        if error:  # the apology first (every channel shows the title first), then the menu it leads back to
            first = screens[0]
            first.body = first.title + ("\n" + first.body if first.body else "")
            first.title = turn.t(error)
            first.error = error
        # The state lives in the database: numbered replies work after a restart or on another process.
        offered = [a.id for a in screens[-1].flat_actions()]
        if self.numbered and turn.state.actions != offered:
            turn.state.actions = offered
            await turn.save()
        return screens

    # -- outbound -----------------------------------------------------------------------------
    async def remember(self, buyer: Buyer, screen: Screen) -> None:
        """A screen sent outside a reply (a delivery): numbered replies now refer to its actions."""
        if not self.numbered:
            return
        cust = await self.shop.customer(buyer, fresh=True)
        state = Conversation(cust)
        offered = [a.id for a in screen.flat_actions()]
        if state.actions != offered:
            state.actions = offered
            await self.shop.save_customer(cust)

    def render_delivery(self, delivery: Delivery, lang: str | None = None) -> Screen:
        """The message carrying codes (first delivery or shown again)."""
        return orders.delivery_screen(self, delivery, lang)

    def render_notice(self, lang: str, key: str, params: dict) -> Screen:
        """A message the outbox sends (a refund, a review decided, a merchant alert)."""
        if "_commands" in params:  # a merchant alert offering commands (handlers/aftersales.py)
            return aftersales.alert_screen(self, lang, key, params)
        params = dict(params)
        if "reason" in params and params["reason"]:
            params["reason"] = self.i18n.t(lang, f"refund.reason.{params['reason']}")
        actions = [[Action(Home.MENU.id(), self.i18n.t(lang, "nav.menu"))]]
        if key == stock_alerts.NOTICE and params.get("product"):  # back in stock: open the product
            actions = [[Action(Shopping.PRODUCT.id(params["product"]), self.i18n.t(lang, "stock_alerts.open"))],
                       *actions]
        if key.startswith("group_buy.") and params.get("group"):  # a group's news: its page
            actions = [[Action(GroupBuying.GROUP.id(params["group"]), self.i18n.t(lang, "group_buy.open"))],
                       *actions]
        if key == "risk.review.approved" and params.get("order"):  # the shop let the order go on: pay it here
            actions = [[Action(Orders.ORDER.id(params["order"]), self.i18n.t(lang, "risk.review.pay"))], *actions]
        return Screen(self.i18n.t(lang or self.shop.default_language, key, **params), actions=actions)
