"""Every CSV file the store writes goes through `csv_text`, so none of them can carry a spreadsheet formula.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula when the file is opened
in Excel, LibreOffice or Google Sheets (CSV injection: `=HYPERLINK(...)` or DDE in a chat name, an account or a
note would run on the merchant's machine). Such text gets a leading single quote, which spreadsheets show as text
and do not evaluate. Numbers are left alone: they cannot be formulas, and a negative amount stays a number.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """The cell as written: None as empty, text that would start a formula quoted with a leading `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """A whole CSV file, every cell through csv_cell. Rows end with CRLF (RFC 4180, what spreadsheets expect):
    the csv module quotes a cell containing a line-end character only when it is in the line terminator, and a
    bare CR left unquoted would split the row in two for every reader."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        w.writerow([csv_cell(v) for v in row])
    return buf.getvalue()
