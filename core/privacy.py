"""A person's data: what the store keeps about a buyer (`/mydata`) and erasing it (`run.py forget`).

Forgetting erases a person across their linked accounts (`uow.risk.link_set`) in one transaction. What is purely
personal and not needed for the books is deleted (the customer rows with language, phone, conversation state and
level; stock alerts, news opt-outs, link and referral codes, unused reward coupons, open challenges, pending notices
to them). What the books and the law need (orders, payments, points, spend, coupon and promotion uses, tickets,
risk decisions, the audit log) stays, with every trace of the accounts' ids replaced by one stable anonymous id:
`forgotten:<HMAC of the person's first account key with the vault's fingerprint key>`, so that a day's report adds
up as before and the person's orders still group together, while nobody can reveal their codes any more (the
buyer id is gone). docs/personal-data.md lists each table and what happens to it.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from core.alerts import AdminAlerts
from core.clock import Clock
from core.errors import Refused
from core.models import AuditEntry, Buyer, OrderStatus

if TYPE_CHECKING:
    from core.ports import UnitOfWorkFactory

ANONYMOUS_PREFIX = "forgotten:"
REQUEST = "forget_request"  # the audit action of a buyer's request
IN_FLIGHT = (OrderStatus.HELD, OrderStatus.PENDING, OrderStatus.REFUNDING)


class PrivacyCode(StrEnum):
    """Why a forget was refused (message `privacy.error.<value>`)."""

    BAD_USER = "bad_user"  # params: user (not CHANNEL:ID)
    UNKNOWN = "unknown"  # params: user (nothing is kept about it: never seen, or forgotten already)
    IN_FLIGHT = "in_flight"  # params: user, n (orders held, waiting for a supplier or being refunded)


class PrivacyError(Refused):
    codes = PrivacyCode
    code: PrivacyCode


@dataclass(frozen=True, slots=True)
class Kept:
    """What the store keeps about a person (all their linked accounts): `/mydata`."""

    accounts: int
    orders: int
    payments: int
    points: int  # the balance
    tickets: int
    language: str | None
    phone: bool
    alerts: int
    news_optout: bool


@dataclass(frozen=True, slots=True)
class Forgotten:
    anonymous: str  # the id that now stands in the books for the person's accounts
    accounts: tuple[str, ...]  # how many accounts (their keys are not kept anywhere, nor returned to a log)
    changed: dict[str, int] = field(default_factory=dict)  # rows per table (deleted or anonymised)


class PrivacyRepo(Protocol):
    async def in_flight(self, buyers: Sequence[Buyer], statuses: Sequence[str]) -> int: ...

    async def kept(self, buyers: Sequence[Buyer]) -> dict[str, int]: ...

    async def erase(self, buyers: Sequence[Buyer], anonymous: str, now: datetime) -> dict[str, int]: ...


def parse_user(text: str) -> Buyer:
    """`telegram:12345` or `wechat:<openid>`."""
    channel, sep, external_id = text.strip().partition(":")
    if not sep or not channel or not external_id or channel.startswith(ANONYMOUS_PREFIX.rstrip(":")):
        raise PrivacyError(PrivacyCode.BAD_USER, user=text)
    return Buyer(channel, external_id)


class PrivacyDesk:
    """A buyer's data: what is kept, and forgetting it."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, secret: Callable[[], bytes]) -> None:
        self.uow = uow
        self.clock = clock
        self.secret = secret  # the vault's fingerprint key
        self.forgotten: Callable[[Buyer], None] = lambda _buyer: None  # an account erased (Shop: caches drop it)

    def anonymous(self, accounts: Sequence[Buyer]) -> str:
        first = min(b.key for b in accounts)
        digest = hmac.new(self.secret(), b"forget:" + first.encode(), hashlib.sha256).hexdigest()
        return ANONYMOUS_PREFIX + digest[:20]

    async def kept(self, buyer: Buyer) -> Kept:
        async with self.uow() as uow:
            accounts = await uow.risk.link_set(buyer)
            n = await uow.privacy.kept(accounts)
            me = await uow.customers.get(buyer)
        return Kept(len(accounts), n["orders"], n["payments"], n["points"], n["tickets"],
                    me.language if me else None, bool(me and me.phone), n["alerts"], bool(n["news_optouts"]))

    async def request(self, buyer: Buyer, alerts: AdminAlerts | None) -> bool:
        """The buyer asked (`/mydata`, "Delete my data") for their data to be erased: the merchants are told which
        command to run (docs/personal-data.md says why it is not done at once). False: already asked within a day
        (nothing sent again)."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await uow.audit.count(REQUEST, actor=buyer.key, since=now - timedelta(days=1)):
                return False
            await uow.audit.add_many([AuditEntry(REQUEST, buyer.key, buyer.channel, now)])
            await uow.commit()
        if alerts is not None:
            await alerts.alert("privacy.alert.request", {"buyer": buyer.key})  # the text names the command
        return True

    async def forget(self, buyer: Buyer) -> Forgotten:
        """Erase the person behind `buyer` (and every account linked with it). Refused with nothing changed while
        an order of theirs is in flight, and for an account the store knows nothing about."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            accounts = await uow.risk.link_set(buyer)
            busy = await uow.privacy.in_flight(accounts, [s.value for s in IN_FLIGHT])
            if busy:
                raise PrivacyError(PrivacyCode.IN_FLIGHT, user=buyer.key, n=busy)
            anonymous = self.anonymous(accounts)
            changed = await uow.privacy.erase(accounts, anonymous, now)
            if not any(changed.values()):
                raise PrivacyError(PrivacyCode.UNKNOWN, user=buyer.key)  # nothing written: the unit is not committed
            await uow.audit.add_many([AuditEntry("forget", anonymous, buyer.channel, now,
                                                 detail={"accounts": len(accounts), "rows": sum(changed.values())})])
            await uow.commit()
        for account in accounts:  # no process keeps serving the erased row from its cache (core/coordination.py)
            self.forgotten(account)
        return Forgotten(anonymous, tuple(b.channel for b in accounts), {k: v for k, v in changed.items() if v})
