"""Linked accounts: one person's accounts on several channels (a Telegram user, a WeChat openid) made one.

A buyer asks for a one-time code in one chat (`/link`) and sends it from the other (`/link CODE`); either way
round works. The two accounts then belong to one person:

- **Limits and bans follow the person** (core/risk/): per-day and per-buyer quotas, open holds, velocity and
  every ban (user, payer, phone) of any of its accounts count for all of them.
- **The phone binding is shared**: a WeChat buyer linked to a Telegram account with a bound phone buys
  phone-only products (WeChat cannot prove a phone's owner; Telegram can).
- **"My orders" lists the orders of every linked account**; a code is shown again only in the account that
  bought it (a linked account sees the order, not its codes): a code never goes to a chat it was not sold to.

A person is also every account that bound the same phone (that link needs no code). `people()` puts the two
together: accounts are joined through the person ids of their links and through their phones.

Unlinking (`/unlink`, from either side) ends the shared history and phone for that account at once, but its row
keeps its person id: the shop's limits and bans keep counting it with the person, so unlinking cannot reset a
quota or shake off a ban. An account it links with later joins that person (and shares history with it only);
two accounts of different people are never linked (LINK_CONFLICT).

The code: 8 characters from an alphabet without look-alikes (30 symbols: about 6.6e11 codes), valid
CODE_MINUTES, used once, stored only as a keyed HMAC (the vault's fingerprint key, never rotated). A new code
voids the account's earlier unused one; at most ISSUES_PER_HOUR codes and FAILURES_PER_HOUR wrong codes per
account an hour (audited as `link_code` / `link_failed`), so guessing one of the few live codes is hopeless.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, OutboxItem

if TYPE_CHECKING:
    from core.ports import UnitOfWork, UnitOfWorkFactory
    from core.risk import BuyerFacts

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read on one screen, typed into another
CODE_LENGTH = 8
CODE_MINUTES = 10
ISSUES_PER_HOUR = 5
FAILURES_PER_HOUR = 5
MAX_ROUNDS = 4  # people(): reads that follow links and phones outwards; a longer chain stops there


@dataclass(frozen=True, slots=True)
class Identity:
    """One account as far as linking goes: its bound phone, its person id and its live link."""

    buyer: Buyer
    phone: str = ""
    person: str = ""
    link_set: str = ""


@dataclass(slots=True)
class Person:
    """The person an account belongs to, as the rules and the risk check count it."""

    who: str  # person:<id> for linked accounts, phone:<phone> for a bound phone, else the account's own key
    accounts: list[Buyer]  # every account counted with it, itself included
    phone: str = ""  # the phone its rules read: its own, else one bound in its live link
    phones: tuple[str, ...] = ()  # every phone bound in the person (phone bans)
    bound: int = 0  # its accounts that bound a phone themselves (many on one phone is a risk signal)
    tokens: tuple[str, ...] = field(default=())  # person:/phone: keys of the person (locks for exact quotas)


class LinkRepo(Protocol):
    """The link part of RiskRepo (storage/risk.py)."""

    async def identities(self, phones: Sequence[str], persons: Sequence[str]) -> list[Identity]:
        """Every account bound to one of the phones or belonging to one of the persons."""
    async def links_of(self, buyers: Sequence[Buyer]) -> dict[str, Identity]: ...
    async def set_links(self, buyers: Sequence[Buyer], person: str, link_set: str, now: datetime) -> None: ...
    async def move_link_set(self, old: str, new: str) -> None: ...
    async def leave_link(self, buyer: Buyer) -> bool: ...
    async def link_set(self, buyer: Buyer) -> list[Buyer]: ...
    async def add_link_code(self, digest: str, buyer: Buyer, now: datetime, expires_at: datetime) -> None: ...
    async def link_code(self, digest: str) -> tuple[Buyer, datetime, datetime | None] | None: ...
    async def use_link_code(self, digest: str, by: Buyer, now: datetime) -> bool: ...


def single(b: Buyer) -> Person:
    return Person(b.key, [b])


async def people(repo: LinkRepo, known: Mapping[str, Identity]) -> dict[str, Person]:
    """The person of each account in `known` (keyed by account key, with its phone and link as just read).

    Accounts are joined when they share a person id (linked, live or not) or a bound phone. Reads only when some
    account has a phone or a person id: one read per round outwards, at most MAX_ROUNDS."""
    if not any(i.phone or i.person for i in known.values()):
        return {k: single(i.buyer) for k, i in known.items()}
    ids: dict[str, Identity] = dict(known)
    seen_phones: set[str] = set()
    seen_persons: set[str] = set()
    for _ in range(MAX_ROUNDS):
        phones = {i.phone for i in ids.values() if i.phone} - seen_phones
        persons = {i.person for i in ids.values() if i.person} - seen_persons
        if not phones and not persons:
            break
        seen_phones |= phones
        seen_persons |= persons
        for ident in await repo.identities(sorted(phones), sorted(persons)):
            ids.setdefault(ident.buyer.key, ident)
    return group(ids, known)


def group(ids: Mapping[str, Identity], wanted: Iterable[str]) -> dict[str, Person]:
    """Union the accounts through their phone and person tokens; the Person of each wanted key (no I/O)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for key, i in ids.items():
        find(key)
        if i.phone:
            union(key, "phone:" + i.phone)
        if i.person:
            union(key, "person:" + i.person)
    members: dict[str, list[str]] = {}
    for token in list(parent):
        members.setdefault(find(token), []).append(token)
    out: dict[str, Person] = {}
    for key in wanted:
        me = ids[key]
        everyone = members.get(find(key), [key])
        tokens = tuple(sorted(t for t in everyone if t.startswith(("phone:", "person:")) and t not in ids))
        accounts = sorted((ids[t].buyer for t in everyone if t in ids), key=lambda b: b.key)
        phones = tuple(sorted({ids[t].phone for t in everyone if t in ids and ids[t].phone}))
        phone = me.phone
        if not phone and me.link_set:
            shared = sorted(ids[t].phone for t in everyone
                            if t in ids and ids[t].link_set == me.link_set and ids[t].phone)
            phone = shared[0] if shared else ""
        # person: sorts before phone:, so a linked person keeps one key whichever of its phones is bound
        who = tokens[0] if tokens else key
        bound = sum(1 for t in everyone if t in ids and ids[t].phone)
        out[key] = Person(who, accounts, phone, phones, bound=bound, tokens=tokens)
    return out


def normalize_code(typed: str) -> str | None:
    """The code as issued, from what the buyer typed (case, spaces and dashes ignored), or None."""
    code = "".join(ch for ch in typed.upper() if ch not in " -\t")
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def shown(code: str) -> str:
    """ABCD-EFGH: easier to read out and type."""
    return code[:4] + "-" + code[4:]


@dataclass(slots=True)
class Issued:
    code: str = field(repr=False)  # the plain code exists only here, on its way to the buyer
    expires_at: datetime
    minutes: int = CODE_MINUTES


@dataclass(slots=True)
class Linked:
    other: Buyer  # the account the code came from
    accounts: list[Buyer]  # the live link now, both included
    already: bool = False  # the two were linked before: nothing changed


class LinkDesk:
    """The buyer's side of linking: issue a code, redeem it from the other account, unlink."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, secret: Callable[[], bytes]) -> None:
        self.uow = uow
        self.clock = clock
        self.secret = secret  # the key of the codes' HMAC (the vault's fingerprint key)

    def digest(self, code: str) -> str:
        return hmac.new(self.secret(), b"link-code:" + code.encode(), hashlib.sha256).hexdigest()

    async def issue(self, buyer: Buyer) -> Issued:
        """A new one-time code for this account (its earlier unused one stops working). RATE_LIMITED beyond
        ISSUES_PER_HOUR an hour."""
        now = self.clock.now()
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        expires = now + timedelta(minutes=CODE_MINUTES)
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("link_code", buyer.key)
            if await uow.audit.count("link_code", buyer.key, since=now - timedelta(hours=1)) >= ISSUES_PER_HOUR:
                raise StoreError(ErrorCode.RATE_LIMITED, limit=ISSUES_PER_HOUR)
            await uow.risk.add_link_code(self.digest(code), buyer, now, expires)
            await uow.audit.add_many([AuditEntry("link_code", buyer.key, buyer.channel, now,
                                                 detail={"expires_at": expires.isoformat()})])
            await uow.commit()
        return Issued(code, expires)

    async def redeem(self, buyer: Buyer, typed: str) -> Linked:
        """Link this account with the one that was given the code. Refused (StoreError, nothing linked): a
        wrong, expired or used code (LINK_CODE_INVALID, counted), this account's own code (LINK_SELF), two
        accounts of different people (LINK_CONFLICT), too many wrong codes within the hour (RATE_LIMITED)."""
        now = self.clock.now()
        code = normalize_code(typed)
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("link_failed", buyer.key)  # parallel guesses cannot overrun the limit
            failures = await uow.audit.count("link_failed", buyer.key, since=now - timedelta(hours=1))
            if failures >= FAILURES_PER_HOUR:
                raise StoreError(ErrorCode.RATE_LIMITED, limit=FAILURES_PER_HOUR)
            digest = self.digest(code) if code else ""
            found = await uow.risk.link_code(digest) if code else None
            if found is not None and found[0] == buyer and found[2] is None and found[1] > now:
                raise StoreError(ErrorCode.LINK_SELF)  # not a guess: the code stays valid for the other account
            if found is None or found[2] is not None or found[1] <= now or \
                    not await uow.risk.use_link_code(digest, buyer, now):
                await uow.audit.add_many([AuditEntry("link_failed", buyer.key, buyer.channel, now, detail={
                    "why": "unknown" if found is None else "used" if found[2] is not None else "expired"})])
                await uow.commit()  # the failure counts even though nothing else happens
                raise StoreError(ErrorCode.LINK_CODE_INVALID, left=max(0, FAILURES_PER_HOUR - failures - 1))
            owner = found[0]
            rows = await uow.risk.links_of([owner, buyer])
            mine, theirs = rows.get(buyer.key), rows.get(owner.key)
            if mine and theirs and mine.person != theirs.person:
                await uow.audit.add_many([AuditEntry("link_refused", buyer.key, buyer.channel, now,
                                                     detail={"with": owner.key})])
                await uow.commit()  # the code is used up either way
                raise StoreError(ErrorCode.LINK_CONFLICT)
            already = bool(mine and theirs and mine.link_set and mine.link_set == theirs.link_set)
            if not already:
                person = (theirs.person if theirs else "") or (mine.person if mine else "") or _new_id("P")
                link_set = (theirs.link_set if theirs else "") or (mine.link_set if mine else "") or _new_id("L")
                for side in (mine, theirs):  # two live links of one person become one
                    if side and side.link_set and side.link_set != link_set:
                        await uow.risk.move_link_set(side.link_set, link_set)
                await uow.risk.set_links([owner, buyer], person, link_set, now)
                await uow.audit.add_many([AuditEntry("link", buyer.key, buyer.channel, now,
                                                     detail={"with": owner.key, "person": person})])
                # The account that asked for the code hears of it: a link it did not expect can be undone there.
                await uow.outbox.add_many([await _notice(uow, owner, "link.notice.linked")])
            accounts = await uow.risk.link_set(buyer)
            await uow.commit()
        return Linked(owner, accounts, already)

    async def unlink(self, buyer: Buyer) -> list[Buyer]:
        """End this account's live link (the accounts it was linked with are returned); NOT_LINKED when it has
        none. Its person id stays: limits and bans keep counting it with the person."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            accounts = await uow.risk.link_set(buyer)
            if len(accounts) < 2 or not await uow.risk.leave_link(buyer):
                raise StoreError(ErrorCode.NOT_LINKED)
            others = [b for b in accounts if b != buyer]
            await uow.audit.add_many([AuditEntry("unlink", buyer.key, buyer.channel, now,
                                                 detail={"from": [b.key for b in others]})])
            await uow.outbox.add_many([await _notice(uow, b, "link.notice.unlinked") for b in others])
            await uow.commit()
        return others

    async def linked(self, buyer: Buyer) -> list[Buyer]:
        """The accounts live-linked with this one, itself included (just itself when it has no link)."""
        async with self.uow() as uow:
            return await uow.risk.link_set(buyer)


async def _notice(uow: UnitOfWork, to: Buyer, key: str) -> OutboxItem:
    """A notice to an account's private chat (its chat id is its user id / openid), in its language."""
    cust = await uow.customers.get(to)
    return OutboxItem(None, "notify", to.channel, to.external_id, None,
                      {"key": key, "language": (cust.language if cust else None) or "", "params": {}})


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(15))


def identity_of(b: Buyer, facts: BuyerFacts | None) -> Identity:
    """An account's Identity from its BuyerFacts (core/risk/rules.py)."""
    if facts is None:
        return Identity(b)
    return Identity(b, facts.phone, facts.person, facts.link_set)
