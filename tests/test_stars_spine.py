"""Stars payments through the one payment entry: a payment whose update was lost is found by the Stars
reconciliation, a payment update is not confirmed to Telegram before it is recorded (a killed store loses
nothing), an earlier refund that went through is done, and a blacklisted payer is never delivered to.
Both libraries, the local fake Bot API, a real SQLite store (a real process where the store is killed)."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.clock import FakeClock
from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import TOKEN, UNPACED, Shopfront, buttons, data_of
from tests.test_telegram_storefront import browse_to_product, buy

ROOT = Path(__file__).resolve().parents[1]


def spoilers(api: FakeBotAPI, chat: int, mark: int = 0) -> list[object]:
    return [c for c in api.calls_since(mark, "sendMessage")
            if c.params["chat_id"] == chat and "tg-spoiler" in c.params.get("text", "")]


async def to_invoice(shop: Shopfront, user: dict) -> str:
    invoice, _ = await buy(shop, user, await browse_to_product(shop, user))
    mark = shop.api.mark()
    await shop.send(shop.api.pre_checkout_update(user, invoice["payload"], 70))
    assert (await shop.api.wait_for("answerPreCheckoutQuery", since=mark)).params["ok"] is True
    return invoice["payload"]


async def test_given_a_successful_payment_update_that_never_came_when_stars_are_reconciled_then_it_is_delivered_once(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(2)
        ann = api.user(601, "Ann")
        order_id = await to_invoice(shop, ann)
        lost = api.successful_payment_update(ann, order_id, 70, "charge-lost")  # paid; the update is lost

        mark = api.mark()
        assert await shop.app.shop.payments.reconcile_stars(shop.runtime.port) == 1
        delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
        assert delivery.params["chat_id"] == 601 and codes[0] in delivery.params["text"]

        # Nothing is found twice: not by the next run, not when the lost update turns up after all.
        assert await shop.app.shop.payments.reconcile_stars(shop.runtime.port) == 0
        await shop.send(lost)
        await asyncio.sleep(0.3)
        assert len(spoilers(api, 601)) == 1 and api.calls("refundStarPayment") == []
        async with shop.app.db.uow() as uow:
            assert len(await uow.payments.existing([("telegram_stars", "charge-lost")])) == 1


async def test_given_a_lost_payment_for_a_lapsed_hold_without_stock_then_reconciliation_refunds_it(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    clock = FakeClock()
    async with Shopfront(api, tmp_path, clock, library=library) as shop:
        await shop.stock(1)
        ann, bob = api.user(602, "Ann"), api.user(603, "Bob")
        order_id = await to_invoice(shop, ann)
        api.successful_payment_update(ann, order_id, 70, "charge-late")  # the update never reaches the store
        clock.advance(minutes=16)
        await shop.app.shop.expire_holds()
        await buy(shop, bob, await browse_to_product(shop, bob))  # Bob holds the only code

        mark = api.mark()
        assert await shop.app.shop.payments.reconcile_stars(shop.runtime.port) == 1
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params == {"user_id": 602, "telegram_payment_charge_id": "charge-late"}
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 602, since=mark)
        assert "stock ran out" in told.params["text"]


async def test_reconciliation_pages_from_its_checkpoint_and_skips_what_is_not_an_invoice_payment(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(1)
        stranger = api.user(604, "Gift giver")
        for i in range(130):  # Stars the bot got without an invoice (gifts, paid media): not ours to decide
            api.star_transactions.append({"id": f"gift-{i}", "amount": 5, "date": int(time.time()),
                                          "source": {"type": "user", "transaction_type": "gift_purchase",
                                                     "user": stranger}})
        desk, port = shop.app.shop.payments, shop.runtime.port
        mark = api.mark()
        assert await desk.reconcile_stars(port) == 0
        assert [c.params.get("offset", 0) for c in api.calls_since(mark, "getStarTransactions")] == [0, 100]

        ann = api.user(605, "Ann")
        order_id = await to_invoice(shop, ann)
        api.successful_payment_update(ann, order_id, 70, "charge-after-gifts")
        mark = api.mark()
        assert await desk.reconcile_stars(port) == 1  # starts where the last run stopped
        assert [c.params.get("offset") for c in api.calls_since(mark, "getStarTransactions")] == [130]
        await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)


async def test_transactions_from_before_the_store_are_never_refunded(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        old = api.user(606, "Old customer")
        api.star_transactions.append({"id": "charge-2019", "amount": 50, "date": 1_560_000_000,
                                      "source": {"type": "user", "transaction_type": "invoice_payment",
                                                 "user": old, "invoice_payload": "another-shop-order"}})
        assert await shop.app.shop.payments.reconcile_stars(shop.runtime.port) == 0
        await asyncio.sleep(0.2)
        assert api.calls("refundStarPayment") == []


async def test_given_a_refund_that_went_through_before_when_telegram_says_already_refunded_then_it_is_done(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        ann = api.user(607, "Ann")
        order_id = await to_invoice(shop, ann)
        await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-1"))
        # A second charge for the same order is given back; Telegram already did (the store crashed before it
        # could record its own earlier refundStarPayment call).
        second = api.successful_payment_update(ann, order_id, 70, "charge-2")
        api._charges["charge-2"]["refunded"] = True  # noqa: SLF001 - the earlier refund, as Telegram knows it
        mark = api.mark()
        await shop.send(second)
        failed = await api.wait_for("refundStarPayment", since=mark)
        assert failed.status == 400  # CHARGE_ALREADY_REFUNDED
        told = await api.wait_for("sendMessage",
                                  lambda c: c.params["chat_id"] == 607 and "refunded" in c.params["text"], since=mark)
        assert "already paid" in told.params["text"]
        async with shop.app.db.uow() as uow:
            (payment,) = (await uow.payments.existing([("telegram_stars", "charge-2")])).values()
        assert payment.status == "refunded"
        assert len(api.calls_since(mark, "refundStarPayment")) == 1  # done, not retried forever


async def test_given_a_banned_payer_then_pre_checkout_refuses_and_a_payment_that_came_anyway_is_refunded(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, admins=[1]) as shop:
        await shop.stock(2)
        ann = api.user(608, "Ann")
        invoice, _ = await buy(shop, ann, await browse_to_product(shop, ann))
        order_id = invoice["payload"]
        await shop.app.shop.risk.ban("payer", "telegram:608", Buyer("telegram", "1"), "chargebacks")

        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 70))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is False and "cannot be accepted" in answer.params["error_message"]

        # Telegram took the money anyway (the ban landed between pre-checkout and payment): refunded, audited.
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-banned"))
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params["telegram_payment_charge_id"] == "charge-banned"
        await asyncio.sleep(0.2)
        assert spoilers(api, 608) == []
        async with shop.app.db.uow() as uow:
            order = await uow.orders.get(order_id)
            refused = await uow.audit.latest("payment_refused")
        assert order.status.value == "held"
        assert [(e.actor, e.order_id, e.detail["bans"]) for e in refused] == [("telegram:608", order_id, ["payer"])]


async def test_given_a_banned_phone_when_a_buyer_who_bound_it_pays_then_the_payment_is_refunded(
        api: FakeBotAPI, tmp_path: Path) -> None:
    """The payer is a person: a ban of their bound phone (or of an account linked to theirs) holds at payment."""
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(2)
        ann = api.user(609, "Ann")
        order_id = await to_invoice(shop, ann)
        await shop.app.shop.risk.bind_phone(Buyer("telegram", "609"), "+8613800138000")
        await shop.app.shop.risk.ban("phone", "+8613800138000", Buyer("telegram", "1"), "fraud ring")
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-phone"))
        await api.wait_for("refundStarPayment", since=mark)
        await asyncio.sleep(0.2)
        assert spoilers(api, 609) == []
        async with shop.app.db.uow() as uow:
            (refused,) = await uow.audit.latest("payment_refused")
        assert refused.detail["bans"] == ["phone"]


# -- a real store process, killed ------------------------------------------------------------------------------

def store_config(api: FakeBotAPI, tmp_path: Path, library: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"name": "Crash shop"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "logging": {"level": "WARNING"},
        "telegram": {"token": TOKEN, "api_base": api.base, "library": library, "limits": UNPACED},
        "jobs": {"reconcile_stars_seconds": 3600},  # only the polling fix is under test here
        "catalog": [{"sku": "GAME", "title": "Game card", "price": 1000, "stars": 70}],
    }))
    codes = tmp_path / "codes.txt"
    codes.write_text("".join(f"KILL-{i:03d}\n" for i in range(3)))
    subprocess.run([sys.executable, "run.py", "--config", str(cfg), "codes", "import", "GAME", str(codes)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    return cfg


async def start_store(api: FakeBotAPI, cfg: Path, log: Path) -> subprocess.Popen:
    polls = api.polls
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "run.py", "--config", str(cfg)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    await api.wait_polling(polls, timeout=60)
    return proc


async def test_given_a_busy_database_then_a_stars_payment_is_confirmed_only_once_recorded_and_a_kill_loses_nothing(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    cfg = store_config(api, tmp_path, library)
    log = tmp_path / "store.log"
    proc = await start_store(api, cfg, log)
    lock = None
    try:
        ann, chat = api.user(700, "Ann"), {"id": 700, "type": "private"}
        mark = api.mark()
        api.push_update(api.message_update(ann, "/start"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 700, since=mark, timeout=30)
        mark = api.mark()
        api.push_update(api.callback_update(ann, data_of(menu, buttons(menu)[0]["text"]), api.last_message(700)))
        listing = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 700, since=mark, timeout=30)
        mark = api.mark()
        api.push_update(api.callback_update(ann, buttons(listing)[0]["callback_data"], api.last_message(700)))
        page = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 700, since=mark, timeout=30)
        mark = api.mark()
        api.push_update(api.callback_update(ann, next(b["callback_data"] for b in buttons(page)
                                                      if b.get("callback_data", "").startswith("buy:")),
                                            {"message_id": page.result["message_id"], "chat": chat, "date": 0}))
        invoice = await api.wait_for("sendInvoice", since=mark, timeout=30)
        order_id = invoice.params["payload"]
        mark = api.mark()
        api.push_update(api.pre_checkout_update(ann, order_id, 70))
        assert (await api.wait_for("answerPreCheckoutQuery", since=mark, timeout=30)).params["ok"] is True

        # Another connection holds SQLite's write lock: the store cannot record the payment for now.
        lock = sqlite3.connect(tmp_path / "store.db", timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        paid = api.push_update(api.successful_payment_update(ann, order_id, 70, "charge-kill"))
        with pytest.raises(TimeoutError):  # polling goes on, but this update is not confirmed to Telegram
            await api.wait_confirmed(paid, timeout=3.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if lock is not None:
            lock.rollback()
            lock.close()

    # Restarted, the store gets the unconfirmed update again: the code is delivered, once.
    mark = api.mark()
    proc = await start_store(api, cfg, log)
    try:
        delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params.get("text", ""),
                                      since=mark, timeout=60)
        assert delivery.params["chat_id"] == 700 and "KILL-000" in delivery.params["text"]
        await api.wait_confirmed(paid, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with sqlite3.connect(tmp_path / "store.db") as db:
        rows = db.execute("SELECT provider_txn_id, status FROM payments").fetchall()
        status = db.execute("SELECT status FROM orders WHERE id = ?", (order_id,)).fetchone()
    assert rows == [("charge-kill", "captured")] and status == ("delivered",), log.read_text()[-3000:]
