"""Points (积分): earned per amount paid, given by referrals and the new-buyer gift, spent in the points mall,
expiring after the configured time, taken back on refund.

The ledger (table points_ledger) has one row per movement, each made once (its unique `ref`). A credit keeps what is
still unspent of it (`left`); spending takes from the credits that expire soonest first. The balance is the sum of
what is left of the credits not expired yet: points expire when they are read (nothing needs to run at the
moment they expire), and the profile shows the soonest expiry. A refund takes back what the order earned; if the
buyer has spent those points already, the rest is a debt (a row with a negative `left`) that the next credits pay
off first. Linked accounts are one person (core/links.py): their points are counted and spent together.

Every write locks the person's open rows first (FOR UPDATE on PostgreSQL, in id order; SQLite writes one
transaction at a time), so two spends of the same points at once cannot both pass.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.members.ports import PointsEntry
from core.models import Buyer, Order
from core.ports import UnitOfWork

EARN, SPEND, RETURN, REVERSE, REFERRAL, GIFT = "earn", "spend", "return", "reverse", "referral", "gift"
CREDITS = frozenset({EARN, REFERRAL, GIFT})  # what a refund of the order they came with takes back


def usable(row: PointsEntry, now: datetime) -> bool:
    """A debt always counts; a credit until it expires."""
    return row.left < 0 or row.expires_at is None or row.expires_at > now


def balance(rows: Sequence[PointsEntry], now: datetime) -> int:
    return sum(r.left for r in rows if usable(r, now))


@dataclass(frozen=True, slots=True)
class Expiry:
    at: datetime
    points: int


def soonest_expiry(rows: Sequence[PointsEntry], now: datetime) -> Expiry | None:
    """The next date points expire, and how many then."""
    live = [r for r in rows if r.left > 0 and r.expires_at is not None and r.expires_at > now]
    if not live:
        return None
    first = min(r.expires_at for r in live if r.expires_at is not None)
    return Expiry(first, sum(r.left for r in live if r.expires_at == first))


def person_key(accounts: Sequence[Buyer]) -> str:
    """One name for a person's accounts (the smallest key): what a batch counts its spends under."""
    return min(b.key for b in accounts)


async def credit(uow: UnitOfWork, buyer: Buyer, points: int, kind: str, ref: str, now: datetime,
                 expires_at: datetime | None, order_id: str | None = None) -> PointsEntry | None:
    """Give `points` to the buyer once (by `ref`); a debt of the person is paid off first. None when nothing was
    given (no points, or given before)."""
    if points <= 0 or await uow.members.points_refs([ref]):
        return None
    rows = await uow.members.open_points(await uow.risk.link_set(buyer), lock=True)
    left, changes = points, []
    for r in rows:
        if r.left < 0 and left > 0 and r.id is not None:
            paid = min(left, -r.left)
            left -= paid
            changes.append((r.id, r.left + paid))
    await uow.members.set_left(changes)
    entry = PointsEntry(None, buyer, points, left, kind, ref, now, expires_at, order_id)
    await uow.members.add_points([entry])
    return entry


async def debit(uow: UnitOfWork, buyer: Buyer, points: int, kind: str, ref: str, now: datetime,
                order_id: str | None = None, prefer: int | None = None) -> PointsEntry | None:
    """Take `points` from the buyer once (by `ref`): from the credit `prefer` first (a refund takes back the
    credit's own points), then from those that expire soonest; what cannot be covered becomes a debt. The caller
    checked the balance when it must not go below zero (the points mall)."""
    if points <= 0 or await uow.members.points_refs([ref]):
        return None
    rows = await uow.members.open_points(await uow.risk.link_set(buyer), lock=True)
    credits = sorted((r for r in rows if r.left > 0 and usable(r, now) and r.id is not None),
                     key=lambda r: (r.id != prefer, r.expires_at or datetime.max.replace(tzinfo=now.tzinfo), r.id))
    need, changes, taken = points, [], []
    for r in credits:
        if need <= 0:
            break
        n = min(need, r.left)
        need -= n
        assert r.id is not None
        changes.append((r.id, r.left - n))
        taken.append([r.id, n])
    await uow.members.set_left(changes)
    entry = PointsEntry(None, buyer, -points, -need, kind, ref, now, None, order_id, {"from": taken})
    await uow.members.add_points([entry])
    return entry


async def give_back(uow: UnitOfWork, spent: PointsEntry, ref: str, now: datetime) -> PointsEntry | None:
    """Undo a spend once (by `ref`): each credit it took from gets its points back (one that expired meanwhile
    stays expired), and a debt it made is dropped."""
    if await uow.members.points_refs([ref]):
        return None
    taken = [(int(i), int(n)) for i, n in spent.detail.get("from", [])]
    open_rows = {r.id: r for r in await uow.members.open_points(await uow.risk.link_set(spent.buyer), lock=True)}
    changes = []
    for row_id, n in taken:
        row = open_rows.get(row_id)
        changes.append((row_id, (row.left if row is not None else 0) + n))
    if spent.left < 0 and spent.id is not None:
        changes.append((spent.id, 0))
    await uow.members.set_left(changes)
    entry = PointsEntry(None, spent.buyer, -spent.delta, 0, RETURN, ref, now, None, spent.order_id)
    await uow.members.add_points([entry])
    return entry


async def spendable(uow: UnitOfWork, accounts: Sequence[Buyer], now: datetime) -> int:
    """The person's balance now, their rows locked for this transaction."""
    return balance(await uow.members.open_points(accounts, lock=True), now)


class Earnings:
    """The points a payment batch's orders earn (`earn:<order id>`), credited exactly as `credit` would one by one,
    but with the batch's reads and writes made once: which were given before (one read), the open rows of the
    buyers' people, locked (one read: a credit pays the person's debts off first, in id order), the new rows and the
    debts paid off (one write each, at `flush`). `accounts`: each buyer's linked accounts, by buyer key."""

    def __init__(self, uow: UnitOfWork, accounts: Mapping[str, Sequence[Buyer]], now: datetime) -> None:
        self.uow = uow
        self.now = now
        self.accounts = accounts
        self.person = {a.key: person_key(accts) for accts in accounts.values() for a in accts}
        self.given: set[str] = set()
        self.debts: dict[str, list[list[int]]] = {}  # person -> its debts as [row id, left], in id order
        self.changes: dict[int, int] = {}  # debt row id -> its left after the credits so far (not written yet)
        self.entries: list[PointsEntry] = []  # new credits (not written yet)

    async def load(self, earned: Sequence[tuple[Order, int]]) -> None:
        """Read what the credits need (nothing when no order earns anything)."""
        refs = [f"{EARN}:{o.id}" for o, n in earned if n > 0]
        if not refs:
            return
        self.given = set(await self.uow.members.points_refs(refs))
        people = {self.person[o.buyer.key] for o, n in earned if n > 0}
        await self._read_debts([a for accts in self.accounts.values() if person_key(accts) in people for a in accts])

    async def _read_debts(self, accounts: Sequence[Buyer]) -> None:
        rows = await self.uow.members.open_points(sorted({a.key: a for a in accounts}.values(), key=lambda b: b.key),
                                                  lock=True)
        for who in {self.person[a.key] for a in accounts}:
            self.debts[who] = []
        for r in rows:
            if r.left < 0 and r.id is not None:
                self.debts[self.person[r.buyer.key]].append([r.id, r.left])

    async def credit(self, buyer: Buyer, order: Order, points: int, expires_at: datetime | None) -> None:
        """`credit(uow, buyer, points, EARN, "earn:<order id>", now, expires_at, order.id)`, held until `flush`."""
        ref = f"{EARN}:{order.id}"
        if points <= 0 or ref in self.given:
            return
        self.given.add(ref)
        who = self.person[buyer.key]
        if who not in self.debts:  # read again after a flush (the ledger's own credits may have paid them)
            await self._read_debts(self.accounts[buyer.key])
        left = points
        for debt in self.debts[who]:
            if debt[1] < 0 and left > 0:
                paid = min(left, -debt[1])
                left -= paid
                debt[1] += paid
                self.changes[debt[0]] = debt[1]
        self.entries.append(PointsEntry(None, buyer, points, left, EARN, ref, self.now, expires_at, order.id))

    async def flush(self) -> None:
        """Write what the credits so far changed. A person whose debts are not all paid is read again when it next
        earns: a credit made through `credit` meanwhile may pay them (a credit never makes a debt)."""
        if self.changes:
            await self.uow.members.set_left(sorted(self.changes.items()))
            self.changes = {}
        if self.entries:
            await self.uow.members.add_points(self.entries)
            self.entries = []
        self.debts = {who: d for who, d in self.debts.items() if all(x[1] >= 0 for x in d)}
