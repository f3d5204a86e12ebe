"""Reseller accounts, as a merchant keeps them: onboarding with a tier (price list and/or discount) and a credit
limit, changing them or the status (a suspended reseller buys nothing), and which chat identity acts for a
reseller (its wallet top-ups and commission view). Every change is audited."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.models import AuditEntry, Buyer
from core.ports import UnitOfWorkFactory
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, Reseller

if TYPE_CHECKING:
    from core.clock import Clock
    from core.resellers.keys import ApiKeys


class Accounts:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, keys: ApiKeys, currency: str | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.keys = keys  # its cache forgets a changed reseller's keys
        self.currency = currency  # a new reseller's wallet currency, when the store has one

    async def create(self, name: str, *, discount_percent: int = 0, prices: dict[str, int] | None = None,
                     credit_limit: int = 0, currency: str | None = None) -> Reseller:
        """A merchant onboards a reseller: a tier (price list and/or discount), a credit limit, an empty wallet."""
        name = name.strip()
        if not name or len(name) > 64:
            raise ResellerError(ResellerCode.BAD_NAME)
        check_tier(discount_percent, prices or {}, credit_limit)
        r = Reseller(0, name, "active", discount_percent, dict(prices or {}), credit_limit, 0,
                     currency or self.currency or "CNY", self.clock.now())
        async with self.uow(write=True) as uow:
            if await uow.resellers.by_name(name) is not None:
                raise ResellerError(ResellerCode.NAME_TAKEN, name=name)
            r.id = await uow.resellers.add(r)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, r.created_at,
                                                 detail={"reseller": r.id, "op": "create", "name": name})])
            await uow.commit()
        return r

    async def update(self, reseller_id: int, *, discount_percent: int | None = None,
                     prices: dict[str, int] | None = None, credit_limit: int | None = None,
                     status: str | None = None) -> Reseller:
        """A merchant changes a reseller's tier, credit limit or status (active / suspended)."""
        if status is not None and status not in ("active", "suspended"):
            raise ResellerError(ResellerCode.BAD_STATUS, status=status)
        async with self.uow(write=True) as uow:
            r = (await uow.resellers.lock([reseller_id])).get(reseller_id)
            if r is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            values: dict[str, Any] = {}
            if discount_percent is not None:
                values["discount_percent"] = discount_percent
            if prices is not None:
                values["prices"] = dict(prices)
            if credit_limit is not None:
                values["credit_limit"] = credit_limit
            if status is not None:
                values["status"] = status
            check_tier(values.get("discount_percent", r.discount_percent), values.get("prices", r.prices),
                       values.get("credit_limit", r.credit_limit))
            await uow.resellers.update(reseller_id, values)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, self.clock.now(), detail={
                "reseller": reseller_id, "op": "update", **{k: v for k, v in values.items() if k != "prices"}})])
            await uow.commit()
        self.keys.forget()
        return await self.get(reseller_id)

    async def get(self, reseller_id: int) -> Reseller:
        async with self.uow() as uow:
            r = await uow.resellers.get(reseller_id)
        if r is None:
            raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
        return r

    async def bind_owner(self, reseller_id: int, buyer: Buyer | None, *, unbind: Buyer | None = None) -> None:
        """A merchant lets a chat identity (telegram:<id>, wechat:<openid>) act for a reseller (its wallet top-ups
        and commission view), or takes that away (`unbind`). Audited."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await uow.resellers.get(reseller_id) is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            who = buyer or unbind
            assert who is not None
            await uow.resellers.set_owner(who, reseller_id if buyer is not None else None, now)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, now, detail={
                "reseller": reseller_id, "op": "owner" if buyer is not None else "unowner", "who": who.key})])
            await uow.commit()

    async def reseller_of(self, buyer: Buyer) -> Reseller | None:
        """The reseller this chat identity acts for (active or not), or None."""
        async with self.uow() as uow:
            rid = await uow.resellers.owner_of(buyer)
            return await uow.resellers.get(rid) if rid is not None else None


def check_tier(discount_percent: int, prices: Mapping[str, object], credit_limit: int) -> None:
    """A tier a merchant may set: a discount of 0-100 %, a credit limit of 0 or more, prices of 0 or more."""
    if not 0 <= discount_percent <= 100:
        raise ResellerError(ResellerCode.BAD_DISCOUNT, discount=discount_percent)
    if credit_limit < 0:
        raise ResellerError(ResellerCode.BAD_CREDIT_LIMIT, credit_limit=credit_limit)
    for sku, price in prices.items():
        if not isinstance(price, int) or price < 0:
            raise ResellerError(ResellerCode.BAD_PRICE, sku=sku)
