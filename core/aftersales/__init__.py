"""After-sales: what happens after a code was delivered.

    problems.py  `ProblemDesk`: a buyer reports a problem (supplier check, automatic reissue or a ticket), the
                 merchants answer tickets (reissue, reject; a refund closes them), the buyer's history
    tickets.py   problems, tickets, `ReissuePolicy`, history items, and the storage port `TicketRepo` (`uow.tickets`)
    recalls.py   `RecallDesk`: codes a supplier recalled are burned and their buyers put right; `RecallRepo`
                 (`uow.recalls`)
    audit.py     an order's audit trail as evidence (export as JSON or CSV; codes only as fingerprint references)
    alerts.py    `OutboxAlerts`: merchant alerts as outbox notices, for a process without the chat channels
    errors.py    `AftersalesError` and its codes

Framework-free like the rest of core/. Code outside the area imports from here.
"""
from core.aftersales.alerts import OutboxAlerts
from core.aftersales.audit import (
    ENTRY_FIELDS,
    EXPORT_FORMAT,
    AuditTrail,
    TrailCode,
    code_ref,
    export_csv,
    export_data,
    export_json,
    iso,
    order_trail,
    record_export,
)
from core.aftersales.errors import AftersalesCode, AftersalesError
from core.aftersales.problems import ProblemDesk
from core.aftersales.recalls import RECALL_REFUND, BurnReport, RecallDesk, RecallRepo
from core.aftersales.tickets import (
    AUTO_PROBLEMS,
    MAX_NOTE,
    PROBLEMS,
    TICKET_STATUSES,
    TOPUP_PROBLEMS,
    HistoryItem,
    ProblemOutcome,
    ReissuePolicy,
    Ticket,
    TicketRepo,
    clean_note,
    problems_for,
    ticket_id_of,
)

__all__ = [
    "AUTO_PROBLEMS", "ENTRY_FIELDS", "EXPORT_FORMAT", "MAX_NOTE", "PROBLEMS", "RECALL_REFUND", "TICKET_STATUSES",
    "TOPUP_PROBLEMS", "AftersalesCode", "AftersalesError", "AuditTrail", "BurnReport", "HistoryItem",
    "OutboxAlerts", "ProblemDesk", "ProblemOutcome", "RecallDesk", "RecallRepo", "ReissuePolicy", "Ticket",
    "TicketRepo", "TrailCode", "clean_note", "code_ref", "export_csv", "export_data", "export_json", "iso",
    "order_trail", "problems_for", "record_export", "ticket_id_of",
]
