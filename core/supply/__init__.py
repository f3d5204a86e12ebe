"""Supply: where the shop's goods come from and how its pools stay stocked.

- desk.py: an order's purchase or top-up at an upstream supplier (the outbox kinds `buy` and `topup`), and
  top-ups finished by callback or polling (SupplyDesk).
- inventory.py: codes into a pool (the streaming import of a file, bought codes alike) and re-keying the vault.
- restock.py: pools below their safety line bought back up from a supplier, within a daily budget (RestockDesk).
- health.py: a failing supplier's backoff, and the merchants' alerts about suppliers (SupplierHealth).
- stock.py: low and out-of-stock alerts, expiring codes withdrawn (StockWatch).

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
from core.supply.health import SupplierHealth, SupplierTrouble
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
from core.supply.restock import RestockDesk, RestockRule, RestockSupplier
from core.supply.stock import ExpiringCodes, StockWatch

__all__ = [
    "ExpiringCodes", "ImportReport", "LineParser", "RekeyReport", "RestockDesk", "RestockRule", "RestockSupplier",
    "StockWatch", "SupplierHealth", "SupplierTrouble", "SupplyDesk", "SupplyOutcome", "check_account", "import_codes",
    "looks_binary", "order_id_of", "parse_lines", "poll_topups", "read_lines", "refund_pending_order", "rekey",
    "request_id_for", "status_notice",
]
