"""What core/members/ needs from storage (storage/members.py implements it as `uow.members`)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.models import Buyer


@dataclass(slots=True)
class PointsEntry:
    """One movement of a buyer's points (table points_ledger). `delta` is what the movement was (history); `left`
    is what of a credit is still unspent (the balance is the sum of `left` of rows not expired; a row with a
    negative `left` is a debt, taken back when points were already spent, paid off by the next credits)."""

    id: int | None
    buyer: Buyer
    delta: int
    left: int
    kind: str  # earn | spend | return | reverse | referral | gift
    ref: str  # unique: a movement happens once (earn:<order>, spend:<order>, referral:<referee>, gift:<account>)
    created_at: datetime
    expires_at: datetime | None = None
    order_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # a spend: the credits it took from [[id, n], ...]


@dataclass(frozen=True, slots=True)
class Spend:
    """A paid order counted for the member level (table member_spend)."""

    order_id: str
    buyer: Buyer
    amount: int  # store currency, minor units, as paid


class MemberRepo(Protocol):
    async def open_points(self, buyers: Sequence[Buyer], *, lock: bool = False) -> list[PointsEntry]:
        """The rows of these accounts with something left (or owed), oldest first; lock: FOR UPDATE (PostgreSQL)."""
    async def add_points(self, entries: Sequence[PointsEntry]) -> None: ...
    async def set_left(self, changes: Sequence[tuple[int, int]]) -> None:
        """(row id, new left) for each row."""
    async def points_refs(self, refs: Sequence[str]) -> dict[str, PointsEntry]:
        """The rows of these refs that exist."""
    async def points_of_orders(self, order_ids: Sequence[str]) -> list[PointsEntry]:
        """Every row written for these orders (earned, spent, rewards)."""
    async def points_history(self, buyers: Sequence[Buyer], limit: int) -> list[PointsEntry]:
        """The latest movements, newest first."""
    async def add_spend(self, rows: Sequence[Spend], at: datetime) -> None:
        """Count paid orders (each once: an order already counted is skipped)."""
    async def refund_spend(self, order_ids: Sequence[str], at: datetime) -> list[Spend]:
        """Stop counting these orders; returns those that were counted until now."""
    async def spend_of(self, buyers: Sequence[Buyer]) -> int:
        """What these accounts paid, refunds left out."""
    async def paid_orders(self, buyers: Sequence[Buyer]) -> int:
        """How many paid orders these accounts ever had counted (refunded ones too)."""
    async def levels(self, buyers: Sequence[Buyer]) -> dict[str, int]:
        """buyer key -> its stored level (customers.level); accounts without a row are missing."""
    async def set_levels(self, buyers: Sequence[Buyer], level: int, at: datetime) -> None: ...
    async def add_referral_code(self, digest: bytes, buyer: Buyer, at: datetime) -> None:
        """Remember whose referral code has this fingerprint (once)."""
    async def referral_owner(self, digest: bytes) -> Buyer | None: ...
