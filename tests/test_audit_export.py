"""`run.py audit export --order ID` as the merchant runs it: a real process on the store's database, the trail as
evidence (every reveal with who, when, channel and chat; stable fields; UTC times; never a code)."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from core.admin import AdminService, Merchant
from tests.helpers import (
    buyer,
    import_n,
    open_shop,
    pay,
    product_id,
    run_cli,
    settle,
    sqlite_url_for,
    write_config,
)

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


async def _order_with_history(tmp_path: Path) -> tuple[str, list[str], str]:
    """A delivered order of two codes, shown again from three chats, looked at and refunded by a merchant:
    (order id, the plain codes, the other buyer's order id)."""
    async with open_shop(sqlite_url_for(tmp_path), tmp_path) as (app, notifier, _):
        await import_n(app, 6, prefix="EVIDENCE")
        pid = await product_id(app)
        ann, bob = buyer("ann"), buyer("bob")
        order = await app.shop.reserve(ann, pid, 2, "en", chat_id="chat-ann")
        other = await app.shop.reserve(bob, pid, 1, "en")
        assert (await pay(app, order)).outcome == "delivered"
        assert (await pay(app, other)).outcome == "delivered"
        await settle(app)
        for chat in ("chat-ann", "group-42", "chat-ann-2"):
            await app.shop.reveal(order.id, ann, chat=chat)
        await app.shop.reveal(other.id, bob)  # another order's reveal: not in this export
        admin = AdminService(app.shop)
        boss = Merchant("telegram", "1")
        await admin.order(boss, order.id)
        await admin.refund(boss, order.id)
        await settle(app)
        codes = [c for d in notifier.delivered_to("chat-ann") for c in d.codes]
        assert len(codes) == 2
        return order.id, codes, other.id


async def test_given_an_order_shown_again_from_three_chats_when_exported_as_json_then_every_reveal_is_there(
        tmp_path: Path) -> None:
    order_id, codes, other_id = await _order_with_history(tmp_path)
    cfg = write_config(tmp_path)

    done = run_cli(cfg, "audit", "export", "--order", order_id)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert list(data) == ["format", "exported_at", "order", "payments", "codes", "entries"]
    assert data["order"]["id"] == order_id and data["order"]["buyer"] == "test:uann"
    assert data["order"]["status"] == "refunded" and ISO_UTC.match(data["order"]["paid_at"])
    assert [p["status"] for p in data["payments"]] == ["refunded"]

    entries = data["entries"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert all(list(e) == ["seq", "at", "action", "actor", "channel", "chat", "order_id", "product_id", "sku",
                           "code_id", "code_ref", "detail"] for e in entries)
    assert all(ISO_UTC.match(e["at"]) for e in entries)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    reveals = [e for e in entries if e["action"] == "reveal"]
    assert [(r["actor"], r["channel"], r["chat"], r["detail"]["codes"]) for r in reveals] == [
        ("test:uann", "test", "chat-ann", 2), ("test:uann", "test", "group-42", 2),
        ("test:uann", "test", "chat-ann-2", 2)]
    assert [e["action"] for e in entries] == ["deliver", "reveal", "reveal", "reveal", "admin", "admin", "refund"]
    assert [e["detail"].get("command") for e in entries if e["action"] == "admin"] == ["order", "refund"]
    assert all(e["order_id"] == order_id for e in entries) and other_id not in done.stdout

    # Codes appear only as references: row id and fingerprint prefix.
    assert [c["status"] for c in data["codes"]] == ["burned", "burned"]
    assert all(re.fullmatch(r"#\d+ fp:[0-9a-f]{16}", c["ref"]) for c in data["codes"])
    for code in codes:
        assert code not in done.stdout and code not in done.stderr
        assert code.removeprefix("EVIDENCE-") not in done.stdout

    # The export is itself on the record, and a second export shows the first.
    again = json.loads(run_cli(cfg, "audit", "export", "--order", order_id.lower()).stdout)
    assert again["entries"][:-1] == entries
    assert again["entries"][-1]["action"] == "export" and again["entries"][-1]["actor"] == "cli"
    assert again["entries"][-1]["detail"] == {"entries": len(entries), "format": "json"}


async def test_given_an_order_when_exported_as_csv_to_a_file_then_one_row_per_entry_in_a_fixed_column_order(
        tmp_path: Path) -> None:
    order_id, codes, _ = await _order_with_history(tmp_path)
    cfg = write_config(tmp_path)
    out = tmp_path / "evidence.csv"

    done = run_cli(cfg, "audit", "export", "--order", order_id, "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"order {order_id}: 7 audit entries written to {out} (csv)" in done.stdout
    text = out.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["seq", "at", "action", "actor", "channel", "chat", "order_id", "product_id", "sku",
                       "code_id", "code_ref", "detail"]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [r["action"] for r in body].count("reveal") == 3
    assert [r["chat"] for r in body if r["action"] == "reveal"] == ["chat-ann", "group-42", "chat-ann-2"]
    assert all(ISO_UTC.match(r["at"]) for r in body) and all(r["sku"] == "CARD-10" for r in body)
    assert json.loads(body[0]["detail"]) == {"chat": "chat-ann", "codes": 2}
    for code in codes:
        assert code not in text


def test_given_an_unknown_order_when_exported_then_it_is_refused_naming_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    done = run_cli(cfg, "audit", "export", "--order", "261125NOSUCH00")
    assert done.returncode == 2
    assert "no order '261125NOSUCH00'" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


async def test_given_chat_names_that_look_like_formulas_when_exported_as_csv_then_a_spreadsheet_shows_them_as_text(
        tmp_path: Path) -> None:
    chats = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-1001234567890", "@SUM(A1)", "\tx", "\rx",
             "chat-ok"]
    async with open_shop(sqlite_url_for(tmp_path), tmp_path) as (app, _, _):
        await import_n(app, 2, prefix="FORMULA")
        order = await app.shop.reserve(buyer("eve"), await product_id(app), 1, "en")
        assert (await pay(app, order)).outcome == "delivered"
        await settle(app)
        for chat in chats:  # given the codes shown again from chats with such names
            await app.shop.reveal(order.id, buyer("eve"), chat=chat)
    cfg = write_config(tmp_path)
    out = tmp_path / "evidence.csv"
    # when the order's trail is exported as CSV
    done = run_cli(cfg, "audit", "export", "--order", order.id, "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as fh:  # as the csv module wants: a CR in a cell stays one
        rows = list(csv.reader(fh))
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    # then every such cell starts with a quote (text, not a formula); numbers and the rest are as they were
    assert [r["chat"] for r in body if r["action"] == "reveal"] == ["'" + c for c in chats[:-1]] + ["chat-ok"]
    assert [cell for r in rows for cell in r if cell.startswith(("=", "+", "-", "@", "\t", "\r"))] == []
    assert [r["seq"] for r in body] == [str(i) for i in range(1, len(body) + 1)]
    # and the JSON export keeps the evidence exactly as recorded
    data = json.loads(run_cli(cfg, "audit", "export", "--order", order.id).stdout)
    assert [e["chat"] for e in data["entries"] if e["action"] == "reveal"] == chats
