"""The audit log (owners only): every entry, newest first, a page at a time, filtered by action, actor, order and
dates (days of the store's zone, checked like a report's period). The use case is core/admin.py
`AdminService.audit_log` (core/auditlog.py), which records each look. Entries never hold a code, and every value is
escaped by the template."""
from __future__ import annotations

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import Refusal, detail_text, refusal, when
from core.auditlog import AuditLogCode, AuditLogError, AuditPage, AuditQuery
from core.reports import ReportsError

pages = Pages()
FILTERS = ("action", "actor", "order", "from", "to")
# Offered in the action filter (any other action can be typed): what the store records (docs/architecture.md).
ACTIONS = ("admin", "admin_denied", "deliver", "reveal", "refund", "import", "export", "rekey", "recall", "burn",
           "reseller", "console_link", "console_login", "console_logout", "console_revoke")


def _query(req: Req, asked: dict[str, str]) -> AuditQuery:
    """The filters as the use case takes them; the dates through the reports' period (same refusals)."""
    first, last = asked["from"] or asked["to"], asked["to"] or asked["from"]
    since = until = None
    if first:
        period = req.web.shop.reports.between(first, last)
        since, until = period.start, period.end
    before = req.request.query.get("before", "")
    if before and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise AuditLogError(AuditLogCode.AUDIT_BAD_FILTER, field="page")
    return AuditQuery(asked["action"], asked["actor"], asked["order"], since, until, int(before) if before else None)


@pages.get("/audit", owner=True)
async def audit(req: Req) -> web.StreamResponse:
    """A page of the audit log; a bad filter is refused with why, nothing shown."""
    asked = {k: req.request.query.get(k, "")[:100] for k in FILTERS}
    page: AuditPage | None = None
    refused: Refusal | None = None
    try:
        page = await req.web.admin.audit_log(req.merchant, _query(req, asked))
    except (AuditLogError, ReportsError) as exc:
        refused = refusal(req, exc)
    more = {k: v for k, v in asked.items() if v}
    return req.render("audit.html", status=400 if refused else 200, page=page, refused=refused, asked=asked,
                      more=more, actions=ACTIONS, when=lambda at: when(req, at), text=detail_text,
                      zone=req.web.settings.jobs.timezone)
