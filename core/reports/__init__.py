"""Reports: a period's sales figures for the merchants (`/report`, `run.py report`), the funnel's events, and the
period's orders as a CSV file (`/export`)."""
from core.reports.desk import ReportDesk
from core.reports.errors import ReportCode, ReportsError
from core.reports.events import EventCount, EventTally, FlushEvents
from core.reports.export import MAX_ROWS, OrderLine, OrdersExport, decimal, orders_csv
from core.reports.figures import (
    CHANNELS,
    Figures,
    Funnel,
    ProductFigures,
    ResellerSales,
    SalesRow,
    StockCover,
)
from core.reports.period import MAX_DAYS, Period, parse_period, period_between
from core.reports.ports import ReportRepo

__all__ = ["CHANNELS", "MAX_DAYS", "MAX_ROWS", "EventCount", "EventTally", "Figures", "FlushEvents", "Funnel",
           "OrderLine", "OrdersExport", "Period", "ProductFigures", "ReportCode", "ReportDesk", "ReportRepo",
           "ReportsError", "ResellerSales", "SalesRow", "StockCover", "decimal", "orders_csv", "parse_period",
           "period_between"]
