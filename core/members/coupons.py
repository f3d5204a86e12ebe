"""Coupons as member rewards (我的优惠券): a single-use code of a merchant's campaign issued to one buyer, bought in the
points mall, given to a referrer (邀请有礼) or as the new-buyer gift (新人礼包).

Issuing (`issue`, inside the caller's transaction: the mall's points debit, the payment that rewards a referral or
a first purchase) makes ONE new code of the named campaign the way `run.py coupons generate` does (its fingerprint
in coupon_codes, so the coupon promotion knows it), and keeps it for the buyer in member_coupons sealed by the vault
(CouponDesk.seal; never in plain text) with its fingerprint, once per `ref`. The campaign must exist, be active, not
past its window and be a single-use campaign (a shared code is not one buyer's): otherwise
StoreError(COUPON_REWARD_UNAVAILABLE) and nothing is written.

Taking back (`void_unused`): a code not used yet is voided (coupon_codes.void_at: typing it is refused as used up,
not counted as a guess); a code already used (a live use in coupon_uses) stays used. The campaign rows are locked
first, as the coupon promotion does when it prices an order, so a void and an order racing for the same code are
decided once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from core.errors import ErrorCode, StoreError
from core.models import Buyer

if TYPE_CHECKING:
    from core.coupons import Coupon, CouponDesk
    from core.ports import UnitOfWork

MALL, REFERRAL, GIFT = "mall", "referral", "gift"  # where an issued coupon came from
REVEAL = "coupon_reveal"  # audit action: a buyer's own codes shown to them


@dataclass(slots=True)
class IssuedCoupon:
    """A code issued to a buyer (table member_coupons): sealed, never plain."""

    id: int | None
    buyer: Buyer
    coupon_id: int
    digest: str
    sealed: str
    source: str  # MALL | REFERRAL | GIFT
    ref: str  # unique: issued once (mall:<token>, referral:<referee key>, gift:<account key>)
    issued_at: datetime
    order_id: str | None = None  # the order that brought it (a refund takes it back)
    points: int = 0  # what it cost in the mall
    voided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MyCoupon:
    """One of a buyer's coupons as the account screen shows it."""

    id: int
    coupon: Coupon
    code: str | None  # None: it does not open (a vault key gone)
    source: str
    issued_at: datetime
    used: bool
    voided: bool


class MemberCouponRepo(Protocol):
    """storage/member_coupons.py (`uow.member_coupons`)."""

    async def add(self, issued: IssuedCoupon) -> int: ...
    async def refs(self, refs: Sequence[str]) -> set[str]:
        """The refs of these that were issued."""
    async def of_buyers(self, buyers: Sequence[Buyer]) -> list[IssuedCoupon]:
        """Newest first."""
    async def of_orders(self, order_ids: Sequence[str]) -> list[IssuedCoupon]: ...
    async def get(self, coupon_row: int) -> IssuedCoupon | None: ...
    async def set_voided(self, ids: Sequence[int], at: datetime) -> None: ...


async def issue(uow: UnitOfWork, desk: CouponDesk, name: str, buyer: Buyer, source: str, ref: str, now: datetime,
                order_id: str | None = None, points: int = 0) -> IssuedCoupon:
    """One new single-use code of campaign `name` for the buyer (in the caller's transaction). StoreError
    COUPON_REWARD_UNAVAILABLE when the campaign cannot give one now; nothing written then."""
    campaign = await uow.coupons.by_name(name)
    if campaign is None or not campaign.active or not campaign.single_use or (
            campaign.terms.ends_at is not None and now >= campaign.terms.ends_at):
        raise StoreError(ErrorCode.COUPON_REWARD_UNAVAILABLE, name=name)
    while True:
        code = desk.new_code()
        digest = desk.promotion.digest(code)
        if not await uow.coupons.find([digest]):  # practically always: another code drawn again
            break
    await uow.coupons.add_codes(campaign.id, [digest])
    issued = IssuedCoupon(None, buyer, campaign.id, digest, desk.seal(code), source, ref, now, order_id, points)
    issued.id = await uow.member_coupons.add(issued)
    return issued


async def void_unused(uow: UnitOfWork, issued: Sequence[IssuedCoupon], now: datetime) -> tuple[int, int]:
    """Take these issued codes back: the unused ones are voided, the used ones stay used. Returns (voided, used)."""
    live = [i for i in issued if i.voided_at is None and i.id is not None]
    if not live:
        return 0, 0
    await uow.coupons.get(sorted({i.coupon_id for i in live}), for_update=True)  # as the coupon promotion locks
    taken = await uow.coupons.codes_in_use(sorted(i.digest for i in live))
    void = [i for i in live if i.digest not in taken]
    if void:
        await uow.coupons.void_codes(sorted(i.digest for i in void), now)
        await uow.member_coupons.set_voided(sorted(i.id for i in void if i.id is not None), now)
    return len(void), len(live) - len(void)
