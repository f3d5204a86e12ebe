"""After-sales: an order's audit trail as evidence, and codes a supplier recalled.

- `order_trail` / `export_json` / `export_csv`: every audit entry of an order (reveals with who, when, channel
  and chat; deliveries, reissues, refunds, merchant actions) in a stable field order, times in UTC ISO 8601.
  Codes never appear: a code is its row id and a fingerprint reference (`fp:` + the first 8 bytes of its keyed
  HMAC fingerprint, which cannot be turned back into the code).
- `ProblemDesk.report`: the buyer reports a problem from "My orders". Where the product's supplier can check a
  code (`Supplier.check_code`), it is asked first: "valid" (unused) -> no reissue, the buyer is told so and may
  still open a ticket; "used"/"invalid", or a supplier that cannot answer -> the ordinary policy. Within the
  product's policy (reissues per order, time since delivery, a clean history) the order's codes are burned and
  replaced at once (outbox kind `reissue`), outside it a ticket (`tickets` row, `T<id>`) goes to the merchants
  with reissue / refund / reject buttons (a `report` audit entry and an alert).
- The merchant decides a ticket (`reissue`, `reject`; a refund closes it through core/admin.py): the ticket is
  closed in the same transaction as the decision, only while open (never decided twice), and the buyer is told
  in the chat through the outbox. `history` is the buyer's own purchases, reveals and tickets, newest first.

    report -> [supplier check] -> valid: "unused" (no reissue; "open a ticket anyway")
                               -> within policy: reissued (burned + new code)
                               -> outside: ticket open -> reissued | refunded | rejected (reason to the buyer)
- `RecallDesk.burn`: codes a supplier recalled, given in plain text (matched by the vault's fingerprint, never
  stored): available ones are burned (never sold); sold ones are burned and their buyer gets a replacement from
  the pool through the outbox (kind `reissue`: "your code was recalled" and the new code), or, when the pool
  has none, the order is refunded through the outbox (reason `recalled`). Every touched order gets a `recall`
  audit entry; the merchants are told through the AdminAlerts port.

Framework-free like the rest of core/: the queries it needs beyond the unit of work are the `RecallRepo` port
(storage/aftersales.py), handed in by the composition root.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from core.alerts import AdminAlerts
from core.clock import Clock
from core.csvfiles import csv_text
from core.errors import ErrorCode, StoreError, VaultError
from core.supply import LineParser, parse_lines
from core.models import (
    AuditEntry,
    Buyer,
    CodeStatus,
    Kind,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    StoredCode,
)
from core.outbox import decrypt_codes, load_stored
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.vault import Vault

log = logging.getLogger(__name__)

EXPORT_FORMAT = "card-store audit export v1"
RECALL_REFUND = "recalled"  # the refund reason when a recalled code has no replacement (core/outbox.py)
BATCH = 500  # recalled codes looked up and settled per transaction
ENTRY_FIELDS = ("seq", "at", "action", "actor", "channel", "chat", "order_id", "product_id", "sku", "code_id",
                "code_ref", "detail")


class RecallRepo(Protocol):
    """What after-sales needs from storage beyond the unit of work's repositories (storage/aftersales.py)."""

    async def by_fingerprints(self, uow: UnitOfWork, product_id: int, fingerprints: Sequence[bytes]
                              ) -> list[tuple[StoredCode, bytes]]: ...
    async def burn_ids(self, uow: UnitOfWork, ids: Sequence[int], statuses: Sequence[CodeStatus]) -> int: ...
    async def fingerprints(self, uow: UnitOfWork, ids: Sequence[int]) -> dict[int, bytes]: ...


def iso(at: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, microseconds kept: `2026-11-25T16:08:33.123456Z`."""
    if at is None:
        return None
    return at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def code_ref(code_id: int | None, fingerprint: bytes | None) -> str:
    """How a code is named in evidence: its row id and a fingerprint prefix, never its text."""
    if code_id is None:
        return ""
    return f"#{code_id}" + (f" fp:{fingerprint[:8].hex()}" if fingerprint else "")


# -- the audit trail ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class TrailCode:
    id: int
    status: CodeStatus
    ref: str


@dataclass(slots=True)
class AuditTrail:
    order: Order
    product: Product | None
    payments: list[Payment]
    codes: list[TrailCode]
    entries: list[AuditEntry]
    refs: dict[int, str] = field(default_factory=dict)  # code id -> reference, for entries naming a code


async def order_trail(uow_factory: UnitOfWorkFactory, order_id: str, recall: RecallRepo | None = None
                      ) -> AuditTrail | None:
    """Everything recorded about one order (None when there is no such order)."""
    async with uow_factory() as uow:
        order = await uow.orders.get(order_id)
        if order is None:
            return None
        product = await uow.products.get(order.product_id)
        payments = await uow.payments.for_order(order.id)
        stored = (await uow.codes.for_orders([order.id])).get(order.id, [])
        if order.reusable_code_id:
            stored = [*await uow.codes.get_many([order.reusable_code_id]), *stored]
        entries = await uow.audit.for_order(order.id)
        ids = {c.id for c in stored} | {e.code_id for e in entries if e.code_id} | {
            int(i) for e in entries for i in e.detail.get("code_ids", []) if str(i).isdigit()}
        fps = await recall.fingerprints(uow, sorted(ids)) if recall is not None and ids else {}
    refs = {i: code_ref(i, fps.get(i)) for i in ids}
    codes = [TrailCode(c.id, c.status, refs[c.id]) for c in stored]
    return AuditTrail(order, product, payments, codes, entries, refs)


def _entry_row(seq: int, e: AuditEntry, trail: AuditTrail) -> dict[str, Any]:
    detail = {k: e.detail[k] for k in sorted(e.detail)}
    return {
        "seq": seq, "at": iso(e.at), "action": e.action, "actor": e.actor, "channel": e.channel,
        "chat": str(detail.get("chat", "")), "order_id": e.order_id or "", "product_id": e.product_id,
        "sku": trail.product.sku if trail.product and e.product_id in (None, trail.product.id) else "",
        "code_id": e.code_id, "code_ref": trail.refs.get(e.code_id, "") if e.code_id else "", "detail": detail,
    }


def export_data(trail: AuditTrail, exported_at: datetime) -> dict[str, Any]:
    """The export as plain data, keys in a fixed order (json.dumps keeps it)."""
    o, p = trail.order, trail.product
    return {
        "format": EXPORT_FORMAT,
        "exported_at": iso(exported_at),
        "order": {
            "id": o.id, "status": o.status.value, "buyer": o.buyer.key, "channel": o.buyer.channel,
            "chat": o.chat_id, "product_id": o.product_id, "sku": p.sku if p else "", "qty": o.qty,
            "amount": o.amount, "currency": o.currency, "stars": (o.stars or 0) * o.qty if o.stars else None,
            "created_at": iso(o.created_at), "paid_at": iso(o.paid_at), "delivered_at": iso(o.delivered_at),
        },
        "payments": [{"id": pay.id, "provider": pay.provider, "txn_id": pay.provider_txn_id, "amount": pay.amount,
                      "currency": pay.currency, "payer": pay.payer, "status": pay.status,
                      "created_at": iso(pay.created_at)} for pay in trail.payments],
        "codes": [{"id": c.id, "status": c.status.value, "ref": c.ref} for c in trail.codes],
        "entries": [_entry_row(i, e, trail) for i, e in enumerate(trail.entries, start=1)],
    }


def export_json(trail: AuditTrail, exported_at: datetime) -> str:
    return json.dumps(export_data(trail, exported_at), ensure_ascii=False, indent=2) + "\n"


def export_csv(trail: AuditTrail, exported_at: datetime) -> str:
    """One row per audit entry, columns ENTRY_FIELDS; `detail` is JSON with sorted keys. Text that a spreadsheet
    would run as a formula is quoted (core/csvfiles.py); the JSON export keeps every value as recorded."""
    rows: list[list[Any]] = [list(ENTRY_FIELDS)]
    for row in export_data(trail, exported_at)["entries"]:
        row["detail"] = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        rows.append([row[f] for f in ENTRY_FIELDS])
    return csv_text(rows)


async def record_export(uow_factory: UnitOfWorkFactory, clock: Clock, trail: AuditTrail, actor: str, channel: str,
                        fmt: str, entries: int) -> None:
    """The export itself is written to the order's trail (after it was read: an export never lists itself)."""
    async with uow_factory(write=True) as uow:
        await uow.audit.add_many([AuditEntry("export", actor, channel, clock.now(), trail.order.id,
                                             trail.order.product_id, detail={"format": fmt, "entries": entries})])
        await uow.commit()


# -- recalled codes ----------------------------------------------------------------------------------------

@dataclass
class BurnReport:
    sku: str
    lines: int = 0
    codes: int = 0  # distinct codes in the file
    burned_available: int = 0  # available (or withdrawn, or held by an unpaid order) codes burned
    reissued: int = 0  # orders that got a replacement
    refunded: int = 0  # orders refunded: no replacement in the pool
    not_found: int = 0  # codes in the file the pool never had
    already_burned: int = 0
    held_swapped: int = 0  # unpaid orders whose held code was swapped for another
    rejected: int = 0  # unreadable lines
    orders: list[str] = field(default_factory=list)  # orders reissued or refunded (for the alert)


class RecallDesk:
    """Burns recalled codes and puts their buyers right."""

    def __init__(self, uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, recall: RecallRepo, *,
                 alerts: AdminAlerts | None = None, wake: Callable[[], None] | None = None) -> None:
        self.uow = uow_factory
        self.vault = vault
        self.clock = clock
        self.recall = recall
        self.alerts = alerts
        self.wake = wake

    async def burn(self, sku: str, lines: Iterable[bytes | None], *, actor: str = "cli", channel: str = "cli",
                   progress: Callable[[int], None] | None = None, batch_size: int = BATCH) -> BurnReport:
        """Burn the codes of `lines` (one per line, or CSV with a `code` header) in SKU's pool."""
        async with self.uow() as uow:
            product = await uow.products.by_sku(sku)
        if product is None:
            raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
        if product.kind not in (Kind.CODE, Kind.SUPPLIER):
            raise StoreError(ErrorCode.KIND_NOT_SUPPORTED, sku=sku, kind=product.kind.value)
        report = BurnReport(sku)
        parser = LineParser(datetime(1970, 1, 1, tzinfo=timezone.utc))  # recall files: expiry is no reason to skip
        fp = self.vault.fingerprinter(product.id)
        seen: set[bytes] = set()
        pending: list[bytes] = []
        consumed = 0
        for line_no, size, parsed in parse_lines(lines, parser):
            report.lines = line_no
            consumed += size
            if parsed is None:
                continue
            if isinstance(parsed, str):
                report.rejected += 1
                continue
            f = fp(parsed[0])
            if f in seen:
                continue
            seen.add(f)
            pending.append(f)
            if len(pending) >= batch_size:
                await self._settle(product, pending, report, actor, channel)
                pending = []
                if progress:
                    progress(consumed)
                    consumed = 0
        if pending:
            await self._settle(product, pending, report, actor, channel)
        if progress and consumed:
            progress(consumed)
        report.codes = len(seen)
        async with self.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("burn", actor, channel, self.clock.now(), product_id=product.id,
                                                 detail=_summary(report))])
            await uow.commit()
        if self.alerts is not None and (report.burned_available or report.reissued or report.refunded
                                        or report.held_swapped):
            await self.alerts.alert("aftersales.alert.burned", {
                "sku": sku, "burned": report.burned_available, "reissued": report.reissued,
                "refunded": report.refunded, "not_found": report.not_found,
                "orders": ", ".join(report.orders[:20]) + (" …" if len(report.orders) > 20 else "")})
        return report

    async def _settle(self, product: Product, fps: list[bytes], report: BurnReport, actor: str,
                      channel: str) -> None:
        now = self.clock.now()
        queued = False
        async with self.uow(write=True) as uow:
            found = await self.recall.by_fingerprints(uow, product.id, fps)
            report.not_found += len(set(fps) - {f for _, f in found})
            refs = {c.id: code_ref(c.id, f) for c, f in found}
            loose: list[int] = []
            by_order: dict[str, list[StoredCode]] = {}
            for c, _ in found:
                if c.status is CodeStatus.BURNED:
                    report.already_burned += 1
                elif c.status in (CodeStatus.AVAILABLE, CodeStatus.WITHDRAWN, CodeStatus.REUSABLE) or not c.order_id:
                    loose.append(c.id)
                else:  # held or sold: bound to an order
                    by_order.setdefault(c.order_id, []).append(c)
            if loose:
                report.burned_available += await self.recall.burn_ids(
                    uow, loose, [CodeStatus.AVAILABLE, CodeStatus.WITHDRAWN, CodeStatus.REUSABLE])
            orders = await uow.orders.get_many(sorted(by_order), for_update=True)
            audit: list[AuditEntry] = []
            outbox: list[OutboxItem] = []
            for oid in sorted(by_order):
                codes = by_order[oid]
                order = orders.get(oid)
                ids = [c.id for c in codes]
                recalled = [refs[i] for i in ids]
                held = [c for c in codes if c.status is CodeStatus.HELD]
                if order is None or order.status not in (OrderStatus.DELIVERED, OrderStatus.HELD) or (
                        held and order.status is not OrderStatus.HELD):
                    # Nothing to put right (the order is being refunded, or was): the codes just go.
                    report.burned_available += await self.recall.burn_ids(uow, ids, [CodeStatus.HELD,
                                                                                     CodeStatus.SOLD])
                    continue
                fresh = await uow.codes.pick_available(product.id, len(ids), now)
                if order.status is OrderStatus.HELD:  # unpaid: swap the held code, or give the hold up
                    await self.recall.burn_ids(uow, ids, [CodeStatus.HELD])
                    report.burned_available += len(ids)
                    if len(fresh) == len(ids) and await uow.codes.hold([(c, oid) for c in fresh]) == len(fresh):
                        report.held_swapped += 1
                        outcome = "swapped"
                    else:
                        await uow.codes.release([oid])
                        await uow.orders.set_status([oid], OrderStatus.CANCELLED, now)
                        outcome = "cancelled"
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": outcome, "recalled": recalled, "code_ids": fresh if outcome == "swapped" else []}))
                    continue
                burned = await self.recall.burn_ids(uow, ids, [CodeStatus.SOLD])
                if len(fresh) == len(ids) and await uow.codes.hold([(c, oid) for c in fresh]) == len(fresh):
                    await uow.codes.sell_held([oid])
                    outbox.append(OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, oid, {
                        "code_ids": fresh, "recalled": burned, "language": order.language}))
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": "reissued", "recalled": recalled, "code_ids": fresh}))
                    report.reissued += 1
                    report.orders.append(oid)
                    continue
                if fresh:  # not enough for this order: what was picked stays available
                    pass
                payment = next((p for p in await uow.payments.for_order(oid) if p.status == "captured"), None)
                if payment is None:
                    audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                        "outcome": "no_payment", "recalled": recalled}))
                    report.orders.append(oid)
                    continue
                assert payment.id is not None
                await uow.payments.set_status(payment.id, "refund_pending")
                await uow.orders.set_status([oid], OrderStatus.REFUNDING, now)
                others = await uow.codes.burn([oid])  # the order's other codes go with the refund
                outbox.append(OutboxItem(None, "refund", order.buyer.channel, order.chat_id, oid, {
                    "payment_id": payment.id, "reason": RECALL_REFUND, "language": order.language}))
                audit.append(AuditEntry("recall", actor, channel, now, oid, product.id, detail={
                    "outcome": "refunding", "recalled": recalled, "payment_id": payment.id,
                    "codes_burned": burned + others}))
                report.refunded += 1
                report.orders.append(oid)
            if audit:
                await uow.audit.add_many(audit)
            if outbox:
                await uow.outbox.add_many(outbox)
                queued = True
            await uow.commit()
        if queued and self.wake is not None:
            self.wake()


def _summary(r: BurnReport) -> dict[str, Any]:
    return {"sku": r.sku, "codes": r.codes, "burned_available": r.burned_available, "reissued": r.reissued,
            "refunded": r.refunded, "not_found": r.not_found, "already_burned": r.already_burned,
            "held_swapped": r.held_swapped, "rejected": r.rejected}


class OutboxAlerts:
    """AdminAlerts for a process without the chat channels (the CLI): each merchant's alert is an outbox
    notice, sent by the running store (so a merchant hears of a recall run from the terminal)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, admins: Sequence[tuple[str, str]],
                 wake: Callable[[], None] | None = None) -> None:
        self.uow = uow_factory
        self.admins = list(admins)  # (channel, chat id)
        self.wake = wake

    async def alert(self, key: str, params: dict[str, Any], commands: Sequence[tuple[str, str]] = ()) -> None:
        """Offered commands ride in the notice's params as `_commands` (label key, command): the chat renders
        them as buttons or as lines to type (handlers/aftersales.py alert_screen)."""
        if not self.admins:
            return
        values = dict(params)
        if commands:
            values["_commands"] = [[label, command] for label, command in commands]
        async with self.uow(write=True) as uow:
            items = []
            for ch, chat in self.admins:  # in the merchant's own language, where the shop knows it
                known = await uow.customers.get(Buyer(ch, chat))
                items.append(OutboxItem(None, "notify", ch, chat, None, {
                    "key": key, "language": known.language if known and known.language else "",
                    "params": dict(values)}))
            await uow.outbox.add_many(items)
            await uow.commit()
        if self.wake is not None:
            self.wake()


# -- the buyer reports a problem ---------------------------------------------------------------------------

PROBLEMS = ("not_working", "used", "wrong_product", "topup_missing", "other")  # aftersales.problem.*
TOPUP_PROBLEMS = ("topup_missing", "other")  # a top-up has no code: only these make sense for it


def problems_for(kind: Kind) -> tuple[str, ...]:
    """What a buyer can report about an order of a product of this kind."""
    return TOPUP_PROBLEMS if kind is Kind.TOPUP else tuple(p for p in PROBLEMS if p != "topup_missing")
AUTO_PROBLEMS = frozenset({"not_working", "used"})  # what an automatic reissue can answer
HISTORY = timedelta(days=30)
MAX_NOTE = 500  # characters of the buyer's own description kept with a ticket
TICKET_STATUSES = ("open", "reissued", "refunded", "rejected")
TICKET_REF = re.compile(r"^[Tt](\d{1,9})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_note(text: str) -> str:
    """The buyer's words as stored: control characters dropped, at most MAX_NOTE characters. Kept as plain text
    (every channel escapes it when shown; nothing ever runs it)."""
    return _CONTROL.sub("", text).strip()[:MAX_NOTE]


def ticket_id_of(ref: str) -> int | None:
    """12 for "T12" (or "t12"); None for anything else (an order id starts with a digit)."""
    m = TICKET_REF.match(ref.strip())
    return int(m.group(1)) if m else None


@dataclass(slots=True)
class Ticket:
    id: int | None
    order_id: str
    buyer: Buyer
    problem: str
    why: str
    note: str
    status: str  # open | reissued | refunded | rejected
    created_at: datetime
    answer: str = ""
    decided_at: datetime | None = None
    decided_by: str = ""

    @property
    def ref(self) -> str:
        return f"T{self.id}"


@dataclass(slots=True)
class HistoryItem:
    """One line of a buyer's history: a purchase (a paid order), a reveal of its codes, or a ticket."""

    kind: str  # purchase | reveal | ticket
    at: datetime
    order_id: str
    product_id: int | None = None
    qty: int = 0
    status: str = ""  # the order's or the ticket's status
    chat: str = ""  # reveal: where the codes were shown
    channel: str = ""
    ticket: Ticket | None = None


class TicketRepo(Protocol):
    """Tickets in storage (storage/aftersales.py SqlTicketRepo), on the connection of the given unit of work."""

    async def add(self, uow: UnitOfWork, ticket: Ticket) -> int: ...
    async def get(self, uow: UnitOfWork, ticket_id: int) -> Ticket | None: ...
    async def open_for_order(self, uow: UnitOfWork, order_id: str) -> Ticket | None: ...
    async def decide(self, uow: UnitOfWork, ticket_id: int, status: str, actor: str, answer: str,
                     at: datetime) -> bool:
        """Close one ticket if it is still open; False when it was not (decided already)."""
    async def decide_order(self, uow: UnitOfWork, order_id: str, status: str, actor: str, answer: str,
                           at: datetime) -> list[int]:
        """Close every open ticket of an order; their ids."""
    async def for_orders(self, uow: UnitOfWork, order_ids: Sequence[str]) -> dict[str, list[Ticket]]: ...
    async def open_list(self, uow: UnitOfWork, limit: int, offset: int) -> list[Ticket]:
        """Open tickets, oldest first (the merchant's queue)."""
    async def history(self, uow: UnitOfWork, buyer: Buyer, limit: int, offset: int) -> list[HistoryItem]:
        """The buyer's paid orders, reveals and tickets, newest first."""


class TicketClosed(Exception):
    """The ticket was decided already (or does not exist: status "")."""

    def __init__(self, ref: str, status: str) -> None:
        super().__init__(ref)
        self.ref = ref
        self.status = status


@dataclass(frozen=True, slots=True)
class ReissuePolicy:
    """When a buyer's report is answered by a new code at once (per product: `catalog[].aftersales`).

    auto: reissue automatically at all; reissues_per_order: how many times one order may be reissued;
    window_hours: how long after delivery; max_reports: a clean history is fewer than this many reports by the
    buyer in the last 30 days (this one not counted)."""

    auto: bool = True
    reissues_per_order: int = 1
    window_hours: int = 24
    max_reports: int = 2


@dataclass(slots=True)
class ProblemOutcome:
    order: Order
    outcome: str  # reissued | ticket | unused (the supplier says the code is valid and unused: nothing reissued)
    why: str = ""  # for a ticket: reason | kind | window | limit | history | no_stock | off | checked
    ticket: int | None = None


class ProblemDesk:
    """A buyer's "report a problem" from My orders: a supplier check where one is offered, an automatic reissue
    within the product's policy, or a ticket to the merchants outside it; and the merchants' answers."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, *,
                 policies: dict[str, ReissuePolicy] | None = None, default: ReissuePolicy | None = None,
                 alerts: AdminAlerts | None = None, wake: Callable[[], None] | None = None,
                 tickets: TicketRepo | None = None, vault: Vault | None = None, supply: Any = None) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.policies = dict(policies or {})
        self.default = default or ReissuePolicy()
        self.alerts = alerts
        self.wake = wake
        self.tickets = tickets
        self.vault = vault
        self.supply = supply  # core.supply.SupplyDesk: offer_for / supplier_for (the code check)

    def policy(self, sku: str) -> ReissuePolicy:
        return self.policies.get(sku, self.default)

    async def check_with_supplier(self, buyer: Buyer, order_id: str) -> str:
        """What the product's supplier says of the order's codes: valid (every code unused) | used | invalid |
        unknown (it cannot tell) | error (it did not answer) | "" (no supplier check for this product)."""
        if self.supply is None or self.vault is None:
            return ""
        async with self.uow() as uow:
            order = await uow.orders.get(order_id)
            if order is None or order.buyer != buyer or order.status is not OrderStatus.DELIVERED:
                return ""  # refused with the reason inside report()
            product = await uow.products.get(order.product_id)
            stored = (await load_stored(uow, [order])).get(order.id, [])
        offer = self.supply.offer_for(product) if product else None
        supplier = self.supply.supplier_for(product) if product else None
        if offer is None or supplier is None or not stored:
            return ""
        try:
            codes = decrypt_codes(self.vault, stored)
        except VaultError:
            return "error"
        verdicts = []
        try:
            for code in codes:
                verdicts.append(await supplier.check_code(offer.supplier_sku, code))
        except Exception as exc:  # noqa: BLE001 - a supplier that cannot answer leaves the ordinary policy
            log.warning("code check for order %s failed: %s", order.id, type(exc).__name__)
            return "error"
        for bad in ("used", "invalid"):
            if bad in verdicts:
                return bad
        if verdicts and all(v == "valid" for v in verdicts):
            return "valid"
        return "unknown"

    async def report(self, buyer: Any, order_id: str, problem: str, note: str = "", *,
                     ticket: bool = False) -> ProblemOutcome:
        """The buyer says the order's code does not work (or another problem): checked, reissued or a ticket.
        `ticket=True`: straight to the merchants (the buyer insists after the supplier said "unused")."""
        if problem not in PROBLEMS:
            raise StoreError(ErrorCode.NOT_FOUND, problem=problem[:20])
        note = clean_note(note)
        check = await self.check_with_supplier(buyer, order_id) if problem in AUTO_PROBLEMS and not ticket else ""
        now = self.clock.now()
        queued = False
        new_ticket = False
        ticket_id: int | None = None
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("report", buyer.key)  # two reports at once cannot both be reissued
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            if order.buyer != buyer:
                raise StoreError(ErrorCode.NOT_YOUR_ORDER)
            if order.status is not OrderStatus.DELIVERED:
                raise StoreError(ErrorCode.ORDER_NOT_PAYABLE, status=order.status.value)
            product = await uow.products.get(order.product_id)
            assert product is not None
            if problem not in problems_for(product.kind):  # e.g. "top-up not received" about a code
                raise StoreError(ErrorCode.NOT_FOUND, problem=problem[:20])
            policy = self.policy(product.sku)
            trail = await uow.audit.for_order(order.id)
            reissues = sum(1 for e in trail if e.action in ("report", "reissue") and e.detail.get("outcome") == "reissued")
            reports = await uow.audit.count("report", buyer.key, since=now - HISTORY)
            why = ""
            unused = check == "valid"
            if unused:
                pass  # the supplier vouches for the code: nothing is reissued, nobody is bothered
            elif ticket:
                why = "checked"
            elif not policy.auto:
                why = "off"
            elif problem not in AUTO_PROBLEMS:
                why = "reason"
            elif product.kind is not Kind.CODE:
                why = "kind"
            elif order.delivered_at is None or now - order.delivered_at > timedelta(hours=policy.window_hours):
                why = "window"
            elif reissues >= policy.reissues_per_order:
                why = "limit"
            elif reports >= policy.max_reports:
                why = "history"
            detail: dict[str, Any] = {"problem": problem, "reissues_before": reissues, "reports_30d": reports}
            if check:
                detail["check"] = check
            if note:
                detail["note"] = note[:200]
            outbox: list[OutboxItem] = []
            if unused:
                detail.update(outcome="unused")
            elif not why:
                old = [c.id for c in (await uow.codes.for_orders([order.id])).get(order.id, [])
                       if c.status is CodeStatus.SOLD]
                fresh = await uow.codes.pick_available(product.id, len(old), now)
                if not old or len(fresh) < len(old):
                    why = "no_stock"
                else:
                    burned = await uow.codes.burn([order.id])
                    if await uow.codes.hold([(c, order.id) for c in fresh]) != len(fresh):
                        raise StoreError(ErrorCode.SOLD_OUT, sku=product.sku, available=0)
                    await uow.codes.sell_held([order.id])
                    outbox.append(OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, order.id, {
                        "code_ids": fresh, "recalled": burned, "language": order.language,
                        "notice": "aftersales.replaced"}))
                    detail.update(outcome="reissued", burned=old, code_ids=fresh)
            if why:
                detail.update(outcome="ticket", why=why)
                if self.tickets is not None:
                    existing = await self.tickets.open_for_order(uow, order.id)
                    if existing is not None:  # one open ticket per order: a new report adds to it, no new alert
                        ticket_id = existing.id
                    else:
                        ticket_id = await self.tickets.add(uow, Ticket(None, order.id, buyer, problem, why, note,
                                                                       "open", now))
                        new_ticket = True
                    detail["ticket"] = ticket_id
            await uow.audit.add_many([AuditEntry("report", buyer.key, buyer.channel, now, order.id, product.id,
                                                 detail=detail)])
            if outbox:
                await uow.outbox.add_many(outbox)
                queued = True
            await uow.commit()
        if queued and self.wake is not None:
            self.wake()
        if self.alerts is not None and not unused:
            params = {"order": order.id, "sku": product.sku, "buyer": buyer.key, "problem": problem,
                      "why": why or "-"}
            if ticket_id is not None and new_ticket:
                ref = f"T{ticket_id}"
                commands = [("aftersales.button.refund", f"/refund {order.id}"),
                            ("aftersales.button.reject", f"/reject {ref}")]
                if product.kind is Kind.CODE:
                    commands.insert(0, ("aftersales.button.reissue", f"/reissue {ref}"))
                await self.alerts.alert("aftersales.alert.ticket_open", {**params, "ticket": ref,
                                                                         "note": note or "-"}, commands)
            elif ticket_id is None:
                key = "aftersales.alert.ticket" if why else "aftersales.alert.reissued"
                await self.alerts.alert(key, params)
        outcome = "unused" if unused else "ticket" if why else "reissued"
        return ProblemOutcome(order, outcome, why, ticket_id)

    # -- the merchant answers a ticket ---------------------------------------------------------------------
    async def order_of(self, ref: str) -> tuple[str, int | None]:
        """(order id, ticket id) for "T12"; (the text, None) for anything else. TicketClosed("T12", "") when
        there is no such ticket."""
        tid = ticket_id_of(ref)
        if tid is None:
            return ref, None
        if self.tickets is None:
            raise TicketClosed(ref.upper(), "")
        async with self.uow() as uow:
            found = await self.tickets.get(uow, tid)
        if found is None:
            raise TicketClosed(f"T{tid}", "")
        return found.order_id, tid

    async def _close(self, uow: UnitOfWork, order_id: str, ticket_id: int | None, status: str, actor: str,
                     answer: str, now: datetime) -> list[int]:
        """Close the named ticket (it must still be open) or, for a bare order id, its open tickets."""
        if self.tickets is None:
            return []
        if ticket_id is not None:
            if not await self.tickets.decide(uow, ticket_id, status, actor, answer, now):
                found = await self.tickets.get(uow, ticket_id)
                raise TicketClosed(f"T{ticket_id}", found.status if found else "")
            return [ticket_id]
        return await self.tickets.decide_order(uow, order_id, status, actor, answer, now)

    async def reissue(self, actor: str, channel: str, order_id: str, ticket_id: int | None = None
                      ) -> tuple[Order, int] | None:
        """A merchant replaces a delivered pool order's codes (a ticket's answer): None when the order cannot be
        reissued (not delivered, not a pool product); (order, 0) when the pool has no replacement. The ticket
        (or the order's open tickets) is closed as reissued in the same transaction."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = (await uow.orders.get_many([order_id], for_update=True)).get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            product = await uow.products.get(order.product_id)
            if order.status is not OrderStatus.DELIVERED or product is None or product.kind is not Kind.CODE:
                return None
            old = [c.id for c in (await uow.codes.for_orders([order.id])).get(order.id, [])
                   if c.status is CodeStatus.SOLD]
            fresh = await uow.codes.pick_available(product.id, len(old), now)
            if not old or len(fresh) < len(old):
                return order, 0
            closed = await self._close(uow, order.id, ticket_id, "reissued", actor, "", now)
            burned = await uow.codes.burn([order.id])
            if await uow.codes.hold([(c, order.id) for c in fresh]) != len(fresh):
                return order, 0
            await uow.codes.sell_held([order.id])
            await uow.outbox.add_many([OutboxItem(None, "reissue", order.buyer.channel, order.chat_id, order.id, {
                "code_ids": fresh, "recalled": burned, "language": order.language, "notice": "aftersales.replaced"})])
            detail: dict[str, Any] = {"outcome": "reissued", "burned": old, "code_ids": fresh}
            if closed:
                detail["tickets"] = closed
            await uow.audit.add_many([AuditEntry("reissue", actor, channel, now, order.id, product.id,
                                                 detail=detail)])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order, len(fresh)

    async def reject(self, actor: str, channel: str, order_id: str, reason: str, ticket_id: int | None = None
                     ) -> Order:
        """A merchant turns a report down: the buyer gets the reason in the chat; the ticket is closed."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                raise StoreError(ErrorCode.NOT_FOUND, order_id=order_id)
            closed = await self._close(uow, order.id, ticket_id, "rejected", actor, reason, now)
            await uow.outbox.add_many([OutboxItem(None, "notify", order.buyer.channel, order.chat_id, order.id, {
                "key": "aftersales.rejected", "language": order.language,
                "params": {"order": order.id, "answer": reason}})])
            detail: dict[str, Any] = {"outcome": "rejected", "answer": reason}
            if closed:
                detail["tickets"] = closed
            await uow.audit.add_many([AuditEntry("report", actor, channel, now, order.id, order.product_id,
                                                 detail=detail)])
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return order

    async def close_refunded(self, uow: UnitOfWork, order_id: str, actor: str, now: datetime) -> list[int]:
        """A merchant's refund of the order (core/admin.py, in its transaction) answers its open tickets."""
        if self.tickets is None:
            return []
        return await self.tickets.decide_order(uow, order_id, "refunded", actor, "", now)

    # -- what the buyer and the merchants see --------------------------------------------------------------
    async def tickets_for(self, order_ids: Sequence[str]) -> dict[str, list[Ticket]]:
        if self.tickets is None or not order_ids:
            return {}
        async with self.uow() as uow:
            return await self.tickets.for_orders(uow, order_ids)

    async def open_tickets(self, limit: int, offset: int = 0) -> list[Ticket]:
        if self.tickets is None:
            return []
        async with self.uow() as uow:
            return await self.tickets.open_list(uow, limit, offset)

    async def history(self, buyer: Buyer, limit: int, offset: int = 0) -> list[HistoryItem]:
        """The buyer's own purchases, reveals (when and in which chat the codes were shown) and tickets."""
        if self.tickets is None:
            return []
        async with self.uow() as uow:
            return await self.tickets.history(uow, buyer, limit, offset)
