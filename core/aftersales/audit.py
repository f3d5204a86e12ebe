"""An order's audit trail as evidence: every audit entry of an order (reveals with who, when, channel and chat;
deliveries, reissues, refunds, merchant actions) in a stable field order, times in UTC ISO 8601 (`order_trail`,
`export_json`, `export_csv`; the export is itself recorded, `record_export`). Codes never appear: a code is its row
id and a fingerprint reference (`fp:` + the first 8 bytes of its keyed HMAC fingerprint, which cannot be turned
back into the code)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.clock import Clock
from core.csvfiles import csv_text
from core.models import AuditEntry, CodeStatus, Order, Payment, Product
from core.ports import UnitOfWorkFactory

EXPORT_FORMAT = "card-store audit export v1"
ENTRY_FIELDS = ("seq", "at", "action", "actor", "channel", "chat", "order_id", "product_id", "sku", "code_id",
                "code_ref", "detail")


def iso(at: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, microseconds kept: `2026-11-25T16:08:33.123456Z`."""
    if at is None:
        return None
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def code_ref(code_id: int | None, fingerprint: bytes | None) -> str:
    """How a code is named in evidence: its row id and a fingerprint prefix, never its text."""
    if code_id is None:
        return ""
    return f"#{code_id}" + (f" fp:{fingerprint[:8].hex()}" if fingerprint else "")


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


async def order_trail(uow_factory: UnitOfWorkFactory, order_id: str, *, fingerprints: bool = False
                      ) -> AuditTrail | None:
    """Everything recorded about one order (None when there is no such order). `fingerprints`: codes are named by
    their row id and a fingerprint prefix (the evidence export); without, by their row id (the merchant's chat)."""
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
        fps = await uow.recalls.fingerprints(sorted(ids)) if fingerprints and ids else {}
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
            "amount": o.amount, "currency": o.currency, "stars": o.stars_total,
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
    rows: list[list[object]] = [list(ENTRY_FIELDS)]
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

