"""Reseller commands, channel-neutral: parse -> one use case (core/groups.py, core/resellers/) -> Screen.

In a group chat linked to a reseller (GroupFlow):
    /buy SKU QTY            an allowed member: a quote with Confirm / Cancel only they may press
    /allow @member|USER_ID  the reseller's owner (or in reply to the member's message); /disallow the same
    /linkgroup RESELLER     a merchant links this group; /unlinkgroup
For merchants in private (ResellerCommands, reached through handlers/admin.py):
    /reseller                          the list
    /reseller add USER [DISCOUNT] [CREDIT]
    /reseller tier USER DISCOUNT | credit USER CREDIT | on USER | off USER
    /wallet USER [+AMOUNT [NOTE]]      the statement; +AMOUNT credits money received (audited ledger row)
    /linkgroup RESELLER CHAT_ID, /unlinkgroup CHAT_ID
For the reseller's owner in private: /wallet (their own statement).

USER is the owner's user id on the channel; RESELLER that too, the reseller's name, or #id. Amounts are minor
units (fen), DISCOUNT a percent off the list price.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.groups import GroupDesk, GroupError, GroupOrder, Quote, Throttle
from core.models import Product, localized
from core.resellers import Reseller, ResellerError, WalletEntry
from handlers import errors
from handlers.screen import Action, Screen
from locales import Translator

CONFIRM, CANCEL = "gc:", "gx:"  # button data: gc:<token> / gx:<token> (well under 64 bytes)
GROUP_COMMANDS = frozenset({"/buy", "/allow", "/disallow", "/linkgroup", "/unlinkgroup"})


@dataclass(slots=True)
class GroupCtx:
    chat: str
    user: str
    username: str | None
    language: str
    merchant: bool
    reply_to: str | None = None  # the user id of the message this command answers (for /allow)


@dataclass(slots=True)
class GroupAnswer:
    screen: Screen
    quote: str | None = None  # the token of the quote this screen shows (its message id is remembered)


@dataclass(slots=True)
class ButtonAnswer:
    alert: str | None = None  # a short answer to the tap (only the presser sees it)
    edit: Screen | None = None  # the group message's new text
    message_id: int | None = None  # the group message (the quote) to edit


def parse_group_command(text: str, bot_username: str) -> tuple[str, list[str]] | None:
    """('/buy', args) for '/buy X 1' or '/buy@ourbot X 1'; None for text that is no command or a command
    addressed to another bot."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    command, _, to = words[0].partition("@")
    if to and to.lower() != bot_username.lower():
        return None
    return command.lower(), words[1:]


class GroupFlow:
    """Commands typed in group chats and the buttons of the quotes."""

    def __init__(self, desk: GroupDesk, i18n: Translator) -> None:
        self.desk = desk
        self.i18n = i18n
        self._notices = Throttle(desk.clock, 1)  # one "slow down" per group a minute

    def t(self, lang: str, key: str, **params: object) -> str:
        return self.i18n.t(lang, key, **params)

    async def on_command(self, ctx: GroupCtx, command: str, args: list[str]) -> GroupAnswer | None:
        """A command in a group; None when it is none of ours (other bots' commands are left alone)."""
        if command not in GROUP_COMMANDS:
            return None
        try:
            if command == "/buy":
                return await self._buy(ctx, args)
            if command in ("/allow", "/disallow"):
                return await self._allow(ctx, args, command == "/allow")
            if not ctx.merchant:
                return GroupAnswer(self._error(ctx.language, "merchant_only"))
            if command == "/linkgroup":
                if len(args) != 1:
                    return GroupAnswer(self._usage(ctx.language, "linkgroup_here"))
                r = await self.desk.resolve(args[0])
                await self.desk.link(ctx.chat, r.id, actor=self.desk.buyer(ctx.user).key)
                return GroupAnswer(Screen(self.t(ctx.language, "groups.linked", reseller=r.name)))
            await self.desk.unlink(ctx.chat, actor=self.desk.buyer(ctx.user).key)
            return GroupAnswer(Screen(self.t(ctx.language, "groups.unlinked")))
        except GroupError as exc:
            return GroupAnswer(errors.screen(self.i18n, ctx.language, exc))

    async def _buy(self, ctx: GroupCtx, args: list[str]) -> GroupAnswer | None:
        if await self.desk.throttled(ctx.chat, ctx.user):
            if self._notices.allow(ctx.chat):
                return GroupAnswer(self._error(ctx.language, "slow_down"))
            return None  # a flood: not answered at all (the group's 20 messages a minute are kept for orders)
        await self.desk.seen(ctx.chat, ctx.user, ctx.username)
        if len(args) != 2 or not (args[1].isascii() and args[1].isdigit()) or len(args[1]) > 6:
            return GroupAnswer(self._usage(ctx.language, "buy"))
        q = await self.desk.quote(ctx.chat, ctx.user, args[0], int(args[1]), ctx.language)
        return GroupAnswer(self.quote_screen(q), q.group_order.id)

    async def _allow(self, ctx: GroupCtx, args: list[str], allowed: bool) -> GroupAnswer:
        target = args[0] if len(args) == 1 else ctx.reply_to if not args else None
        if target is None:
            return GroupAnswer(self._usage(ctx.language, "allow"))
        user = await self.desk.allow(ctx.chat, ctx.user, target, allowed, merchant=ctx.merchant)
        key = "groups.allowed" if allowed else "groups.disallowed"
        return GroupAnswer(Screen(self.t(ctx.language, key, member=target if target.startswith("@") else user)))

    async def on_button(self, ctx: GroupCtx, data: str) -> ButtonAnswer:
        """Confirm / Cancel on a quote: only the member who asked; anyone else gets "not yours"."""
        lang = ctx.language
        token = data[3:]
        if data[:3] not in (CONFIRM, CANCEL) or not token or len(token) > 16:
            return ButtonAnswer(self.t(lang, "groups.error.unknown_quote"))
        try:
            if data.startswith(CANCEL):
                g = await self.desk.cancel(token, ctx.chat, ctx.user)
                return ButtonAnswer(self.t(lang, "groups.cancelled"), Screen(self.t(g.language, "groups.cancelled")),
                                    g.message_id)
            done = await self.desk.confirm(token, ctx.chat, ctx.user)
        except GroupError as exc:
            return ButtonAnswer(errors.text(self.i18n, lang, exc))
        if not done.created:
            return ButtonAnswer(self.t(lang, "groups.error.done"))
        if done.due is not None:  # deliver_on_effective: the codes go out on that date
            when = done.due.strftime("%Y-%m-%d %H:%M UTC")
            return ButtonAnswer(self.t(lang, "groups.paid_alert_scheduled", date=when))
        # The group message is edited once the codes reached the member (delivered, or the deep link): an edit
        # here could land after that one and undo it.
        return ButtonAnswer(self.t(lang, "groups.paid_alert"))

    # -- screens ----------------------------------------------------------------------------------------
    def _title(self, p: Product, lang: str) -> str:
        return localized(p.title, lang, self.i18n.default)  # the store's default language

    def _money(self, amount: int, currency: str, lang: str) -> str:
        return self.i18n.money(amount, currency, lang)

    def quote_screen(self, q: Quote) -> Screen:
        g, lang = q.group_order, q.group_order.language
        body = self.t(lang, "groups.quote.body", product=self._title(q.product, lang), sku=q.product.sku, qty=g.qty,
                      unit=self._money(g.unit, g.currency, lang), total=self._money(g.amount, g.currency, lang),
                      after=self._money(q.balance_after, q.reseller.currency, lang), reseller=q.reseller.name)
        buttons = [[Action(CONFIRM + g.id, self.t(lang, "groups.confirm")),
                    Action(CANCEL + g.id, self.t(lang, "groups.cancel"))]]
        return Screen(self.t(lang, "groups.quote.title"), body, buttons, footer=self.t(lang, "groups.quote.footer"))

    def delivered_screen(self, g: GroupOrder, product: Product | None) -> Screen:
        lang = g.language
        return Screen(self.t(lang, "groups.delivered", order=g.order_id or "", qty=g.qty,
                             product=self._title(product, lang) if product else ""))

    def unreachable_screen(self, g: GroupOrder, link: str) -> Screen:
        return Screen(self.t(g.language, "groups.unreachable", order=g.order_id or "", link=link))

    def _error(self, lang: str, code: str) -> Screen:
        """A refusal of this flow's own (not a core refusal: those go through handlers/errors.py)."""
        return Screen(self.t(lang, f"groups.error.{code}"), error=code)

    def _usage(self, lang: str, what: str) -> Screen:
        return Screen(self.t(lang, f"groups.usage.{what}"), error="usage")


class ResellerCommands:
    """The merchant's /reseller, /wallet, /linkgroup, /unlinkgroup (handlers/admin.py hands them here) and the
    reseller owner's own /wallet."""

    def __init__(self, desk: GroupDesk, i18n: Translator) -> None:
        self.desk = desk
        self.i18n = i18n

    def t(self, lang: str, key: str, **params: object) -> str:
        return self.i18n.t(lang, key, **params)

    async def command(self, actor: str, lang: str, command: str, args: list[str], rest: str) -> Screen:
        """Raises ValueError (-> usage) on malformed arguments; GroupError / ResellerError are answered."""
        try:
            if command == "/reseller":
                return await self._reseller(actor, lang, args)
            if command == "/wallet":
                return await self._wallet(actor, lang, rest)
            if command == "/linkgroup":
                if len(args) != 2 or not args[1].lstrip("-").isdigit():
                    raise ValueError("linkgroup")
                r = await self.desk.resolve(args[0])
                await self.desk.link(args[1], r.id, actor=actor)
                return Screen(self.t(lang, "groups.linked_chat", reseller=r.name, chat=args[1]))
            if len(args) != 1:
                raise ValueError("unlinkgroup")
            await self.desk.unlink(args[0], actor=actor)
            return Screen(self.t(lang, "groups.unlinked_chat", chat=args[0]))
        except (GroupError, ResellerError) as exc:
            return errors.screen(self.i18n, lang, exc)

    async def _reseller(self, actor: str, lang: str, args: list[str]) -> Screen:
        if not args:
            return self._list(lang, await self.desk.all())
        what = args[0].lower()
        if what == "add" and 2 <= len(args) <= 4:
            discount = _int(args[2].rstrip("%"), "reseller") if len(args) > 2 else 0
            credit = _int(args[3], "reseller") if len(args) > 3 else 0
            if not args[1].isdigit():
                raise ValueError("reseller")
            r = await self.desk.add_reseller(args[1], discount_percent=discount, credit_limit=credit, actor=actor)
            return self._account(lang, r, self.t(lang, "groups.reseller.added", user=args[1]))
        if what in ("tier", "credit") and len(args) == 3:
            r = await self.desk.resolve(args[1])
            n = _int(args[2].rstrip("%") if what == "tier" else args[2], "reseller")
            r = await self.desk.resellers.update(r.id, **({"discount_percent": n} if what == "tier" else
                                                          {"credit_limit": n}))
            return self._account(lang, r, self.t(lang, "groups.reseller.updated"))
        if what in ("on", "off") and len(args) == 2:
            r = await self.desk.resolve(args[1])
            r = await self.desk.resellers.update(r.id, status="active" if what == "on" else "suspended")
            return self._account(lang, r, self.t(lang, "groups.reseller.updated"))
        raise ValueError("reseller")

    async def _wallet(self, actor: str, lang: str, rest: str) -> Screen:
        parts = rest.split(maxsplit=2)
        if not parts:
            raise ValueError("wallet")
        r = await self.desk.resolve(parts[0])
        if len(parts) >= 2:
            if not parts[1].startswith("+"):
                raise ValueError("wallet")
            amount = _int(parts[1][1:], "wallet")
            note = parts[2] if len(parts) > 2 else ""
            entry = await self.desk.resellers.top_up(r.id, amount, actor=actor, note=note[:200])
            head = self.t(lang, "groups.wallet.credited", amount=self._money(entry.amount, r.currency, lang))
            return await self.statement(lang, r.id, head)
        return await self.statement(lang, r.id)

    async def own_wallet(self, user: str, lang: str) -> Screen:
        """The reseller's owner asks for their wallet."""
        r = await self.desk.owned_by(user)
        if r is None:
            return Screen(self.t(lang, "groups.error.no_account"), error="no_account")
        return await self.statement(lang, r.id)

    async def statement(self, lang: str, reseller_id: int, head: str = "") -> Screen:
        r, rows = await self.desk.statement(reseller_id)
        lines = [head] if head else []
        lines.append(self.t(lang, "groups.wallet.summary", balance=self._money(r.balance, r.currency, lang),
                            credit=self._money(r.credit_limit, r.currency, lang),
                            spendable=self._money(r.spendable, r.currency, lang)))
        lines.append(self.t(lang, "groups.wallet.rows", n=len(rows)) if rows else self.t(lang, "groups.wallet.empty"))
        lines += [self._row(lang, e, r.currency) for e in rows]
        return Screen(self.t(lang, "groups.wallet.title", reseller=r.name), "\n".join(lines))

    def _row(self, lang: str, e: WalletEntry, currency: str) -> str:
        sign = "+" if e.amount > 0 else "-"
        what = self.t(lang, f"groups.wallet.kind.{e.kind}")
        ref = e.order_id or e.note or ""
        return (f"{e.created_at:%m-%d %H:%M} {what} {sign}{self._money(abs(e.amount), currency, lang)} → "
                f"{self._money(e.balance_after, currency, lang)}" + (f" · {ref[:40]}" if ref else ""))

    def _account(self, lang: str, r: Reseller, head: str) -> Screen:
        return Screen(self.t(lang, "groups.reseller.title", reseller=r.name), "\n".join([head, self._line(lang, r)]))

    def _line(self, lang: str, r: Reseller, owner: str | None = None) -> str:
        return self.t(lang, "groups.reseller.line", id=r.id, name=r.name, discount=r.discount_percent,
                      credit=self._money(r.credit_limit, r.currency, lang),
                      balance=self._money(r.balance, r.currency, lang),
                      status=self.t(lang, f"groups.reseller.{r.status}"))

    def _list(self, lang: str, rows: list[tuple[Reseller, str | None]]) -> Screen:
        if not rows:
            return Screen(self.t(lang, "groups.reseller.list"), self.t(lang, "groups.reseller.none"))
        return Screen(self.t(lang, "groups.reseller.list"), "\n".join(self._line(lang, r) for r, _ in rows))

    def _money(self, amount: int, currency: str, lang: str) -> str:
        return self.i18n.money(amount, currency, lang)


def _int(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ValueError(what)
    return int(text)
