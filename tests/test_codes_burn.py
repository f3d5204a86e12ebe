"""`run.py codes burn SKU FILE`: codes a supplier recalled, run as a real process against the store's database.
Unsold codes are burned; buyers of sold ones get a replacement through the outbox (once), or a refund when the
pool has none; the orders' trails show it; the plain codes never reach the database, the output or the log."""
from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import (
    buyer,
    import_n,
    open_shop,
    order_status,
    pay,
    product_id,
    run_cli,
    settle,
    sqlite_url_for,
    stock_of,
    write_config,
)
from tests.test_secrets_at_rest import assert_absent, dump_tables


def _summary(stdout: str) -> tuple[int, int, int, int]:
    m = re.search(r"^CARD-10: burned available (\d+), reissued (\d+), refunded (\d+), not found (\d+)", stdout,
                  re.MULTILINE)
    assert m, stdout
    return int(m[1]), int(m[2]), int(m[3]), int(m[4])


async def test_given_sold_and_unsold_recalled_codes_when_burned_then_buyers_are_reissued_once_or_refunded(
        tmp_path: Path) -> None:
    url = sqlite_url_for(tmp_path)
    # Given: 7 codes; Ann bought 1, Bob bought 2; 4 are left in the pool.
    async with open_shop(url, tmp_path) as (app, notifier, _):
        codes = await import_n(app, 7, prefix="SECRET")
        pid = await product_id(app)
        ann, bob = buyer("ann"), buyer("bob")
        a = await app.shop.reserve(ann, pid, 1, "en", chat_id="chat-ann")
        b = await app.shop.reserve(bob, pid, 2, "zh_CN", chat_id="chat-bob")
        await pay(app, a)
        await pay(app, b)
        await settle(app)
        ann_code = notifier.delivered_to("chat-ann")[0].codes
        bob_codes = notifier.delivered_to("chat-bob")[0].codes
        unsold = [c for c in codes if c not in ann_code + bob_codes]
        assert len(unsold) == 4
    cfg = write_config(tmp_path)

    # When: the supplier recalls Ann's code, one of Bob's, one unsold code, and one the shop never had.
    recall = tmp_path / "recall.txt"
    recall.write_text(f"{ann_code[0]}\n{bob_codes[1]}\n\n{unsold[0]}\nNEVER-HAD-IT\n{ann_code[0]}\n")
    done = run_cli(cfg, "codes", "burn", "CARD-10", str(recall))
    assert done.returncode == 1, done.stderr  # one code was not found
    assert _summary(done.stdout) == (1, 2, 0, 1)
    assert "burn CARD-10" in done.stderr and "100%" in done.stderr  # the progress bar
    assert "aftersales.alert.burned" in done.stderr and a.id in done.stderr  # the merchants' alert (log)
    for code in codes:
        assert code not in done.stdout and code not in done.stderr

    # Then: the running store sends each buyer "recalled" and the replacement, once.
    async with open_shop(url, tmp_path) as (app, notifier, gateway):
        await settle(app)
        await settle(app)
        ann_new = notifier.delivered_to("chat-ann")
        bob_new = notifier.delivered_to("chat-bob")
        assert len(ann_new) == 1 and len(bob_new) == 1
        assert len(ann_new[0].codes) == 1 and len(bob_new[0].codes) == 1
        replacements = ann_new[0].codes + bob_new[0].codes
        assert set(replacements) <= set(unsold[1:]) and len(set(replacements)) == 2
        told = notifier.notices_to("chat-ann", "aftersales.recalled")
        assert [n.params for n in told] == [{"order": a.id, "n": 1}]
        assert [n.params for n in notifier.notices_to("chat-bob", "aftersales.recalled")] == [{"order": b.id, "n": 1}]
        assert gateway.refunds == []
        # "My orders" shows the codes that work now: the recalled one is gone.
        assert (await app.shop.reveal(a.id, ann))[2] == ann_new[0].codes
        assert sorted((await app.shop.reveal(b.id, bob))[2]) == sorted([bob_codes[0], bob_new[0].codes[0]])
        # The pool lost the burned unsold code and the two replacements.
        assert await stock_of(app) == (1, 0, 3)
        # The order's history shows the recall and the reissue.
        trail = await app.shop.audit_for(a.id)
        recall_entry = next(e for e in trail if e.action == "recall")
        assert recall_entry.detail["outcome"] == "reissued" and recall_entry.actor == "cli"
        assert [e.detail.get("reissue") for e in trail if e.action == "deliver"] == [None, True]
        assert await order_status(app, a.id) == "delivered"

    # When the pool has no replacement left (the last unsold code is recalled too, then Ann's new code):
    last = [c for c in unsold[1:] if c not in replacements]
    recall2 = tmp_path / "recall2.csv"
    recall2.write_text(f"code,note\n{last[0]},batch 7\n{ann_new[0].codes[0]},batch 7\n")
    done = run_cli(cfg, "codes", "burn", "CARD-10", str(recall2))
    assert done.returncode == 0, done.stderr
    assert _summary(done.stdout) == (1, 0, 1, 0)

    # Then Ann is refunded through the existing refund path, and told why.
    async with open_shop(url, tmp_path) as (app, notifier, gateway):
        await settle(app)
        assert gateway.refunded_txns() == [f"txn-{a.id}"]
        assert [(n.key, n.params["reason"]) for n in notifier.notices_to("chat-ann")] == [("refund.done", "recalled")]
        assert notifier.deliveries == []
        assert await order_status(app, a.id) == "refunded" and await order_status(app, b.id) == "delivered"
        assert await stock_of(app) == (0, 0, 2)
        outcomes = [e.detail["outcome"] for e in await app.shop.audit_for(a.id) if e.action == "recall"]
        assert outcomes == ["reissued", "refunding"]
        # Burning the same file again changes nothing.
        blob = await dump_tables(app)
    again = run_cli(cfg, "codes", "burn", "CARD-10", str(recall2))
    assert again.returncode == 0 and _summary(again.stdout) == (0, 0, 0, 0)
    assert "already burned 2" in again.stdout

    # No plain code anywhere in the database.
    assert_absent(blob, codes, "the database")
    for f in tmp_path.glob("store.db*"):
        assert_absent(f.read_bytes(), codes, f.name)


async def test_given_an_unpaid_order_holding_a_recalled_code_when_burned_then_its_hold_gets_another_code(
        tmp_path: Path) -> None:
    url = sqlite_url_for(tmp_path)
    async with open_shop(url, tmp_path) as (app, _, _):
        codes = await import_n(app, 2, prefix="HELD")
        order = await app.shop.reserve(buyer("cy"), await product_id(app), 1, "en")
        held_code = codes[0]  # codes are picked in the order they were imported
    recall = tmp_path / "recall.txt"
    recall.write_text(held_code + "\n")
    done = run_cli(write_config(tmp_path), "codes", "burn", "CARD-10", str(recall))
    assert done.returncode == 0, done.stderr
    assert "held orders swapped 1" in done.stdout
    async with open_shop(url, tmp_path) as (app, notifier, _):
        assert (await pay(app, order)).outcome == "delivered"
        await settle(app)
        assert notifier.codes() == [codes[1]]


def test_given_an_unknown_sku_or_a_missing_file_when_burning_then_nothing_is_burned(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    f = tmp_path / "recall.txt"
    f.write_text("X-1\n")
    done = run_cli(cfg, "codes", "burn", "NO-SUCH", str(f))
    assert done.returncode == 2 and "NO-SUCH" in done.stderr and "nothing burned" in done.stderr
    done = run_cli(cfg, "codes", "burn", "CARD-10", str(tmp_path / "nope.txt"))
    assert done.returncode == 2 and "nope.txt" in done.stderr and "Traceback" not in done.stderr
