"""`logging.format: json`: one JSON object per line, carrying the order and the update it belongs to; never a code."""
from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

from app.logs import JsonFormatter, handler
from core.logcontext import log_context
from tests.helpers import buyer, import_n, open_shop, pay, product_id, settle


def capture() -> tuple[io.StringIO, logging.Handler]:
    buf = io.StringIO()
    h = handler("json", buf)
    logging.getLogger().addHandler(h)
    return buf, h


async def test_given_json_logs_then_a_purchase_logs_parseable_lines_with_its_order_id_and_no_code(
        sqlite_url: str, tmp_path: Path) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    buf, h = capture()
    try:
        async with open_shop(sqlite_url, tmp_path) as (app, notifier, _):
            await app.shop.start()
            codes = await import_n(app, 4)
            with log_context(channel="telegram", update_id=9001):  # as a webhook update is handled
                order = await app.shop.reserve(buyer(1), await product_id(app), 2, "en")
                await pay(app, order)
            await settle(app)
            delivered = notifier.codes()
            assert len(delivered) == 2
    finally:
        root.removeHandler(h)
        root.setLevel(level)
    lines = [line for line in buf.getvalue().splitlines() if line]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    paid = [r for r in records if r.get("order_id") == order.id]
    assert paid, records
    assert any(r.get("channel") == "telegram" and r.get("update_id") == 9001 for r in paid)
    for code in codes:
        assert code not in buf.getvalue()


def test_json_lines_carry_an_extra_order_id_and_the_exception() -> None:
    fmt = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("core.outbox").makeRecord(
            "core.outbox", logging.ERROR, __file__, 1, "delivery of %s failed", ("O-1",), exc_info=sys.exc_info(),
            extra={"order_id": "O-1"})
    data = json.loads(fmt.format(record))
    assert data["message"] == "delivery of O-1 failed" and data["order_id"] == "O-1"
    assert data["level"] == "ERROR" and data["logger"] == "core.outbox"
    assert "ValueError: boom" in data["exc"]
    assert "channel" not in data  # nothing known, nothing invented
