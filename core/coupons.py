"""Coupons (优惠券): a named campaign that takes a fixed amount or a percentage off an order, decided by the server in
the one order pipeline (core/promotions.py).

A campaign (`SPRING`) has either **one shared code** that many buyers type (limited by its total and per-buyer uses)
or **N single-use codes** made in a batch (`run.py coupons generate`), each good for one order. Its terms: amount
or percentage off, a minimum spend, a scope (the whole shop, some SKUs or some categories), a validity window, a
total use limit and a per-buyer limit (linked accounts, core/links.py, are one buyer).

Codes are secrets like card codes: only a keyed HMAC of each is stored (the vault's fingerprint key, as link codes
do); a code is shown once, when made (the generate file, 0600), never in logs, exceptions or admin lists (they show
the campaign's name, id and counts).

In the reserve batch (`Coupons.price`): each code asked for is looked up by fingerprint, its campaign row locked
(`FOR UPDATE` on PostgreSQL; SQLite writes one transaction at a time) and its uses counted, plus what earlier
orders of the same batch took (in memory), so a use limit holds however many orders race for it. A code nobody
made is a guess: audited as `coupon_miss`, at most `max_guesses_per_hour` a buyer an hour (then every coupon is
refused for that hour), and each one raises the buyer's risk score (core/risk/scoring.py `coupon_guesses`).
`claim` writes the use (a `coupon_uses` row per order), `release` gives it back when the order lapses, is
cancelled or refunded, `paid` takes it again when a lapsed order is paid late.

A coupon never makes an order free: it takes at most the amount less one minor unit (and one Star), so every order
is paid through a payment provider and every refund is a real one.

The product rule `coupon_stacking: false` refuses a coupon on an order that another promotion already lowered.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from core.clock import Clock
from core.errors import ErrorCode, Refused, StoreError, VaultError
from core.models import AuditEntry, Buyer, Order, Product
from core.promotions import Note, Priced, Promotion, Quote, link_sets
from core.risk import rules_of

if TYPE_CHECKING:
    from core.ports import UnitOfWork, UnitOfWorkFactory
    from core.vault import Vault

NAME = "coupon"  # the promotion's name: ReserveRequest.promo["coupon"] is the code, order.promo["coupon"] the record
MISS = "coupon_miss"  # audit action of a wrong code (rate limit and risk signal)
PERCENT, AMOUNT = "percent", "amount"
_NAME_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")
_STRIP = re.compile(r"[\s-]+")


class CouponCode(StrEnum):
    """Why a merchant's coupon command was refused (message `coupons.error.<value>`)."""

    BAD_NAME = "bad_name"  # params: name
    NAME_TAKEN = "name_taken"  # params: name
    NO_SUCH = "no_such"  # params: name
    BAD_OFF = "bad_off"  # params: off
    BAD_CODE = "bad_code"  # a shared code too short or with characters outside letters and digits
    CODE_TAKEN = "code_taken"  # a shared code another campaign has
    BAD_WINDOW = "bad_window"  # until before from
    BAD_COUNT = "bad_count"  # params: max


class CouponError(Refused):
    codes = CouponCode
    code: CouponCode


@dataclass(frozen=True, slots=True)
class Terms:
    """What a coupon is worth and where it applies."""

    kind: str  # PERCENT | AMOUNT
    value: int  # percent (1..100) or minor units of `currency`
    currency: str
    min_spend: int = 0
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    total_limit: int | None = None  # uses of the whole campaign (a shared code); None: no limit
    per_buyer: int | None = None  # uses per buyer (linked accounts are one); None: no limit


@dataclass(slots=True)
class Coupon:
    """A campaign as stored (never its codes)."""

    id: int
    name: str
    terms: Terms
    single_use: bool  # N codes, each good for one order; else one shared code
    active: bool
    used: int  # live uses (orders holding or paid with it; lapsed, cancelled and refunded ones gave theirs back)
    codes: int  # codes made
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CouponUse:
    coupon_id: int
    digest: str
    order_id: str
    buyer: str  # the account's key
    amount_off: int


class CouponRepo(Protocol):
    """storage/coupons.py (`uow.coupons`)."""

    async def add(self, name: str, terms: Terms, single_use: bool, at: datetime) -> int: ...
    async def add_codes(self, coupon_id: int, digests: Sequence[str]) -> int:
        """Codes of a campaign; returns how many were new (a digest already stored is skipped)."""
    async def find(self, digests: Sequence[str]) -> dict[str, int]:
        """digest -> coupon id of the codes that exist."""
    async def get(self, ids: Sequence[int], *, for_update: bool = False) -> dict[int, Coupon]:
        """`for_update`: locked in id order until the transaction ends (PostgreSQL)."""
    async def by_name(self, name: str) -> Coupon | None: ...
    async def all(self) -> list[Coupon]: ...
    async def set_active(self, coupon_id: int, active: bool) -> None: ...
    async def codes_in_use(self, digests: Sequence[str]) -> set[str]:
        """The digests with a live use (a single-use code taken) or voided (an issued reward taken back)."""
    async def void_codes(self, digests: Sequence[str], at: datetime) -> None:
        """These codes stop working (known, refused as used up): core/members/coupons.py void_unused."""
    async def uses_by(self, coupon_ids: Sequence[int], buyers: Sequence[str]) -> dict[tuple[int, str], int]:
        """Live uses per (coupon id, account key)."""
    async def add_uses(self, uses: Sequence[CouponUse], at: datetime) -> None:
        """Write the uses and count them on their campaigns."""
    async def release(self, order_ids: Sequence[str], at: datetime) -> int:
        """The live uses of these orders given back (uncounted); returns how many."""
    async def retake(self, order_ids: Sequence[str], at: datetime) -> int:
        """Uses of these orders given back earlier taken again (a late payment); returns how many."""


def normalize(code: str) -> str:
    """A code as typed, the way it is fingerprinted: upper case, without spaces and dashes."""
    return _STRIP.sub("", code).upper()


def parse_off(text: str, currency_digits: int = 2) -> tuple[str, int]:
    """`10%` -> (PERCENT, 10); `5.00` -> (AMOUNT, 500 minor units). CouponError(BAD_OFF) otherwise."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            pct = Decimal(raw[:-1])
            if pct != pct.to_integral_value() or not 1 <= pct <= 100:
                raise CouponError(CouponCode.BAD_OFF, off=raw)
            return PERCENT, int(pct)
        amount = Decimal(raw) * (10 ** currency_digits)
    except InvalidOperation:
        raise CouponError(CouponCode.BAD_OFF, off=raw) from None
    if amount != amount.to_integral_value() or amount <= 0:
        raise CouponError(CouponCode.BAD_OFF, off=raw)
    return AMOUNT, int(amount)


def parse_money(text: str, currency_digits: int = 2) -> int:
    """`20` or `20.00` -> 2000 minor units (CouponError BAD_OFF when not an amount)."""
    kind, value = parse_off(text, currency_digits)
    if kind != AMOUNT:
        raise CouponError(CouponCode.BAD_OFF, off=text)
    return value


@dataclass(slots=True)
class _Counts:
    """What the batch has taken so far, on top of what is stored."""

    used: dict[int, int] = field(default_factory=dict)  # coupon id -> uses
    person: dict[tuple[int, str], int] = field(default_factory=dict)  # (coupon id, person) -> uses
    codes: set[str] = field(default_factory=set)  # single-use digests taken


def _in_scope(t: Terms, p: Product) -> bool:
    if not t.skus and not t.categories:
        return True
    if p.sku in t.skus:
        return True
    names = {v.casefold() for v in p.category.values()}
    return any(c.casefold() in names for c in t.categories)


def verdict(c: Coupon, item: Priced, now: datetime, used: int, person_used: int, code_taken: bool
            ) -> StoreError | int:
    """What this coupon takes off the item's order now, or why it is refused (no I/O)."""
    t, o, p = c.terms, item.order, item.product
    if not c.active or (t.ends_at is not None and now >= t.ends_at):
        return StoreError(ErrorCode.COUPON_EXPIRED, name=c.name)
    if t.starts_at is not None and now < t.starts_at:
        return StoreError(ErrorCode.COUPON_NOT_STARTED, name=c.name, date=t.starts_at.strftime("%Y-%m-%d %H:%M"))
    if code_taken or (t.total_limit is not None and used >= t.total_limit):
        return StoreError(ErrorCode.COUPON_EXHAUSTED, name=c.name)
    if t.per_buyer is not None and person_used >= t.per_buyer:
        return StoreError(ErrorCode.COUPON_PER_BUYER, name=c.name, limit=t.per_buyer)
    if not _in_scope(t, p) or (t.kind == AMOUNT and p.currency != t.currency):
        return StoreError(ErrorCode.COUPON_SCOPE, name=c.name)
    if o.amount < t.min_spend:
        return StoreError(ErrorCode.COUPON_MIN_SPEND, name=c.name, amount=t.min_spend, currency=p.currency)
    if not rules_of(p.rules).coupon_stacking and (o.discount > 0 or any(k != NAME for k in o.promo)):
        return StoreError(ErrorCode.COUPON_NO_STACKING, name=c.name)
    off = o.amount * t.value // 100 if t.kind == PERCENT else t.value
    return max(0, min(off, o.amount - 1))  # never free: at least one minor unit is paid


class Coupons(Promotion):
    """The coupon promotion (registered after the member level's percentage, before points)."""

    name = NAME
    unasked = False  # a coupon applies only to an order that names one

    def __init__(self, secret: Callable[[], bytes], max_guesses_per_hour: int = 10, *, enabled: bool = True) -> None:
        self.secret = secret  # the vault's fingerprint key (never rotated)
        self.max_guesses = max_guesses_per_hour
        self.enabled = enabled  # off (marketing.coupons.enabled): every code is refused as unknown, not counted

    def digest(self, code: str) -> str:
        return hmac.new(self.secret(), b"coupon:" + normalize(code).encode(), hashlib.sha256).hexdigest()

    async def _persons(self, uow: UnitOfWork, buyers: Iterable[Buyer]) -> dict[str, list[str]]:
        """Each account's person: the keys of its linked accounts (itself first)."""
        return {k: [x.key for x in accounts] for k, accounts in (await link_sets(uow, buyers)).items()}

    async def _guessing(self, uow: UnitOfWork, buyers: Iterable[Buyer], now: datetime) -> dict[str, int]:
        keys = sorted({b.key for b in buyers})
        return await uow.audit.counts(MISS, keys, since=now - timedelta(hours=1))

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        wanting = [i for i in items if i.wanted.get(NAME, "").strip()]
        if not wanting:
            return
        if not self.enabled:
            for item in wanting:
                item.refuse(StoreError(ErrorCode.COUPON_UNKNOWN, left=self.max_guesses))
            return
        misses = await self._guessing(uow, (i.buyer for i in wanting), now)
        digests = {id(i): self.digest(i.wanted[NAME]) for i in wanting}
        found = await uow.coupons.find(sorted(set(digests.values())))
        coupons = await uow.coupons.get(sorted(set(found.values())), for_update=True)
        limited = {cid for cid, c in coupons.items() if c.terms.per_buyer is not None}
        # each buyer's linked accounts, read only where a per-buyer limit needs them
        persons = await self._persons(uow, (i.buyer for i in wanting if found.get(digests[id(i)]) in limited))
        taken = await uow.coupons.codes_in_use(sorted({d for d in digests.values() if d in found}))
        stored = await uow.coupons.uses_by(sorted(limited), sorted({k for ks in persons.values() for k in ks}))
        batch = _Counts()
        guesses: list[AuditEntry] = []
        for item in wanting:
            b = item.buyer
            if misses.get(b.key, 0) >= self.max_guesses:
                item.refuse(StoreError(ErrorCode.RATE_LIMITED, limit=self.max_guesses))
                continue
            d = digests[id(item)]
            coupon = coupons.get(found.get(d, 0))
            if coupon is None:
                misses[b.key] = misses.get(b.key, 0) + 1
                guesses.append(AuditEntry(MISS, b.key, b.channel, now, product_id=item.product.id))
                item.refuse(StoreError(ErrorCode.COUPON_UNKNOWN, left=max(0, self.max_guesses - misses[b.key])))
                continue
            accounts = persons.get(b.key) or [b.key]
            person = accounts[0] if len(accounts) == 1 else min(accounts)
            cid = coupon.id
            used = coupon.used + batch.used.get(cid, 0)
            person_used = sum(stored.get((cid, k), 0) for k in accounts) + batch.person.get((cid, person), 0)
            code_taken = coupon.single_use and (d in taken or d in batch.codes)
            result = verdict(coupon, item, now, used, person_used, code_taken)
            if isinstance(result, StoreError):
                item.refuse(result)
                continue
            off = item.take(NAME, result, {"id": cid, "name": coupon.name, "off": result, "digest": d})
            item.order.promo[NAME]["off"] = off
            batch.used[cid] = batch.used.get(cid, 0) + 1
            batch.person[(cid, person)] = batch.person.get((cid, person), 0) + 1
            if coupon.single_use:
                batch.codes.add(d)
        if guesses:
            await uow.audit.add_many(guesses)

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        uses = [CouponUse(r["id"], r["digest"], i.order.id, i.buyer.key, r["off"])
                for i in items if (r := i.order.promo.get(NAME))]
        if uses:
            await uow.coupons.add_uses(uses, now)

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        mine = sorted(o.id for o in orders if NAME in o.promo)
        if mine:
            await uow.coupons.release(mine, now)

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> None:
        mine = sorted(o.id for o in orders if NAME in o.promo)
        if mine:  # a late payment of a lapsed order: its use was given back; the buyer paid the coupon's price
            await uow.coupons.retake(mine, now)

    async def reads(self, item: Priced, now: datetime) -> bool:
        return bool(item.wanted.get(NAME, "").strip()) and self.enabled

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        code = item.wanted.get(NAME, "").strip()
        if not code or not self.enabled:
            return
        result = await self.check(uow, item, now)
        if isinstance(result, StoreError):
            item.refuse(result)  # the quote says why (CouponDesk.try_code); the price stays as it was
            return
        coupon, off = result
        taken = item.take(NAME, off, {"id": coupon.id, "name": coupon.name})
        item.notes.append(Note("coupons.applied", {"name": coupon.name, "off": taken}))

    async def check(self, uow: UnitOfWork, item: Priced, now: datetime) -> StoreError | tuple[Coupon, int]:
        """The coupon the item asks for and what it would take now, or why not (reads only, nothing locked)."""
        d = self.digest(item.wanted.get(NAME, ""))
        found = await uow.coupons.find([d])
        coupon = (await uow.coupons.get(list(found.values()))).get(found.get(d, 0))
        if coupon is None:
            return StoreError(ErrorCode.COUPON_UNKNOWN, left=self.max_guesses)
        accounts = (await self._persons(uow, [item.buyer]))[item.buyer.key]
        stored = await uow.coupons.uses_by([coupon.id], accounts)
        taken = coupon.single_use and bool(await uow.coupons.codes_in_use([d]))
        result = verdict(coupon, item, now, coupon.used, sum(stored.values()), taken)
        return result if isinstance(result, StoreError) else (coupon, result)


QuoteFn = Callable[[Buyer, Product, int, Mapping[str, str], str], Awaitable[Quote]]


class CouponDesk:
    """Merchants make, list and disable campaigns; a buyer's typed code is checked (and a guess counted)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, promotion: Coupons, quote: QuoteFn, vault: Vault, *,
                 code_length: int = 10, alphabet: str = "ABCDEFGHJKMNPQRSTVWXYZ23456789") -> None:
        self.uow = uow
        self.vault = vault  # seals a typed code while a chat remembers it (seal/unseal)
        self.quote = quote  # Shop.quote
        self.clock = clock
        self.promotion = promotion
        self.code_length = code_length
        self.alphabet = alphabet

    def seal(self, code: str) -> str:
        """A typed code as a chat's conversation state keeps it between the product screen and Buy: encrypted
        with the vault's current key, never in plain text."""
        kid, nonce, ct = self.vault.encrypt(0, normalize(code))
        return ".".join((kid, base64.urlsafe_b64encode(nonce).decode(), base64.urlsafe_b64encode(ct).decode()))

    def unseal(self, sealed: str) -> str | None:
        """The code `seal` made, or None when it does not open (another key, a row changed by hand)."""
        try:
            kid, nonce, ct = sealed.split(".")
            return self.vault.decrypt(0, kid, base64.urlsafe_b64decode(nonce), base64.urlsafe_b64decode(ct))
        except (ValueError, VaultError):
            return None

    def new_code(self) -> str:
        """A random single-use code (generated batches; coupons issued as member rewards)."""
        return "".join(secrets.choice(self.alphabet) for _ in range(self.code_length))

    @staticmethod
    def _name(name: str) -> str:
        n = name.strip().upper()
        if not _NAME_RE.match(n):
            raise CouponError(CouponCode.BAD_NAME, name=name)
        return n

    @staticmethod
    def _terms(terms: Terms) -> None:
        if terms.starts_at is not None and terms.ends_at is not None and terms.ends_at <= terms.starts_at:
            raise CouponError(CouponCode.BAD_WINDOW)

    async def _new(self, uow: UnitOfWork, name: str, terms: Terms, single_use: bool, actor: str) -> int:
        if await uow.coupons.by_name(name) is not None:
            raise CouponError(CouponCode.NAME_TAKEN, name=name)
        now = self.clock.now()
        cid = await uow.coupons.add(name, terms, single_use, now)
        await uow.audit.add_many([AuditEntry("coupon_made", actor, "admin", now, detail={
            "coupon": cid, "name": name, "single_use": single_use})])
        return cid

    async def create(self, name: str, code: str, terms: Terms, actor: str = "cli") -> Coupon:
        """A campaign with one shared code (typed by many; limited by its total and per-buyer uses)."""
        name = self._name(name)
        self._terms(terms)
        typed = normalize(code)
        if len(typed) < 6 or not typed.isalnum():
            raise CouponError(CouponCode.BAD_CODE)
        digest = self.promotion.digest(typed)
        async with self.uow(write=True) as uow:
            if await uow.coupons.find([digest]):
                raise CouponError(CouponCode.CODE_TAKEN)
            cid = await self._new(uow, name, terms, False, actor)
            await uow.coupons.add_codes(cid, [digest])
            await uow.commit()
        return await self._get(name)

    async def generate(self, name: str, n: int, terms: Terms, actor: str = "cli",
                       progress: Callable[[int, int], None] | None = None, chunk: int = 1000) -> list[str]:
        """A campaign of `n` single-use codes: returns the codes (shown once; only fingerprints are kept)."""
        name = self._name(name)
        self._terms(terms)
        if not 1 <= n <= 1_000_000:
            raise CouponError(CouponCode.BAD_COUNT, max=1_000_000)
        codes: dict[str, str] = {}
        while len(codes) < n:
            code = self.new_code()
            codes.setdefault(self.promotion.digest(code), code)
        digests = list(codes)
        async with self.uow(write=True) as uow:
            clash = await uow.coupons.find(digests)
            for d in clash:  # practically never: another campaign's code drawn again
                del codes[d]
            digests = [d for d in digests if d not in clash]
            cid = await self._new(uow, name, terms, True, actor)
            for start in range(0, len(digests), chunk):
                await uow.coupons.add_codes(cid, digests[start:start + chunk])
                if progress is not None:
                    progress(min(start + chunk, len(digests)), len(digests))
            await uow.commit()
        return [codes[d] for d in digests]

    async def _get(self, name: str) -> Coupon:
        async with self.uow() as uow:
            c = await uow.coupons.by_name(self._name(name))
        if c is None:
            raise CouponError(CouponCode.NO_SUCH, name=name)
        return c

    async def all(self) -> list[Coupon]:
        async with self.uow() as uow:
            return await uow.coupons.all()

    async def set_active(self, name: str, active: bool, actor: str = "cli") -> Coupon:
        """Disable (or enable again) a campaign: its codes stop working at once; orders holding one keep it."""
        async with self.uow(write=True) as uow:
            c = await uow.coupons.by_name(self._name(name))
            if c is None:
                raise CouponError(CouponCode.NO_SUCH, name=name)
            await uow.coupons.set_active(c.id, active)
            await uow.audit.add_many([AuditEntry("coupon_off" if not active else "coupon_on", actor, "admin",
                                                 self.clock.now(), detail={"coupon": c.id, "name": c.name})])
            await uow.commit()
        c.active = active
        return c

    async def try_code(self, buyer: Buyer, product: Product, qty: int, code: str, language: str = "") -> Quote:
        """A code a buyer typed on a product screen: the price with it (a Quote whose notes say what it took), or
        the StoreError why not. A code nobody made is a guess: audited (the hourly limit, a risk signal)."""
        now = self.clock.now()
        limit = self.promotion.max_guesses
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor(MISS, buyer.key)  # parallel guesses cannot overrun the limit
            misses = (await uow.audit.counts(MISS, [buyer.key], since=now - timedelta(hours=1))).get(buyer.key, 0)
            if misses >= limit:
                raise StoreError(ErrorCode.RATE_LIMITED, limit=limit)
            if not normalize(code) or not await uow.coupons.find([self.promotion.digest(code)]):
                await uow.audit.add_many([AuditEntry(MISS, buyer.key, buyer.channel, now, product_id=product.id)])
                await uow.commit()
                raise StoreError(ErrorCode.COUPON_UNKNOWN, left=max(0, limit - misses - 1))
        quote = await self.quote(buyer, product, qty, {NAME: code}, language)
        if quote.refusal is not None:
            raise quote.refusal
        return quote
