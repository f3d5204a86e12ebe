"""Code import by file upload, with a live progress bar: the same streaming importer as `run.py codes import` and
the chat's `/import` (core/admin.py `import_stream` -> core/supply `import_codes`).

The upload is never held in memory: the multipart body is read part by part, chunk by chunk, into a temporary file
(0600, under the system's temp directory; at most `console.max_upload_mb`, else 413 and the partial file deleted).
The refusals the chat gives (not .txt/.csv, binary, blank, unknown SKU) come before anything lands; then the file is
imported in a background task and deleted. The page polls `GET /codes/imports/{id}` (bytes read, imported,
duplicates, rejected, done) and draws the bar (bots/web/static/upload.js; without scripts the form still posts and
the page shows the import's state). Staff may import codes. Imports are audited with the merchant's identity, as
`/import` is; one that fails part-way says (and audits) what landed.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import tempfile
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from bots.web.kit import Pages, Req, see_other
from core.admin import AdminCode, AdminError, Merchant, check_import_file
from core.errors import Refused
from core.models import Kind
from core.supply import ImportReport
from handlers import errors

if TYPE_CHECKING:
    from bots.web.app import ConsoleWeb

log = logging.getLogger(__name__)
pages = Pages()
CHUNK = 1 << 16  # bytes read from the request and written to the file at a time
FIELD_MAX = 256  # the most a form field other than the file may hold (a SKU, the CSRF token)
ENVELOPE = 64 * 1024  # multipart headers and small fields around the file, on top of the size cap
RUNNING_MAX = 2  # imports running at once (another upload meanwhile is refused: busy)
KEEP = 20  # imports remembered for the page (this process; the audit log keeps them all)
REJECTED_SHOWN = 20


@dataclass(eq=False)
class ImportJob:
    """One upload's import, as the page polls it."""

    id: str
    sku: str
    file: str
    size: int
    by: str
    started: datetime
    path: Path
    report: ImportReport
    read: int = 0  # bytes of the file the importer has consumed
    done: bool = False
    failure: Exception | None = None  # a refusal, or what stopped the import part-way
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def advance(self, n: int) -> None:
        self.read += n


_jobs: weakref.WeakKeyDictionary[ConsoleWeb, dict[str, ImportJob]] = weakref.WeakKeyDictionary()


class _TooBig(Exception):
    pass


class _BadForm(Exception):
    pass


def _jobs_of(console: ConsoleWeb) -> dict[str, ImportJob]:
    return _jobs.setdefault(console, {})


@pages.get("/codes")
async def codes(req: Req) -> web.StreamResponse:
    """The upload form, the running import's bar, and the last imports."""
    return await _page(req)


@pages.post("/codes/upload")
async def upload(req: Req) -> web.StreamResponse:
    """Stream the file to disk (capped), check it as the chat does, then import it in the background."""
    w = req.web
    mb = w.settings.console.max_upload_mb
    jobs = _jobs_of(w)
    length = req.request.content_length
    if length is not None and length > w.max_upload + ENVELOPE:  # said up front: nothing is read or written
        return await _refused(req, 413, AdminError(AdminCode.FILE_TOO_BIG, mb=mb))
    if sum(not j.done for j in jobs.values()) >= RUNNING_MAX:
        return await _refused(req, 429, None, "busy")
    sku, name, path, size = "", "", None, 0
    try:
        sku, name, path, size = await _receive(req)
        if path is None:
            raise _BadForm
        with path.open("rb") as fh:
            await w.admin.check_import_stream(sku, name, fh)
    except AdminError as exc:
        _remove(path)
        await _audit_refusal(req, exc, sku, name)
        return await _refused(req, 413 if exc.code is AdminCode.FILE_TOO_BIG else 400, exc)
    except _TooBig:
        _remove(path)
        exc = AdminError(AdminCode.FILE_TOO_BIG, mb=mb)
        await _audit_refusal(req, exc, sku, name)
        return await _refused(req, 413, exc)
    except (_BadForm, ValueError):  # not multipart (or no boundary), no file part, a field too long
        _remove(path)
        return await _refused(req, 400, None, "no_file")
    except BaseException:
        _remove(path)
        raise
    job = ImportJob(secrets.token_hex(8), sku, name[:64], size, req.merchant.key, w.shop.clock.now(), path,
                    ImportReport(sku))
    jobs[job.id] = job
    job.task = asyncio.create_task(_run(w, job, req.merchant), name=f"console-import-{job.id}")
    _forget_old(jobs)
    status_url = req.url(f"/codes/imports/{job.id}")
    if _wants_json(req):
        return web.json_response({"id": job.id, "status_url": status_url}, status=202)
    return see_other(req.url(f"/codes?import={job.id}"))


async def _receive(req: Req) -> tuple[str, str, Path | None, int]:
    """Read the form part by part: the SKU (checked before the file is written when it comes first), and the file
    into a temporary file, chunk by chunk, never past the cap."""
    if not req.request.content_type.startswith("multipart/"):
        raise _BadForm
    reader = await req.request.multipart()
    sku, name, path, size = "", "", None, 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise _BadForm  # a nested multipart: no browser sends one
        if part.name == "file" and path is None:
            name = part.filename or ""
            check_import_file(name, None)  # not .txt/.csv: refused before a byte is written
            if sku:
                await req.web.admin.check_import_target(sku)
            path, size = await _save(part, req.web.max_upload)
        else:
            value = await _field(part)
            if part.name == "sku":
                sku = value.strip()
    return sku, name, path, size


async def _save(part: BodyPartReader, cap: int) -> tuple[Path, int]:
    fd, name = tempfile.mkstemp(prefix="console-import-", suffix=".part")  # 0600: plain codes until imported
    path, size = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise _TooBig
                fh.write(chunk)
    except BaseException:
        _remove(path)
        raise
    return path, size


async def _field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(FIELD_MAX + 1):
        data += chunk
        if len(data) > FIELD_MAX:
            raise _BadForm
    return data.decode("utf-8", "replace")


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _run(w: ConsoleWeb, job: ImportJob, m: Merchant) -> None:
    """The import itself (the chat's use case, read from the temporary file), then the file is deleted."""
    try:
        with job.path.open("rb") as fh:
            await w.admin.import_stream(m, job.sku, job.file, fh, job.size, progress=job.advance, report=job.report)
    except Refused as exc:
        job.failure = exc
    except Exception as exc:  # noqa: BLE001 - shown on the page with what landed (audited by import_stream)
        log.exception("console: the import %s into %s stopped after %d codes", job.id, job.sku, job.report.imported)
        job.failure = exc
    finally:
        job.done = True
        _remove(job.path)


def _forget_old(jobs: dict[str, ImportJob]) -> None:
    finished = [j for j in jobs.values() if j.done]
    for j in sorted(finished, key=lambda j: j.started)[:max(0, len(jobs) - KEEP)]:
        del jobs[j.id]


@pages.get("/codes/imports/{id}")
async def status(req: Req) -> web.StreamResponse:
    """An import's progress as JSON (the page polls it)."""
    job = _jobs_of(req.web).get(req.request.match_info["id"])
    if job is None:
        return web.json_response({"refusal": "unknown_import", "message": req.t("console.codes.unknown_import")},
                                 status=404)
    return web.json_response(_state(req, job))


def _state(req: Req, job: ImportJob) -> dict[str, Any]:
    r = job.report
    state = "importing" if not job.done else "refused" if isinstance(job.failure, Refused) else \
        "failed" if job.failure else "done"
    percent = 100 if state == "done" else min(99, job.read * 100 // job.size) if job.size else 0
    out: dict[str, Any] = {
        "id": job.id, "sku": job.sku, "file": job.file, "by": job.by, "total": job.size,
        "read": min(job.read, job.size), "percent": percent, "lines": r.lines, "imported": r.imported,
        "duplicates": r.duplicates, "rejected": r.rejected, "done": job.done, "state": state,
        "summary": req.t("admin.import.result", imported=r.imported, duplicates=r.duplicates, rejected=r.rejected),
        "rejected_lines": [req.t("console.codes.rejected_line", line=n, reason=_reason(req, why))
                           for n, why in r.rejected_lines[:REJECTED_SHOWN]],
        "more_rejected": max(0, r.rejected - REJECTED_SHOWN), "note": "", "error": "", "refusal": "",
    }
    if r.rejected > REJECTED_SHOWN:
        out["note"] = req.t("admin.import.rejected_more", n=r.rejected - REJECTED_SHOWN)
    if state == "done" and not r.imported and not r.duplicates:
        out["note"] = req.t("admin.import.nothing")
    if isinstance(job.failure, Refused):
        out["refusal"] = job.failure.code.value
        out["error"] = errors.text(req.web.i18n, req.lang, job.failure)
    elif job.failure is not None:
        out["refusal"] = "failed"
        out["error"] = req.t("console.codes.failed", imported=r.imported, line=r.lines) + " " + req.t(
            "admin.import.stopped")
    return out


def _reason(req: Req, reason: str) -> str:
    """A rejected line's reason in the chat's words (handlers/admin.py says them the same way)."""
    key = "admin.import.reason." + re.sub(r"[^a-z]+", "_", reason.lower()).strip("_")
    text = req.t(key)
    return reason if text == key else text


def _wants_json(req: Req) -> bool:
    return "application/json" in req.request.headers.get("Accept", "")


async def _audit_refusal(req: Req, exc: AdminError, sku: str, name: str) -> None:
    """As the chat audits a refused /import (the command, the reason, what was asked)."""
    try:
        await req.web.admin.record(req.merchant, "import", refused=exc.reason, sku=sku[:64], file=name[:64],
                                   **{k: str(v)[:64] for k, v in exc.params.items() if k not in ("sku", "file")})
    except Exception as err:  # noqa: BLE001 - the merchant still gets the answer
        log.error("console: could not audit a refused import: %s", type(err).__name__)


async def _refused(req: Req, status: int, exc: AdminError | None, reason: str = "") -> web.StreamResponse:
    """A refusal: JSON for the page's script, else the page with the refusal. Nothing was imported."""
    if exc is not None:
        reason, message = exc.reason, errors.text(req.web.i18n, req.lang, exc)
    else:
        message = req.t(f"console.codes.refused.{reason}", mb=req.web.settings.console.max_upload_mb)
    if _wants_json(req):
        return web.json_response({"refusal": reason, "message": message}, status=status)
    return await _page(req, status=status, refusal=reason, message=message)


async def _page(req: Req, *, status: int = 200, refusal: str = "", message: str = "") -> web.StreamResponse:
    shop = req.web.shop
    pool = [p for p in await shop.products(include_inactive=True) if p.kind in (Kind.CODE, Kind.REUSABLE)]
    stock = {s.product_id: s.available for s in await shop.stock()}
    jobs = sorted(_jobs_of(req.web).values(), key=lambda j: j.started, reverse=True)
    shown = _jobs_of(req.web).get(req.request.query.get("import", ""))
    return req.render("codes.html", status=status, pool=pool, stock=stock, chosen=req.request.query.get("sku", ""),
                      jobs=[_state(req, j) | {"started": j.started} for j in jobs],
                      job=_state(req, shown) if shown else None, refusal=refusal, message=message,
                      max_mb=req.web.settings.console.max_upload_mb)
