"""Codes into a pool: the streaming import of a file of codes (the merchant's `codes import` and `/import`, a
restock's purchase), the line rules every code file follows (also read by recalls), and re-keying the vault."""
from __future__ import annotations

import csv
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from core import stock_alerts
from core.clock import Clock
from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, CodeStatus, Kind, NewCode, Product
from core.ports import UnitOfWorkFactory
from core.vault import Vault

MAX_CODE_LEN = 512
MAX_LINE_BYTES = 64 * 1024  # longer lines are rejected unread (a file with no newlines is not slurped)
BATCH = 5000
_CONTROL = {chr(c) for c in range(32)} - {"\t"} | {"\x7f"}


@dataclass
class ImportReport:
    sku: str
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_lines: list[tuple[int, str]] = field(default_factory=list)  # first 100, with reasons
    lines: int = 0

    def reject(self, line_no: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_lines) < 100:
            self.rejected_lines.append((line_no, reason))


class LineParser:
    """Turns raw lines into codes. Plain files: one code per line. CSV: a header whose first column is
    `code`, optional `expires_at` (ISO 8601 date or time; UTC when no zone is given)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.csv: bool | None = None
        self.expires_col: int | None = None

    def header(self, text: str) -> bool:
        """Inspect the first line; True when it is a CSV header (and so carries no code)."""
        try:
            cols = [c.strip().lower() for c in next(csv.reader([text]))] if text.strip() else []
        except csv.Error:
            cols = []
        if cols and cols[0] == "code":
            self.csv = True
            self.expires_col = cols.index("expires_at") if "expires_at" in cols else None
            return True
        self.csv = False
        return False

    def parse(self, text: str) -> tuple[str, datetime | None] | str | None:
        """(code, expires_at), or a rejection reason, or None for a blank line."""
        expires = None
        if self.csv:
            if not text.strip():
                return None
            try:
                row = next(csv.reader([text], strict=True), [])
            except csv.Error:
                return "bad CSV"
            code = row[0].strip() if row else ""
            if self.expires_col is not None:
                raw = row[self.expires_col].strip() if len(row) > self.expires_col else ""
                if raw:
                    try:
                        expires = datetime.fromisoformat(raw)
                    except ValueError:
                        return "bad expires_at"
                    if expires.tzinfo is None:
                        expires = expires.replace(tzinfo=UTC)
                    if expires <= self.now:
                        return "already expired"
            if not code:
                return "empty code"
        else:
            code = text.strip()
            if not code:
                return None
        if len(code) > MAX_CODE_LEN:
            return "too long"
        if not _CONTROL.isdisjoint(code):
            return "control characters"
        if not code.isascii() and (refused := unseen_characters(code)):
            return refused
        return code, expires


def unseen_characters(code: str) -> str | None:
    """Why a code with characters nobody can see or type is refused, or None. C1 controls (U+0080-U+009F) are
    control characters; format characters (bidi controls U+202A-202E and U+2066-2069, zero-width U+200B-200F,
    U+FEFF, soft hyphen, ...) and line/paragraph separators are invisible: a code carrying one looks like another
    code, is not what the buyer types at the card's issuer, and dodges the duplicate check. A BOM at the very start
    of the file is no part of a code (decode_line strips it)."""
    if code.replace("\t", " ").isprintable():  # fast path: str.isprintable is false for every category below
        return None
    for ch in code:
        category = unicodedata.category(ch)
        if category == "Cc" and ch != "\t":
            return "control characters"
        if category in ("Cf", "Zl", "Zp"):
            return "invisible characters"
    return None


def read_lines(fh: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Lines of a binary file; None stands for a line longer than `limit` bytes (skipped, never held whole)."""
    while True:
        raw = fh.readline(limit)
        if not raw:
            return
        if len(raw) == limit and not raw.endswith(b"\n"):
            while (rest := fh.readline(limit)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def decode_line(raw: bytes, first: bool) -> str | None:
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError:
        return None
    return text.rstrip("\r\n")


def parse_lines(lines: Iterable[bytes | None], parser: LineParser
                ) -> Iterator[tuple[int, int, tuple[str, datetime | None] | str | None]]:
    """(line number, bytes read, what the line holds) for every line of a code file: a (code, expires_at)
    pair, the reason it is rejected, or None for a blank line or the CSV header."""
    for line_no, raw in enumerate(lines, start=1):
        if raw is None:
            yield line_no, MAX_LINE_BYTES, "too long"
            continue
        text = decode_line(raw, line_no == 1)
        if text is None:
            yield line_no, len(raw), "not UTF-8"
        elif parser.csv is None and parser.header(text):
            yield line_no, len(raw), None
        else:
            yield line_no, len(raw), parser.parse(text)


async def import_codes(
    uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, sku: str, lines: Iterable[bytes | None], *,
    actor: str = "cli", channel: str = "cli", progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH, report: ImportReport | None = None,
) -> ImportReport:
    """Import codes into a product's pool. Each batch lands whole or not at all; re-runs skip what landed.
    `report`: the caller's, filled in as batches land (what landed is known even when a later batch fails)."""
    async with uow_factory() as uow:
        product = await uow.products.by_sku(sku)
    if product is None:
        raise StoreError(ErrorCode.UNKNOWN_SKU, sku=sku)
    if product.kind not in (Kind.CODE, Kind.REUSABLE):
        raise StoreError(ErrorCode.KIND_NOT_SUPPORTED, sku=sku, kind=product.kind.value)
    report = report if report is not None else ImportReport(sku)
    parser = LineParser(clock.now())
    fp = vault.fingerprinter(product.id)
    pending: list[tuple[str, datetime | None]] = []
    consumed = 0
    for line_no, size, parsed in parse_lines(lines, parser):
        report.lines = line_no
        consumed += size
        if parsed is None:
            continue
        if isinstance(parsed, str):
            report.reject(line_no, parsed)
            continue
        pending.append(parsed)
        if len(pending) >= batch_size:
            await _land(uow_factory, vault, fp, product, pending, report, clock)
            pending = []
            if progress:
                progress(consumed)
                consumed = 0
    if pending:
        await _land(uow_factory, vault, fp, product, pending, report, clock)
    if progress and consumed:
        progress(consumed)
    async with uow_factory(write=True) as uow:
        await uow.audit.add_many([AuditEntry("import", actor, channel, clock.now(), product_id=product.id, detail={
            "sku": sku, "imported": report.imported, "duplicates": report.duplicates, "rejected": report.rejected})])
        await uow.commit()
    return report


async def _land(uow_factory: UnitOfWorkFactory, vault: Vault, fp: Callable[[str], bytes], product: Product,
                pending: list[tuple[str, datetime | None]], report: ImportReport, clock: Clock) -> None:
    status = CodeStatus.REUSABLE if product.kind is Kind.REUSABLE else CodeStatus.AVAILABLE
    async with uow_factory(write=True) as uow:
        ids = await uow.codes.next_ids(len(pending))
        rows = []
        for cid, (code, expires) in zip(ids, pending, strict=True):
            kid, nonce, ct = vault.encrypt(cid, code)
            rows.append(NewCode(cid, product.id, status, kid, nonce, ct, fp(code), expires))
        inserted = await uow.codes.insert_ignore(rows)
        if status is CodeStatus.AVAILABLE:  # back in stock: the waiting buyers are told with the codes' commit
            await stock_alerts.refilled(uow, product, inserted, clock.now())
        await uow.commit()
    report.imported += inserted
    report.duplicates += len(pending) - inserted


@dataclass
class RekeyReport:
    moved: int = 0
    remaining_before: int = 0
    key_id: str = ""


async def rekey(uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, *,
                progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
                batch_size: int = 2000) -> RekeyReport:
    """Re-encrypt every code under the newest key, batch by batch (safe to interrupt and re-run)."""
    kid = vault.current_key
    async with uow_factory() as uow:
        remaining = await uow.codes.count_not_under_key(kid)
    if total:
        total(remaining)
    report = RekeyReport(remaining_before=remaining, key_id=kid)
    after = 0
    while True:
        async with uow_factory(write=True) as uow:
            rows = await uow.codes.not_under_key(kid, after, batch_size)
            if not rows:
                break
            updates = []
            for c in rows:
                plain = vault.decrypt(c.id, c.key_id, c.nonce, c.ciphertext)
                _, nonce, ct = vault.encrypt(c.id, plain, kid)
                updates.append((c.id, kid, nonce, ct))
            await uow.codes.update_cipher(updates)
            await uow.commit()
        after = rows[-1].id
        report.moved += len(rows)
        if progress:
            progress(len(rows))
    async with uow_factory(write=True) as uow:
        await uow.audit.add_many([AuditEntry("rekey", "cli", "cli", clock.now(),
                                             detail={"key": kid, "moved": report.moved})])
        await uow.commit()
    return report


def looks_binary(head: bytes) -> bool:
    """A NUL byte in the first block means this is no text file of codes."""
    return b"\x00" in head
