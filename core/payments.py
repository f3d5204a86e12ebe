"""The one way a payment gets in.

Every provider's adapter translates what it was told into a `PaymentNotice` and hands it to `PaymentDesk.accept`:
Telegram's `successful_payment`, WeChat Pay's notify, both providers' reconciliation (orderquery, Stars
transactions), and reseller wallet top-ups paid by either. The desk decides once, in the core:

- an order's payment is recorded once by (provider, transaction id) and delivers, buys upstream, or refunds
  (core/orders.py `OrderBook.pay_batch`, group-committed);
- a wallet top-up's payment credits the wallet once (core/resellers/topups.py `topup_wallet`);
- a payment from a blacklisted payer is recorded, refunded and audited, never delivered or credited.

`PaymentDesk.payable` answers Telegram's pre-checkout from the same rules, reading only: the checks a payment
would meet (whose order, still held, the amount, a banned payer) refuse it before any money moves.

`reconcile_stars` pages through the bot's Star transactions from a stored checkpoint and feeds every incoming
payment the store does not know into `accept`, so a `successful_payment` lost in a crash is still delivered
or refunded.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core import links
from core.batching import Request
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, Order, OrderStatus, Payment
from core.ports import UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from core.resellers.models import Topup, TopupResult

log = logging.getLogger(__name__)

TOPUP_PREFIX = "W"  # wallet top-up ids (core/resellers/topups.py): "W" + an order id, never an order id themselves
STARS = "telegram_stars"
STARS_CHECKPOINT = "stars.checkpoint"  # meta: how many Star transactions reconciliation has read
STARS_SINCE = "stars.since"  # meta: transactions older than this are from before the store (never refunded)
STARS_PAGE = 100  # getStarTransactions' limit
BANNED_PAYER = "banned_payer"  # the refund reason of a blacklisted payer's payment


def is_topup_id(value: str) -> bool:
    """A wallet top-up's id (what a top-up invoice's payload or out_trade_no carries)."""
    return len(value) == 15 and value.startswith(TOPUP_PREFIX) and value[1:].isalnum()


class Outcome(StrEnum):
    """What happened to one payment notice."""

    DELIVERED = "delivered"  # the order is paid; its codes are on their way (or scheduled)
    PENDING = "pending"  # paid; bought from the supplier next
    CREDITED = "credited"  # a wallet top-up credited
    DUPLICATE = "duplicate"  # this transaction was recorded before: nothing more to do
    REFUNDING = "refunding"  # recorded and queued for a refund (see the result's reason)


class Refusal(StrEnum):
    """Why a payment may not be made now (answered at pre-checkout, before any money moves)."""

    UNKNOWN = "unknown"
    NOT_YOURS = "not_yours"
    EXPIRED = "expired"
    NOT_PAYABLE = "not_payable"
    AMOUNT = "amount"
    UNDER_REVIEW = "under_review"
    BANNED = "banned"


@dataclass(slots=True)
class PaymentResult:
    """What happened to one notice."""

    outcome: Outcome
    order: Order | None
    reason: str = ""
    payment_id: int | None = None
    topup: Topup | None = None  # a wallet top-up's payment: the top-up and the new balance
    balance: int | None = None


@dataclass(slots=True)
class PaymentNotice(Request[PaymentResult]):
    """A provider says money arrived. (provider, txn_id) is the idempotency key."""

    order_id: str | None
    provider: str
    txn_id: str
    amount: int
    currency: str
    payer: Buyer | None = None  # who paid (Telegram: the paying user; WeChat Pay: the notice's openid)
    raw: dict[str, Any] = field(default_factory=dict)
    # False: only the order's own buyer may pay it (a Telegram invoice forwarded to a stranger is refunded).
    # True: anyone may (a WeChat Pay QR code paid by a friend); a blacklisted payer is refused either way.
    any_payer: bool = False


class TopupLedger(Protocol):
    """Wallet top-ups (core/resellers/topups.py Topups), when resellers are configured."""

    async def topup_payable(self, topup_id: str, payer: Buyer, amount: int, currency: str) -> str | None: ...
    async def topup_wallet(self, topup_id: str, provider: str, txn_id: str, amount: int, currency: str,
                           payer: Buyer | None = None, *, any_payer: bool = False) -> TopupResult: ...


@dataclass(slots=True, frozen=True)
class StarTransaction:
    """One entry of the bot's Star balance (getStarTransactions), as the core needs it."""

    id: str  # for an incoming invoice payment: its telegram_payment_charge_id
    amount: int
    incoming: bool  # a user paid the bot (False: the bot paid out, e.g. a refund)
    user_id: str  # the user on the other side ("" when not a user)
    payload: str  # the invoice payload ("" when not an invoice payment)
    date: datetime


class StarLedger(Protocol):
    async def star_transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """The bot's Star transactions in chronological order, skipping the first `offset`."""


class BanGate:
    """Whether the blacklist holds anything, remembered for `ttl` seconds: most shops ban nobody, and then a payment
    or a pre-checkout needs no blacklist reads at all. A ban made in this process counts at once (`changed`, called
    by core/risk/guard.py); one made by another process within `ttl`."""

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._until = 0.0
        self._any = True

    async def any(self, uow: UnitOfWork) -> bool:
        if time.monotonic() >= self._until:
            self._any = bool(await uow.risk.bans(1))
            self._until = time.monotonic() + self.ttl
        return self._any

    def changed(self) -> None:
        self._until = 0.0


async def banned_payers(uow: UnitOfWork, payers: Iterable[Buyer | None], gate: BanGate | None = None
                        ) -> dict[str, list[str]]:
    """payer key -> the blacklist kinds that hit the person who paid: a `payer` or `user` ban of the paying account
    or of any account of the same person (linked by a code or a shared phone, core/links.py), or a ban of the
    person's bound phone."""
    buyers = {p.key: p for p in payers if p is not None}
    if not buyers or (gate is not None and not await gate.any(uow)):
        return {}
    facts = await uow.risk.buyer_facts(list(buyers.values()))
    people = await links.people(uow.risk, {k: links.identity_of(b, facts.get(k)) for k, b in buyers.items()})
    entries: dict[tuple[str, str], set[str]] = {}  # (kind, value) -> the payers it would hit
    for k, person in people.items():
        for account in person.accounts:
            for kind in ("payer", "user"):
                entries.setdefault((kind, account.key), set()).add(k)
        for phone in {person.phone, *person.phones, getattr(facts.get(k), "phone", "")} - {""}:
            entries.setdefault(("phone", phone), set()).add(k)
    hits = await uow.risk.blacklisted(sorted(entries))
    out: dict[str, list[str]] = {}
    for kind, value in sorted(hits):
        for k in entries.get((kind, value), ()):
            if kind not in out.setdefault(k, []):
                out[k].append(kind)
    return out


def banned_audit(payer: Buyer, kinds: Sequence[str], provider: str, txn_id: str, payment_id: int | None,
                 at: datetime, order_id: str | None = None, topup: str = "") -> AuditEntry:
    """The audit entry of a payment refused because its payer is blacklisted."""
    detail: dict[str, Any] = {"provider": provider, "txn": txn_id, "payment_id": payment_id, "bans": list(kinds),
                              "reason": BANNED_PAYER}
    if topup:
        detail["topup"] = topup
    return AuditEntry("payment_refused", payer.key, payer.channel, at, order_id, detail=detail)


class PaymentDesk:
    """Accepts every payment (pay an order, credit a top-up, refund) and answers pre-checkout."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock,
                 submit: Callable[[PaymentNotice], Awaitable[PaymentResult]], providers: Callable[[], Container[str]],
                 under_review: Callable[[UnitOfWork, str], Awaitable[bool]], wake: Callable[[], None],
                 bans: BanGate | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self._submit = submit  # the group committer's submit: order payments are batched with the others
        self._providers = providers
        self._under_review = under_review
        self._wake = wake  # the outbox dispatcher: a refund queued outside a batch goes out now
        self.topups: TopupLedger | None = None  # set when resellers are configured (attach_topups)
        self.bans = bans or BanGate()

    def attach_topups(self, ledger: TopupLedger) -> None:
        """Wallet top-ups come in through this same entry from now on (the composition root, app/bootstrap.py)."""
        self.topups = ledger

    async def accept(self, notice: PaymentNotice) -> PaymentResult:
        """Record a provider's payment once and decide: deliver, buy upstream, credit a wallet, or refund."""
        if notice.provider not in self._providers():
            raise StoreError(ErrorCode.PROVIDER_DISABLED, provider=notice.provider)
        ref = notice.order_id or ""
        if is_topup_id(ref) and self.topups is not None:
            done = await self.topups.topup_wallet(ref, notice.provider, notice.txn_id, notice.amount,
                                                  notice.currency, notice.payer, any_payer=notice.any_payer)
            return PaymentResult(Outcome(done.outcome), None, done.reason, topup=done.topup, balance=done.balance)
        return await self._submit(notice)

    async def payable(self, reference: str, payer: Buyer, amount: int, currency: str) -> Refusal | None:
        """None when `payer` may pay `amount` `currency` for this order or top-up now, else why not. Reads only."""
        if is_topup_id(reference) and self.topups is not None:
            why = await self.topups.topup_payable(reference, payer, amount, currency)
            if why is None and await self._banned(payer):
                return Refusal.BANNED
            return Refusal(why) if why is not None else None
        async with self.uow() as uow:
            order = await uow.orders.get(reference) if reference else None
            if order is None:
                return Refusal.UNKNOWN
            if order.buyer != payer:
                return Refusal.NOT_YOURS
            now = self.clock.now()
            if order.status is not OrderStatus.HELD or order.expires_at <= now:
                return Refusal.EXPIRED if order.status in (OrderStatus.HELD, OrderStatus.EXPIRED) \
                    else Refusal.NOT_PAYABLE
            if order.price_in(currency) != amount:
                return Refusal.AMOUNT
            if await self._under_review(uow, order.id):
                return Refusal.UNDER_REVIEW
            if await banned_payers(uow, [payer], self.bans):
                return Refusal.BANNED
        return None

    async def refund_settled(self, provider: str, txn_id: str, refund_no: str = "") -> bool:
        """A provider reports a refund's money moved (WeChat Pay's refund notice): the payment is marked
        refunded, and the outbox row waiting on it closes the order and tells the buyer at once."""
        async with self.uow(write=True) as uow:
            pay = (await uow.payments.existing([(provider, txn_id)])).get((provider, txn_id))
            if pay is None or pay.id is None:
                return False
            if pay.status != "refunded":
                await uow.payments.set_status(pay.id, "refunded")
                if pay.order_id:
                    await uow.outbox.due_now("refund", pay.order_id)
            await uow.commit()
        self._wake()
        return True

    async def _banned(self, payer: Buyer) -> bool:
        async with self.uow() as uow:
            return bool(await banned_payers(uow, [payer], self.bans))

    # -- Stars reconciliation ------------------------------------------------------------------------------
    async def reconcile_stars(self, ledger: StarLedger, *, channel: str = "telegram", page: int = STARS_PAGE,
                              lookback: timedelta = timedelta(days=1)) -> int:
        """Read the bot's Star transactions past the stored checkpoint; every incoming invoice payment the store
        has not recorded goes through `accept` (delivered or refunded as if its `successful_payment` had come).
        Returns how many payments were new. The checkpoint moves only past transactions that were accepted.

        The first run stores a start time (now - lookback): older transactions are from before this store (another
        system's sales on the same bot) and are skipped, never refunded."""
        async with self.uow() as uow:
            raw = await uow.meta.get(STARS_CHECKPOINT)
            since_raw = await uow.meta.get(STARS_SINCE)
        offset = int(raw) if raw and raw.isdigit() else 0
        if since_raw is None:
            since = self.clock.now() - lookback
            async with self.uow(write=True) as uow:
                await uow.meta.set(STARS_SINCE, since.isoformat())
                await uow.commit()
        else:
            since = datetime.fromisoformat(since_raw)
        found = 0
        while True:
            batch = await ledger.star_transactions(offset, page)
            for tx in batch:
                if not (tx.incoming and tx.payload and tx.user_id) or tx.date < since:
                    continue
                result = await self.accept(PaymentNotice(tx.payload, STARS, tx.id, tx.amount, "XTR",
                                                         Buyer(channel, tx.user_id)))
                if result.outcome != Outcome.DUPLICATE:
                    found += 1
                    log.warning("stars: payment %s for %s had not been recorded: %s %s", tx.id, tx.payload,
                                result.outcome, result.reason)
            if batch:
                offset += len(batch)
                async with self.uow(write=True) as uow:
                    await uow.meta.set(STARS_CHECKPOINT, str(offset))
                    await uow.commit()
            if len(batch) < page:
                return found


def utc_from_timestamp(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class DemoGateway:
    """The terminal demo's pretend money. Only registered in demo mode, so it is refused anywhere else."""

    name = "demo"

    def __init__(self) -> None:
        self.refunded: list[int] = []

    async def refund(self, payment: Payment, reason: str) -> bool:
        log.info("demo refund of payment %s (%s)", payment.id, reason)
        if payment.id is not None:
            self.refunded.append(payment.id)
        return True
