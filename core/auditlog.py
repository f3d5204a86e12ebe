"""The audit log as a merchant reads it: newest first, a page at a time, filtered by action, actor, order and time.

Framework-free. One query in storage (`uow.audit.search`, storage/people.py), paged by id (`before_id`: the entries
older than the last one shown), so a page costs the same however deep the log is. Filters are checked here and a
bad one is refused (`AuditLogError`) before anything is read. Audit entries never hold a code (a reveal or a
delivery names the order and the code's row id), so a page of them can be shown as it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from core.errors import Refused
from core.models import AuditEntry, Buyer
from core.ports import UnitOfWorkFactory

PAGE = 25
MAX_PAGE = 200
ACTION_RE = re.compile(r"^[a-z_]{1,16}$")  # audit.action is String(16): deliver, reveal, admin, console_login...
ORDER_RE = re.compile(r"^[0-9A-Za-z]{1,24}$")
MAX_ACTOR = 96  # audit.actor is String(96): "telegram:123", "wechat:<openid>", "cli", "merchant"


class AuditLogCode(StrEnum):
    """Why a look at the audit log was refused (the message is `admin.error.<value>`)."""

    AUDIT_BAD_FILTER = "audit_bad_filter"  # params: field (action | actor | order | page)


class AuditLogError(Refused):
    codes = AuditLogCode
    code: AuditLogCode


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What to show: every field empty / None is no filter. `since` inclusive, `until` exclusive."""

    action: str = ""
    actor: str = ""
    order_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the next page: entries older than this one

    def checked(self) -> AuditQuery:
        """The query with its text trimmed (order ids upper-cased, as they are stored); a bad filter refused."""
        action, actor, order = self.action.strip(), self.actor.strip(), self.order_id.strip().upper()
        if action and not ACTION_RE.match(action):
            raise AuditLogError(AuditLogCode.AUDIT_BAD_FILTER, field="action")
        if len(actor) > MAX_ACTOR or any(not c.isprintable() for c in actor):
            raise AuditLogError(AuditLogCode.AUDIT_BAD_FILTER, field="actor")
        if order and not ORDER_RE.match(order):
            raise AuditLogError(AuditLogCode.AUDIT_BAD_FILTER, field="order")
        if self.before_id is not None and self.before_id < 1:
            raise AuditLogError(AuditLogCode.AUDIT_BAD_FILTER, field="page")
        return AuditQuery(action, actor, order, self.since, self.until, self.before_id)


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]  # newest first, each with its id
    more: bool  # older entries match too

    @property
    def next_before(self) -> int | None:
        """`before_id` of the next (older) page, None when this is the last."""
        return self.entries[-1].id if self.more and self.entries else None


async def audit_page(uow_factory: UnitOfWorkFactory, query: AuditQuery, limit: int = PAGE) -> AuditPage:
    """One page of the audit log, newest first (a bad filter is refused, nothing read)."""
    q = query.checked()
    limit = max(1, min(limit, MAX_PAGE))
    async with uow_factory() as uow:
        rows = await uow.audit.search(action=q.action or None, actor=q.actor or None, order_id=q.order_id or None,
                                      since=q.since, until=q.until, before_id=q.before_id, limit=limit + 1)
    return AuditPage(rows[:limit], len(rows) > limit)


class Recorder(Protocol):
    """Where a merchant's look is recorded (core/admin.py AdminService.record: an `admin` entry)."""

    async def record(self, m: Buyer, command: str, *, order_id: str | None = None, product_id: int | None = None,
                     **detail: Any) -> None: ...


async def merchant_look(uow_factory: UnitOfWorkFactory, recorder: Recorder, m: Buyer, query: AuditQuery,
                        limit: int = PAGE) -> AuditPage:
    """A merchant's page of the log: a bad filter refused and recorded as refused; a look recorded with its filters
    after the page was read (`admin`, command `audit_log`)."""
    try:
        page = await audit_page(uow_factory, query, limit)
    except AuditLogError as exc:
        await recorder.record(m, "audit_log", refused=exc.code.value, field=str(exc.params.get("field", "")))
        raise
    asked = (("action", query.action), ("actor", query.actor[:MAX_ACTOR]), ("order", query.order_id),
             ("since", query.since and query.since.isoformat()), ("until", query.until and query.until.isoformat()),
             ("page", query.before_id))
    shown: dict[str, Any] = {k: v for k, v in asked if v}
    await recorder.record(m, "audit_log", entries=len(page.entries), **shown)
    return page
