"""The audit log as merchants read it (core/auditlog.py) on the fake unit of work: newest first, pages that walk back
without a gap or a repeat, filters that combine, bad filters refused before anything is read, and the look recorded
with the merchant's identity."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.auditlog import AuditLogCode, AuditLogError, AuditQuery, audit_page, merchant_look
from core.models import AuditEntry, Buyer
from tests.unit.fakes import FakeUnitOfWorkFactory

OWNER = Buyer("telegram", "1")


class Recorded:
    def __init__(self) -> None:
        self.looks: list[tuple[Buyer, str, dict[str, Any]]] = []

    async def record(self, m: Buyer, command: str, *, order_id: str | None = None, product_id: int | None = None,
                     **detail: Any) -> None:
        self.looks.append((m, command, detail))


def _fill(fake: FakeUnitOfWorkFactory) -> None:
    """30 entries an hour apart: deliver / reveal by turns, orders O0..O9, the newest last."""
    start = fake.clock.now() - timedelta(hours=30)
    for i in range(30):
        action = "deliver" if i % 2 else "reveal"
        fake.state.audit.append(AuditEntry(action, "system" if action == "deliver" else "telegram:7", "telegram",
                                           start + timedelta(hours=i), f"O{i % 10}"))


async def test_pages_walk_back_newest_first(fake: FakeUnitOfWorkFactory) -> None:
    _fill(fake)
    seen, before = [], None
    while True:
        page = await audit_page(fake, AuditQuery(before_id=before), limit=7)
        seen += [e.id for e in page.entries]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == list(range(30, 0, -1))


async def test_filters_combine(fake: FakeUnitOfWorkFactory) -> None:
    _fill(fake)
    now = fake.clock.now()
    page = await audit_page(fake, AuditQuery(action="reveal", order_id=" o2 "))  # order ids as typed
    assert [(e.action, e.order_id) for e in page.entries] == [("reveal", "O2")] * 3 and not page.more
    page = await audit_page(fake, AuditQuery(actor="system", since=now - timedelta(hours=6), until=now))
    assert {e.action for e in page.entries} == {"deliver"} and len(page.entries) == 3


@pytest.mark.parametrize(("query", "field"), [
    (AuditQuery(action="DROP TABLE"), "action"), (AuditQuery(action="x" * 17), "action"),
    (AuditQuery(order_id="O-1;"), "order"), (AuditQuery(actor="a\nb"), "actor"), (AuditQuery(actor="x" * 97), "actor"),
    (AuditQuery(before_id=0), "page"),
])
async def test_a_bad_filter_is_refused_and_recorded(fake: FakeUnitOfWorkFactory, query: AuditQuery, field: str) -> None:
    recorded = Recorded()
    with pytest.raises(AuditLogError) as refused:
        await merchant_look(fake, recorded, OWNER, query)
    assert refused.value.code is AuditLogCode.AUDIT_BAD_FILTER and refused.value.params == {"field": field}
    assert recorded.looks == [(OWNER, "audit_log", {"refused": "audit_bad_filter", "field": field})]


async def test_a_look_is_recorded_with_its_filters(fake: FakeUnitOfWorkFactory) -> None:
    _fill(fake)
    recorded = Recorded()
    page = await merchant_look(fake, recorded, OWNER, AuditQuery(action="deliver"), limit=5)
    assert len(page.entries) == 5 and page.more
    assert recorded.looks == [(OWNER, "audit_log", {"entries": 5, "action": "deliver"})]
