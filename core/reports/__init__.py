"""Reports: a period's sales figures for the merchants (`/report`, `run.py report`)."""
from core.reports.desk import ReportDesk
from core.reports.errors import ReportCode, ReportsError
from core.reports.figures import CHANNELS, Figures, ProductFigures, SalesRow, StockCover
from core.reports.period import MAX_DAYS, Period, parse_period, period_between
from core.reports.ports import ReportRepo

__all__ = ["CHANNELS", "MAX_DAYS", "Figures", "Period", "ProductFigures", "ReportCode", "ReportDesk", "ReportRepo",
           "ReportsError", "SalesRow", "StockCover", "parse_period", "period_between"]
