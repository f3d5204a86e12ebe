"""Why a report was refused: one code per refusal (`ReportCode`), raised as `ReportsError`."""
from __future__ import annotations

from enum import StrEnum

from core.errors import Refused


class ReportCode(StrEnum):
    """Why a report period was refused (a merchant's command shows it as `admin.error.<value>`)."""

    REPORT_BAD_PERIOD = "report_bad_period"  # params: text (what was asked); not today/7d/30d/D..D
    REPORT_BACKWARDS = "report_backwards"  # params: start, end; the range ends before it starts
    REPORT_TOO_LONG = "report_too_long"  # params: days, most; longer than MAX_DAYS
    REPORT_FUTURE = "report_future"  # params: start, today; the range starts after today
    REPORT_EXPORT_TOO_BIG = "report_export_too_big"  # params: period, most; more orders than one export takes


class ReportsError(Refused):
    """A report was refused; `code` is a ReportCode."""

    codes = ReportCode
    code: ReportCode
