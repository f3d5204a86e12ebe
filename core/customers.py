"""Customers as the shop reads and writes them: a short-lived cache of the recently seen (every update of a button
channel reads its customer for the language), first contacts stored by the group commit without being waited for,
and saves that write only what changed since the read (Shop delegates here: Shop.customer, .language,
.save_customer, .match_language)."""
from __future__ import annotations

import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.background import Background
from core.batching import GroupCommitter, QuietRequest
from core.clock import Clock
from core.coordination import ALL, CacheBus
from core.models import Buyer, Customer
from core.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
CUSTOMER_CACHE = 10_000  # customers kept in memory (the most recently seen)
REFRESHES_AT_ONCE = 4  # Shop.language's background reads in flight at most (more wait for a later request)


@dataclass(frozen=True, slots=True)
class SaveCustomer(QuietRequest[Customer]):
    """Store what changed of a customer: the language (when `language` is set) and the state keys in `put` and
    `drop`; everything else in the stored row stays as another update left it. `whole`: no snapshot to compare
    with (a customer made by hand), so language and state are written as they are."""

    customer: Customer
    language: bool = True
    put: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    whole: bool = True


@dataclass(frozen=True, slots=True)
class AddCustomer(QuietRequest[None]):
    """Store a first contact unless the customer exists already."""

    customer: Customer


class CustomerBook:
    """Button channels read a customer (for the language) on every update: the last `ttl` seconds' reads are kept
    here, refreshed by this process's own saves. Numbered channels ask for fresh=True: their replies are resolved
    against the stored state, which another process may have just changed."""

    def __init__(self, uow: UnitOfWorkFactory, committer: GroupCommitter, clock: Clock, languages: Sequence[str],
                 default_language: str, ttl: float = 2.0, caches: CacheBus | None = None) -> None:
        self.uow = uow
        self.committer = committer
        self.clock = clock
        self.languages = list(languages)
        self.default_language = default_language
        self.ttl = ttl
        self._customers: OrderedDict[Buyer, tuple[float, Customer]] = OrderedDict()
        self._pending_writes = Background(log, "a first-contact write")
        self._refreshes = Background(log, "a customer refresh")  # language()'s background reads
        self._refreshing: set[Buyer] = set()
        # A save tells every process to read that customer again (core/coordination.py); none: this process only
        self.caches = caches
        if caches is not None:
            caches.on("customer", self._drop)
        committer.register(SaveCustomer, self._save_customers)
        committer.register(AddCustomer, self._add_customers)

    async def close(self, drain_seconds: float) -> None:
        if self._pending_writes:  # first contacts still on their way to the database
            await self._pending_writes.idle(timeout=drain_seconds)
        await self._refreshes.stop()

    async def customer(self, buyer: Buyer, language_hint: str | None = None, *, fresh: bool = False) -> Customer:
        """The customer record, created on first contact with the platform's language if we speak it.
        A copy: changing it changes nothing until save_customer."""
        hit = None if fresh else self._customers.get(buyer)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return _copy(hit[1])
        async with self.uow() as uow:
            c = await uow.customers.get(buyer)
        if c is None:
            c = Customer(buyer, self.match_language(language_hint), {}, self.clock.now())
            # Stored by the group commit, and not waited for: the first answer to a new customer needs nothing
            # from this row (its language came from the hint, kept in the cache meanwhile), and a lost row is
            # simply made again on the next contact.
            self._pending_writes.spawn(self.committer.submit(AddCustomer(c)))
        self._remember(c)
        return _copy(c)

    async def language(self, buyer: Buyer, hint: str | None = None) -> str:
        """The buyer's language, for requests that only need that (the in-app storefront's, every one): a buyer
        remembered here is answered at once, however long ago they were read, so no request waits for the
        database for it; one read over customer_ttl seconds ago is read again in the background, for the next
        request (a choice made in another process shows a request later; this process's own saves at once).
        Only a buyer not remembered waits for the read (created on first contact, as `customer` does)."""
        hit = self._customers.get(buyer)
        if hit is None:
            c = await self.customer(buyer, hint)
        else:
            seen, c = hit
            if (time.monotonic() - seen >= self.ttl and buyer not in self._refreshing
                    and len(self._refreshing) < REFRESHES_AT_ONCE):
                self._refreshing.add(buyer)
                self._refreshes.spawn(self._refresh(buyer, seen))
        return c.language or self.match_language(hint)

    async def _refresh(self, buyer: Buyer, seen: float) -> None:
        """Read a remembered customer again, unless something newer was remembered meanwhile (a save)."""
        try:
            async with self.uow() as uow:
                c = await uow.customers.get(buyer)
            hit = self._customers.get(buyer)
            if c is not None and hit is not None and hit[0] == seen:
                self._remember(c)
        finally:
            self._refreshing.discard(buyer)

    def _drop(self, key: str) -> None:
        """Forget a customer (`*`: all) in this process: the next read goes to the database."""
        if key == ALL:
            self._customers.clear()
            return
        channel, _, external_id = key.partition(":")
        self._customers.pop(Buyer(channel, external_id), None)

    def _remember(self, c: Customer) -> None:
        self._customers[c.buyer] = (time.monotonic(), _copy(c))
        self._customers.move_to_end(c.buyer)
        while len(self._customers) > CUSTOMER_CACHE:
            self._customers.popitem(last=False)

    async def save_customer(self, customer: Customer) -> None:
        """Store what changed of a customer's language and conversation state since it was read (group-committed
        with other writes): a concurrent update of another field or state key of the same buyer is kept."""
        if customer.base is None:
            request = SaveCustomer(customer)
        else:
            language, state = customer.base
            put = {k: v for k, v in customer.state.items() if k not in state or state[k] != v}
            request = SaveCustomer(customer, customer.language != language, put,
                                   tuple(k for k in state if k not in customer.state), whole=False)
        stored: Customer = await self.committer.submit(request)
        if self.caches is not None:
            self.caches.changed("customer", stored.buyer.key)
        self._remember(stored)

    @staticmethod
    async def _save_customers(uow: UnitOfWork, saves: Sequence[SaveCustomer]) -> list[Customer]:
        """Each buyer's changes applied in arrival order to the row as stored now (locked on PostgreSQL; SQLite
        writes one transaction at a time), so changes to different fields or state keys all survive."""
        merged: dict[Buyer, Customer] = {}
        for s in saves:
            c = s.customer
            cur = merged.get(c.buyer)
            if cur is None and not s.whole:
                cur = await uow.customers.get(c.buyer, for_update=True)
            if s.whole or cur is None:
                cur = replace(c, state=copy.deepcopy(c.state), base=None)
            else:
                state = {k: v for k, v in cur.state.items() if k not in s.drop}
                state.update(copy.deepcopy(s.put))
                cur = replace(cur, state=state, language=c.language if s.language else cur.language)
            merged[c.buyer] = cur
        for c in merged.values():
            await uow.customers.save(c)
        return [merged[s.customer.buyer] for s in saves]

    @staticmethod
    async def _add_customers(uow: UnitOfWork, adds: Sequence[AddCustomer]) -> list[None]:
        """First contacts: inserted unless the customer exists (a concurrent first update already made it,
        perhaps with a language chosen since): a first contact never overwrites what is stored."""
        customers = [a.customer for a in adds]
        await uow.customers.add_new(list({c.buyer: c for c in customers}.values()))
        return [None] * len(customers)

    def match_language(self, hint: str | None) -> str:
        if hint:
            norm = hint.replace("-", "_")
            for lang in self.languages:
                if norm.lower() == lang.lower() or norm.split("_")[0].lower() == lang.split("_")[0].lower():
                    return lang
        return self.default_language

def _copy(c: Customer) -> Customer:
    """A caller's own copy, remembering what it read (save_customer writes only what changed since)."""
    return replace(c, state=copy.deepcopy(c.state), base=(c.language, copy.deepcopy(c.state)))
