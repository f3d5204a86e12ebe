"""Supply: where the shop's goods come from and how its pools stay stocked.

- desk.py: an order's purchase or top-up at an upstream supplier (the outbox kinds `buy` and `topup`), and
  top-ups finished by callback or polling (SupplyDesk).
- inventory.py: codes into a pool (streaming import of a file, bought codes alike) and re-keying the vault.

Code outside the area imports from here (`from core.supply import SupplyDesk`).
"""
from core.supply.desk import (
    SupplyDesk,
    SupplyOutcome,
    check_account,
    order_id_of,
    poll_topups,
    refund_pending_order,
    request_id_for,
    status_notice,
)
from core.supply.inventory import (
    ImportReport,
    LineParser,
    RekeyReport,
    import_codes,
    looks_binary,
    parse_lines,
    read_lines,
    rekey,
)

__all__ = [
    "ImportReport", "LineParser", "RekeyReport", "SupplyDesk", "SupplyOutcome", "check_account", "import_codes",
    "looks_binary", "order_id_of", "parse_lines", "poll_topups", "read_lines", "refund_pending_order", "rekey",
    "request_id_for", "status_notice",
]
