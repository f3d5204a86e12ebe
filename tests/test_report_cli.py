"""`run.py report` as a real process: the figures of a seeded month in the terminal and in a CSV file whose cells
cannot run as spreadsheet formulas, and refusals for periods that make no sense."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from storage import tables as t
from storage.db import Database
from tests.dbtemplate import from_template
from tests.helpers import run_cli, sqlite_url_for, write_config
from tests.test_reports import SH, Seed, _expected, _load, _seed


async def _seeded(tmp_path: Path) -> list[Seed]:
    seeds = _seed()
    db = Database(from_template(sqlite_url_for(tmp_path)))
    try:
        await _load(db, seeds, stock=False)
        at = datetime(2026, 10, 1, tzinfo=UTC)
        async with db.write_engine.begin() as conn:  # a product whose SKU would be a formula in a spreadsheet
            await conn.execute(insert(t.products).values(
                id=9, sku="=HYPERLINK(1)", kind="code", title={"en": "x"}, description={}, category={}, price=1,
                currency="CNY", stars=None, min_qty=1, max_qty=1, hold_minutes=None, active=True, rules={},
                position=9, created_at=at, updated_at=at))
            await conn.execute(insert(t.orders).values(
                id="formula", buyer_channel="telegram", buyer_id="f", chat_id="f", product_id=9, qty=1, unit_price=1,
                amount=1, currency="CNY", stars=None, status="delivered", language="en", created_at=at,
                expires_at=at, paid_at=datetime(2026, 11, 15, tzinfo=SH)))
    finally:
        await db.dispose()
    return seeds


async def test_report_prints_the_months_figures_and_writes_a_safe_csv(tmp_path: Path) -> None:
    seeds = await _seeded(tmp_path)
    cfg = write_config(tmp_path, extra={"jobs": {"timezone": "Asia/Shanghai"}})
    out = tmp_path / "november.csv"
    done = run_cli(cfg, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--csv", str(out))
    assert done.returncode == 0, done.stderr
    want = _expected(seeds)
    paid = want["paid"] + 1  # type: ignore[operator]
    assert done.stdout.startswith(f"2026-11-01..2026-11-30 (Asia/Shanghai): {paid} orders paid"), done.stdout
    assert f"written to {out}" in done.stdout
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == ["figure", "key", "currency", "value"]
    figures = {(r[0], r[1], r[2]): r[3] for r in rows[1:]}
    assert figures[("orders_paid", "", "")] == str(paid)
    revenue = want["revenue"]
    assert figures[("revenue", "", "XTR")] == str(revenue["XTR"])  # type: ignore[index]
    cny = revenue["CNY"] + 1  # type: ignore[index]
    assert figures[("revenue", "", "CNY")] == f"{cny // 100}.{cny % 100:02d}"
    assert ("product_revenue", "'=HYPERLINK(1)", "CNY") in figures  # neutralised, shown as text
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    days = {k[1] for k in figures if k[0] == "daily_revenue" and k[2] == "CNY"}
    assert days == {d.isoformat() for d, per in want["daily"].items() if "CNY" in per}  # type: ignore[attr-defined]


def test_report_refuses_periods_that_make_no_sense(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    backwards = run_cli(cfg, "report", "--from", "2026-11-30", "--to", "2026-11-01")
    assert backwards.returncode == 2 and "(report_backwards)" in backwards.stderr
    long = run_cli(cfg, "report", "--period", "2016-01-01..2026-01-01")
    assert long.returncode == 2 and "at most 366 days" in long.stderr
    garbage = run_cli(cfg, "report", "--period", "lastweek")
    assert garbage.returncode == 2 and "Not a period: lastweek" in garbage.stderr
    half = run_cli(cfg, "report", "--from", "2026-11-01")
    assert half.returncode == 2 and "--from and --to together" in half.stderr
    week = run_cli(cfg, "report")
    assert week.returncode == 0 and "0 orders paid" in week.stdout, week.stderr
