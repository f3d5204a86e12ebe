"""Reseller group chats: a merchant links a group chat to a reseller account, the reseller (the
account's owner) allows members, and allowed members order with one line (`/buy SKU QTY`). The bot answers in
the group with a quote (tier price, total, wallet after) that only the ordering member may confirm; the order
is paid from the reseller's wallet and its codes go to the member in private through the outbox, never into
the group. Confirming twice (two taps racing) makes one order and one debit: the quote's token is the order's
idempotency key (core/resellers/orders.py `order_for_member`).

A quote lives in the database (`group_orders`), so a restart or a second process can confirm it:

    pending --confirm--> paid --sent--> delivered
       |                  | the member never started the bot
       v                  v
    cancelled / expired  unreachable --member starts the bot--> paid (the delivery queued again)

Channel-neutral: the adapter names the channel (`telegram`), chats and users are strings.
"""
from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from core.clock import Clock
from core.coordination import LocalShared, Shared
from core.errors import ErrorCode, Refused, StoreError
from core.models import AuditEntry, Buyer, Kind, Order, OutboxItem, Product
from core.ports import Catalog, UnitOfWork, UnitOfWorkFactory
from core.resellers import MAX_QTY, Reseller, ResellerDesk, ResellerError, WalletEntry
from core.risk import rules_of

STATEMENT_ROWS = 10  # ledger movements on /wallet


class GroupCode(StrEnum):
    """Why a group-chat order was refused (the message is `groups.error.<value>`, or the rule's own for
    `rule_refused`). The wallet refusals an order for a member can meet pass through with the reseller desk's code
    (insufficient_funds, unknown_reseller, idempotency_key_reused, bad_request); account_suspended reads `suspended`."""

    BAD_QTY = "bad_qty"
    BAD_REQUEST = "bad_request"
    DONE = "done"
    EXPIRED = "expired"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NOT_ALLOWED = "not_allowed"
    NOT_LINKED = "not_linked"
    NOT_OWNER = "not_owner"
    NOT_YOURS = "not_yours"
    OWNER_TAKEN = "owner_taken"
    RISK_REFUSED = "risk_refused"
    RULE_REFUSED = "rule_refused"
    SOLD_OUT = "sold_out"
    SUSPENDED = "suspended"
    UNKNOWN_MEMBER = "unknown_member"
    UNKNOWN_QUOTE = "unknown_quote"
    UNKNOWN_RESELLER = "unknown_reseller"
    UNKNOWN_SKU = "unknown_sku"


class GroupError(Refused):
    """A group use case refused; `code` names the message (handlers/errors.py: groups.error.<code>, or a product
    rule's own message for `rule_refused`)."""

    codes = GroupCode
    code: GroupCode


RULE_REFUSED, RISK_REFUSED = ErrorCode.RULE_REFUSED.value, ErrorCode.RISK_REFUSED.value


def _refused(exc: StoreError) -> GroupError | None:
    """A refusal of the rules-and-risk check every order passes, as the group is told it (None: another error)."""
    if exc.code is ErrorCode.RULE_REFUSED:
        return GroupError(RULE_REFUSED, **exc.params)
    if exc.code is ErrorCode.RISK_REFUSED:
        return GroupError(RISK_REFUSED)  # the reasons are for merchants only
    return None


@dataclass(slots=True)
class GroupLink:
    chat: str
    reseller_id: int
    linked_by: str
    linked_at: datetime


@dataclass(slots=True)
class GroupOrder:
    """A quote shown in a group, then the order it became."""

    id: str  # the token on the Confirm / Cancel buttons
    chat: str
    user: str  # the member who asked (only they may confirm)
    reseller_id: int
    product_id: int
    qty: int
    unit: int
    amount: int
    currency: str
    status: str  # pending | cancelled | paid | delivered | unreachable
    language: str
    created_at: datetime
    expires_at: datetime
    order_id: str | None = None
    message_id: int | None = None


@dataclass(slots=True)
class Quote:
    group_order: GroupOrder
    product: Product
    reseller: Reseller
    balance_after: int


@dataclass(slots=True)
class Confirmed:
    group_order: GroupOrder
    order: Order
    product: Product
    created: bool  # False: another tap confirmed it already (no second order, no second debit)
    balance: int | None
    due: datetime | None = None  # rule deliver_on_effective: the codes reach the member then, not now


class GroupRepo(Protocol):
    """Group tables (storage/groups.py): `uow.groups`, bound to the unit of work's connection."""

    async def set_owner(self, reseller_id: int, owner: str) -> None: ...
    async def owner_of(self, reseller_id: int) -> str | None: ...
    async def by_owner(self, owner: str) -> int | None: ...
    async def resellers(self) -> list[tuple[Reseller, str | None]]: ...
    async def link(self, link: GroupLink) -> None:
        """Links the chat (replacing an earlier link of the same chat)."""
    async def unlink(self, chat: str) -> bool: ...
    async def link_of(self, chat: str) -> GroupLink | None: ...
    async def seen(self, chat: str, user: str, username: str | None, at: datetime) -> None: ...
    async def member(self, chat: str, user: str) -> tuple[str | None, bool] | None: ...
    async def by_username(self, chat: str, username: str) -> str | None: ...
    async def set_allowed(self, chat: str, user: str, allowed: bool, at: datetime) -> None: ...
    async def add_order(self, g: GroupOrder) -> None: ...
    async def order(self, token: str) -> GroupOrder | None: ...
    async def by_order(self, order_id: str) -> GroupOrder | None: ...
    async def set_status(self, token: str, old: Sequence[str], new: str, order_id: str | None = None) -> bool:
        """Compare-and-set of a quote's status; False when it was in none of `old`."""
    async def set_message(self, token: str, message_id: int) -> None: ...
    async def unreachable_of(self, user: str) -> list[str]:
        """Order ids of the user's quotes whose codes wait for them to start the bot."""


class Throttle:
    """At most `limit` events per key in any `window` (a sliding window on the store's clock), in this process's
    memory (the groups' "slow down" notices, handlers/groups.py)."""

    MAX_KEYS = 10_000

    def __init__(self, clock: Clock, limit: int, window: timedelta = timedelta(minutes=1)) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[datetime]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock.now()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > self.MAX_KEYS:
            for k in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.window]:
                del self._hits[k]
        return True


class GroupDesk:
    """Reseller group-chat use cases on one channel (`telegram`). Deliveries go out on `<channel>_group`,
    whose notifier sends the codes to the member in private and updates the group message."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, *, resellers: ResellerDesk, listing: Catalog,
                 wake: Callable[[], None], channel: str, confirm_minutes: int = 10, buys_per_member: int = 3,
                 buys_per_group: int = 8) -> None:
        self.uow = uow
        self.clock = clock
        self.resellers = resellers  # a group orders for a reseller: its tier, wallet and B2B order batch
        self.listing = listing  # the shop's catalogue (core.ports.Catalog)
        self.wake = wake  # the outbox dispatcher: a delivery to send
        self.channel = channel
        self.deliver_channel = f"{channel}_group"
        self.confirm_ttl = timedelta(minutes=confirm_minutes)
        self.buys_per_member = buys_per_member
        self.buys_per_group = buys_per_group
        # Where /buy is counted (core/coordination.py buckets): this process's memory, on the store's clock; with
        # Redis every process's (app/bootstrap.py), as a group's updates may reach any of them.
        self.shared: Shared = LocalShared(lambda: self.clock.now().timestamp())

    def buyer(self, user: str) -> Buyer:
        return Buyer(self.channel, user)

    # -- merchant: accounts and wallets -------------------------------------------------------------------------
    async def add_reseller(self, owner: str, *, discount_percent: int = 0, credit_limit: int = 0,
                           actor: str) -> Reseller:
        """A merchant makes `owner` (a user of this channel) a reseller with a discount tier and a credit limit."""
        key = self.buyer(owner).key
        async with self.uow() as uow:
            if await uow.groups.by_owner(key) is not None:
                raise GroupError(GroupCode.OWNER_TAKEN, user=owner)
        r = await self.resellers.create(key, discount_percent=discount_percent, credit_limit=credit_limit)
        async with self.uow(write=True) as uow:
            await uow.groups.set_owner(r.id, key)
            await self._audit(uow, actor, op="owner", reseller=r.id, owner=key)
            await uow.commit()
        return r

    async def resolve(self, ref: str) -> Reseller:
        """A reseller named by its owner's user id on this channel, its name, or #id."""
        ref = ref.strip()
        async with self.uow() as uow:
            rid = await uow.groups.by_owner(self.buyer(ref).key)
            if rid is None and ref.startswith("#") and ref[1:].isdigit() and len(ref) < 12:
                rid = int(ref[1:])
            r = await uow.resellers.get(rid) if rid is not None else \
                await uow.resellers.by_name(ref)
        if r is None:
            raise GroupError(GroupCode.UNKNOWN_RESELLER, reseller=ref[:32])
        return r

    async def owned_by(self, user: str) -> Reseller | None:
        async with self.uow() as uow:
            rid = await uow.groups.by_owner(self.buyer(user).key)
            return await uow.resellers.get(rid) if rid is not None else None

    async def all(self) -> list[tuple[Reseller, str | None]]:
        async with self.uow() as uow:
            return await uow.groups.resellers()

    async def statement(self, reseller_id: int, rows: int = STATEMENT_ROWS) -> tuple[Reseller, list[WalletEntry]]:
        """The wallet: balance, credit limit and the newest movements."""
        return await self.resellers.get(reseller_id), await self.resellers.statement(reseller_id, limit=rows)

    # -- merchant: linking groups ---------------------------------------------------------------------------------
    async def link(self, chat: str, reseller_id: int, *, actor: str) -> GroupLink:
        """Members of this group chat may order for the reseller (once its owner allows them)."""
        link = GroupLink(chat, reseller_id, actor, self.clock.now())
        async with self.uow(write=True) as uow:
            if await uow.resellers.get(reseller_id) is None:
                raise GroupError(GroupCode.UNKNOWN_RESELLER, reseller=str(reseller_id))
            await uow.groups.link(link)
            await self._audit(uow, actor, op="link_group", reseller=reseller_id, chat=chat)
            await uow.commit()
        return link

    async def unlink(self, chat: str, *, actor: str) -> None:
        async with self.uow(write=True) as uow:
            if not await uow.groups.unlink(chat):
                raise GroupError(GroupCode.NOT_LINKED)
            await self._audit(uow, actor, op="unlink_group", chat=chat)
            await uow.commit()

    async def link_of(self, chat: str) -> GroupLink | None:
        async with self.uow() as uow:
            return await uow.groups.link_of(chat)

    # -- the reseller: members ------------------------------------------------------------------------------------
    async def seen(self, chat: str, user: str, username: str | None) -> None:
        """Remembers who typed a command in a linked group (so the owner can /allow @username)."""
        async with self.uow(write=True) as uow:
            await uow.groups.seen(chat, user, (username or "").lower() or None, self.clock.now())
            await uow.commit()

    async def allow(self, chat: str, actor: str, target: str, allowed: bool, *, merchant: bool = False) -> str:
        """The reseller's owner (or a merchant) allows / disallows a member to order in this group. `target` is a
        user id or @username (of someone the bot saw in the group). Returns the member's user id."""
        async with self.uow(write=True) as uow:
            link = await uow.groups.link_of(chat)
            if link is None:
                raise GroupError(GroupCode.NOT_LINKED)
            if not merchant and await uow.groups.owner_of(link.reseller_id) != self.buyer(actor).key:
                raise GroupError(GroupCode.NOT_OWNER)
            if target.startswith("@"):
                user = await uow.groups.by_username(chat, target[1:].lower())
                if user is None:
                    raise GroupError(GroupCode.UNKNOWN_MEMBER, member=target[:33])
            elif target.lstrip("-").isdigit() and len(target) < 20:
                user = target
            else:
                raise GroupError(GroupCode.UNKNOWN_MEMBER, member=target[:33])
            await uow.groups.set_allowed(chat, user, allowed, self.clock.now())
            await self._audit(uow, self.buyer(actor).key, op="allow" if allowed else "disallow", chat=chat,
                              member=user, reseller=link.reseller_id)
            await uow.commit()
        return user

    # -- members: ordering ------------------------------------------------------------------------------------------
    async def throttled(self, chat: str, user: str) -> bool:
        """True when this /buy is over the member's or the group's rate (a flood is slowed, not served)."""
        for key, limit in ((f"member:{chat}:{user}", self.buys_per_member), (f"group:{chat}", self.buys_per_group)):
            if await self.shared.reserve(f"buys:{self.channel}:{key}", limit / 60.0, limit, 0.0) is None:
                return True
        return False

    async def quote(self, chat: str, user: str, sku: str, qty: int, language: str) -> Quote:
        """What `qty` of `sku` costs this group's reseller; kept as a pending quote only `user` may confirm."""
        now = self.clock.now()
        async with self.uow() as uow:
            link = await uow.groups.link_of(chat)
            if link is None:
                raise GroupError(GroupCode.NOT_LINKED)
            reseller = await uow.resellers.get(link.reseller_id)
            assert reseller is not None
            owner = await uow.groups.owner_of(reseller.id)
            member = await uow.groups.member(chat, user)
        if owner != self.buyer(user).key and not (member and member[1]):
            raise GroupError(GroupCode.NOT_ALLOWED)
        if reseller.status != "active":
            raise GroupError(GroupCode.SUSPENDED)
        product = await self.listing.product_by_sku(sku)
        if product is None or not product.active or product.kind not in (Kind.CODE, Kind.REUSABLE):
            raise GroupError(GroupCode.UNKNOWN_SKU, sku=sku[:32])
        top = MAX_QTY if product.kind is Kind.CODE else 1
        if not 1 <= qty <= top:
            raise GroupError(GroupCode.BAD_QTY, max=top)
        try:  # the product's rules and risk for this member, before stock and wallet (as the order's batch)
            await self.resellers.check_member_order(reseller, product, qty, buyer=self.buyer(user), group=chat)
        except StoreError as exc:
            raise (_refused(exc) or GroupError(GroupCode.UNKNOWN_SKU, sku=product.sku)) from None
        if product.kind is Kind.CODE:
            async with self.uow() as uow:
                available = (await uow.codes.available_counts([product.id], qty, now)).get(product.id, 0)
            if available < qty:
                raise GroupError(GroupCode.SOLD_OUT, available=available)
        unit = reseller.price_for(product)
        amount = unit * qty
        if amount > reseller.spendable:
            raise GroupError(GroupCode.INSUFFICIENT_FUNDS, amount=amount, available=reseller.spendable,
                             currency=reseller.currency)
        g = GroupOrder(secrets.token_urlsafe(9), chat, user, reseller.id, product.id, qty, unit, amount,
                       product.currency, "pending", language, now, now + self.confirm_ttl)
        async with self.uow(write=True) as uow:
            await uow.groups.add_order(g)
            await uow.commit()
        return Quote(g, product, reseller, reseller.balance - amount)

    async def shown(self, token: str, message_id: int) -> None:
        """The quote's group message (edited later: paid, delivered, or the member must start the bot)."""
        async with self.uow(write=True) as uow:
            await uow.groups.set_message(token, message_id)
            await uow.commit()

    async def pending(self, token: str, user: str) -> GroupOrder:
        """A quote the member may still answer; anyone else, a stale or an unknown token is refused."""
        async with self.uow() as uow:
            g = await uow.groups.order(token)
        if g is None:
            raise GroupError(GroupCode.UNKNOWN_QUOTE)
        if g.user != user:
            raise GroupError(GroupCode.NOT_YOURS)
        if g.status != "pending":
            raise GroupError(GroupCode.DONE, status=g.status)
        if g.expires_at <= self.clock.now():
            raise GroupError(GroupCode.EXPIRED)
        return g

    async def confirm(self, token: str, chat: str, user: str) -> Confirmed:
        """The member confirms: one order paid from the wallet (however many taps), codes to the member."""
        async with self.uow() as uow:
            g = await uow.groups.order(token)
        if g is None or g.chat != chat:
            raise GroupError(GroupCode.UNKNOWN_QUOTE)
        if g.user != user:
            raise GroupError(GroupCode.NOT_YOURS)
        if g.status == "cancelled":
            raise GroupError(GroupCode.DONE, status=g.status)
        if g.status == "pending" and g.expires_at <= self.clock.now():
            raise GroupError(GroupCode.EXPIRED)
        product = await self.listing.product(g.product_id)
        if product is None:
            raise GroupError(GroupCode.UNKNOWN_QUOTE)
        try:
            order, created, balance = await self.resellers.order_for_member(
                g.reseller_id, product, g.qty, f"group:{g.id}", buyer=self.buyer(user), chat_id=user,
                language=g.language, deliver=self.deliver_channel, group=g.chat)
        except ResellerError as exc:
            if exc.code == "insufficient_funds":
                raise GroupError(exc.code, amount=exc.params.get("needed", g.amount),
                                 available=exc.params.get("available", 0), currency=g.currency) from None
            raise GroupError(GroupCode.SUSPENDED if exc.code == "account_suspended" else exc.code) from None
        except StoreError as exc:
            if exc.code is ErrorCode.SOLD_OUT:
                raise GroupError(GroupCode.SOLD_OUT, available=exc.params.get("available", 0)) from None
            raise (_refused(exc) or GroupError(GroupCode.UNKNOWN_SKU, sku=product.sku)) from None
        if created:
            async with self.uow(write=True) as uow:
                await uow.groups.set_status(g.id, ["pending"], "paid", order.id)
                await uow.commit()
            g.status, g.order_id = "paid", order.id
        due = rules_of(product.rules).delivery_due(order.paid_at) if order.paid_at else None
        return Confirmed(g, order, product, created, balance, due if due and due > self.clock.now() else None)

    async def cancel(self, token: str, chat: str, user: str) -> GroupOrder:
        g = await self.pending(token, user)
        if g.chat != chat:
            raise GroupError(GroupCode.UNKNOWN_QUOTE)
        async with self.uow(write=True) as uow:
            if not await uow.groups.set_status(g.id, ["pending"], "cancelled"):
                raise GroupError(GroupCode.DONE, status="paid")
            await uow.commit()
        g.status = "cancelled"
        return g

    # -- delivery (called by the `<channel>_group` notifier) ---------------------------------------------------
    async def of_order(self, order_id: str) -> GroupOrder | None:
        async with self.uow() as uow:
            return await uow.groups.by_order(order_id)

    async def delivered(self, order_id: str) -> GroupOrder | None:
        """The codes reached the member: the quote is done (the group message says delivered)."""
        return await self._move(order_id, ["paid", "unreachable"], "delivered")

    async def unreachable(self, order_id: str) -> GroupOrder | None:
        """The member never started the bot: the codes wait (they are in My orders anyway)."""
        return await self._move(order_id, ["paid"], "unreachable")

    async def redeliver(self, user: str, order_id: str | None = None) -> list[str]:
        """The member started the bot: the deliveries of their unreachable orders (or of `order_id`, from the
        group's deep link) are queued again. Returns the order ids queued."""
        queued: list[str] = []
        if order_id is not None:
            ids = [order_id]
        else:
            async with self.uow() as uow:  # a read first: most /start find nothing waiting
                ids = await uow.groups.unreachable_of(user)
        if not ids:
            return queued
        async with self.uow(write=True) as uow:
            for oid in ids:
                g = await uow.groups.by_order(oid)
                if g is None or g.user != user or g.status != "unreachable":
                    continue
                if await uow.groups.set_status(g.id, ["unreachable"], "paid", oid):
                    await uow.outbox.add_many([OutboxItem(None, "deliver", self.deliver_channel, user, oid,
                                                          {"language": g.language, "again": True})])
                    queued.append(oid)
            await uow.commit()
        if queued:
            self.wake()
        return queued

    async def _move(self, order_id: str, old: list[str], new: str) -> GroupOrder | None:
        async with self.uow(write=True) as uow:
            g = await uow.groups.by_order(order_id)
            if g is None or not await uow.groups.set_status(g.id, old, new, order_id):
                return None
            await uow.commit()
        g.status = new
        return g

    async def _audit(self, uow: UnitOfWork, actor: str, **detail: Any) -> None:
        await uow.audit.add_many([AuditEntry("reseller", actor, self.channel, self.clock.now(), detail=detail)])
