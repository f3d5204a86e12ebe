"""Plain codes exist only in memory: never in the database files, the logs, or an object's repr."""
from __future__ import annotations

import base64
import codecs
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import App
from app.logs import LIBRARY_LOG_FLOORS, quiet_libraries
from core.clock import FakeClock
from core.models import Buyer
from core.ports import Delivery
from handlers.customer import CustomerFlow
from handlers.screen import Screen
from locales import Translator
from storage import tables as t
from tests.helpers import (
    CHANNEL,
    PROVIDER,
    SKU,
    RecordingGateway,
    RecordingNotifier,
    buyer,
    code_lines,
    import_lines,
    import_n,
    make_settings,
    open_shop,
    pay,
    product_id,
    run_cli,
    settle,
    sqlite_url_for,
    write_config,
)
from tests.telegram_harness import TOKEN, Shopfront, fake_api


def secret_codes(n: int) -> list[str]:
    return [f"SECRET-{uuid.uuid4()}" for _ in range(n)]


def forms(code: str) -> list[bytes]:
    """Byte patterns the code would leave if stored plainly, as UTF-16, hex, or base64 (any alignment)."""
    raw = code.encode()
    out = [raw, code.encode("utf-16-le"), code.encode("utf-16-be"), raw.hex().encode(), raw.hex().upper().encode()]
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw)
        out.append(enc[4:-4])  # the middle does not depend on what surrounds the code
        out.append(base64.urlsafe_b64encode(b"\0" * shift + raw)[4:-4])
    # The distinctive part alone (the uuid), in case a prefix was stripped or re-cased.
    uid = code.removeprefix("SECRET-").encode()
    out += [uid, uid.upper(), codecs.encode(code, "rot13").encode()]
    return out


def assert_absent(blob: bytes, codes: list[str], where: str) -> None:
    for code in codes:
        for form in forms(code):
            assert form not in blob, f"{code!r} found in {where} (as {form[:24]!r}...)"


async def dump_tables(app: Any) -> bytes:
    """Every row of every table, as bytes (text columns encoded, binary columns as they are)."""
    parts: list[bytes] = []
    async with app.db.uow() as uow:
        for table in t.metadata.sorted_tables:
            for row in await uow.codes.c.execute(select(table)):
                for value in row:
                    parts.append(value if isinstance(value, bytes) else repr(value).encode())
    return b"\n".join(parts)


class EchoingNotifier(RecordingNotifier):
    """A chat platform whose first attempt fails with an error that quotes the message it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        if self.failures == 0:
            self.failures += 1
            raise RuntimeError(f"400 Bad Request: cannot send message text={' '.join(delivery.codes)!r}")
        await super().deliver(recipient, delivery)


async def _trade(app: Any, codes: list[str], clock: FakeClock) -> list[str]:
    """Import the codes, sell some (with a retried delivery and a refund on the way), reveal; returns sold codes."""
    report = await import_lines(app, code_lines(codes))
    assert report.imported == len(codes)
    pid = await product_id(app)
    orders = [await app.shop.reserve(buyer(i), pid, 2, "en") for i in range(5)]
    for o in orders:
        assert (await pay(app, o)).outcome == "delivered"
    await pay(app, orders[0], "tx-again")  # paid twice: refunded
    await settle(app)
    clock.advance(minutes=10)  # the failed delivery is due again
    await settle(app)
    for o in orders:
        await app.shop.reveal(o.id, o.buyer)
    notifier = app.shop.notifiers[CHANNEL]
    sold = notifier.codes()
    assert len(sold) == 10 and set(sold) <= set(codes)
    return sold


async def test_given_codes_bought_and_delivered_when_the_sqlite_files_are_read_then_no_code_is_in_them(
        tmp_path: Path) -> None:
    url = sqlite_url_for(tmp_path)
    db_file = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    codes = secret_codes(40)
    clock = FakeClock()
    async with open_shop(url, tmp_path, clock=clock) as (app, _, _):
        echo = EchoingNotifier()
        app.shop.add_notifier(CHANNEL, echo)
        app.shop.dispatcher.notifiers = app.shop.notifiers
        await _trade(app, codes, clock)
        assert echo.failures == 1
        # Before any checkpoint: the recent writes live in the WAL.
        assert wal.exists() and wal.stat().st_size > 0
        assert_absent(db_file.read_bytes(), codes, "the database file")
        assert_absent(wal.read_bytes(), codes, "the WAL")
        assert_absent(await dump_tables(app), codes, "the tables")
    # After closing (checkpointed into the main file).
    assert_absent(db_file.read_bytes(), codes, "the database file after close")
    if wal.exists():
        assert_absent(wal.read_bytes(), codes, "the WAL after close")
    for f in tmp_path.iterdir():
        if f.is_file():
            assert_absent(f.read_bytes(), codes, f.name)


async def test_given_codes_bought_and_delivered_when_every_table_is_read_then_no_code_is_stored_plainly(
        db_url: str, tmp_path: Path) -> None:
    codes = secret_codes(20)
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        echo = EchoingNotifier()
        app.shop.add_notifier(CHANNEL, echo)
        app.shop.dispatcher.notifiers = app.shop.notifiers
        await _trade(app, codes, clock)
        assert_absent(await dump_tables(app), codes, "the tables")
        # The merchant still learns what kind of error the first attempt met; its text (which quoted the
        # message, codes included) is not stored.
        async with app.db.uow() as uow:
            errors = list((await uow.codes.c.execute(select(t.outbox.c.last_error)
                                                     .where(t.outbox.c.last_error.is_not(None)))).scalars())
        assert errors == ["RuntimeError"]


async def test_given_the_whole_trade_when_logging_at_debug_then_no_code_appears_in_the_log(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    codes = secret_codes(20)
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        echo = EchoingNotifier()
        app.shop.add_notifier(CHANNEL, echo)
        app.shop.dispatcher.notifiers = app.shop.notifiers
        await _trade(app, codes, clock)
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    text = "\n".join([caplog.text] + [r.getMessage() for r in caplog.records]
                     + [repr(r.args) for r in caplog.records] + [str(r.exc_info) for r in caplog.records])
    assert_absent(text.encode(), codes, "the log")


def test_given_an_import_through_the_cli_at_debug_level_then_its_output_holds_no_code(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra={"logging": {"level": "DEBUG"}})
    codes = secret_codes(30)
    f = tmp_path / "codes.txt"
    # Good codes, a duplicate, and a rejected line that still looks like a code.
    f.write_bytes(b"".join(code_lines(codes)) + code_lines(codes[:1])[0] + b"SECRET-\x01" + codes[0].encode() + b"\n")
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 1, done.stderr
    assert "imported 30, duplicates 1, rejected 1" in done.stdout
    assert "DEBUG" in done.stderr or "INFO" in done.stderr  # logging was on
    assert_absent((done.stdout + done.stderr).encode(), codes, "the CLI output")
    stock = run_cli(cfg, "stock")
    assert_absent((stock.stdout + stock.stderr).encode(), codes, "the stock output")


async def test_given_a_delivered_order_then_the_reprs_of_what_carries_codes_do_not_show_them(
        db_url: str, tmp_path: Path) -> None:
    codes = secret_codes(3)
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await import_lines(app, code_lines(codes))
        who = Buyer(CHANNEL, "alice")
        order = await app.shop.reserve(who, await product_id(app), 2, "en")
        await pay(app, order)
        await settle(app)
        [(_, delivery)] = notifier.deliveries
        _, product, shown = await app.shop.reveal(order.id, who)
        assert shown == delivery.codes and len(shown) == 2

        async with app.db.uow() as uow:
            stored = (await uow.codes.for_orders([order.id]))[order.id]
        flow = CustomerFlow(app.shop, Translator(["en", "zh_CN"], "en"), shop_name="Shop")
        screen = flow.render_delivery(delivery)
        assert isinstance(screen, Screen) and screen.secrets == delivery.codes
        audit = await app.shop.audit_for(order.id)
        assert {e.action for e in audit} >= {"deliver", "reveal"}

        for what, obj in [("Screen", screen), ("StoredCode", stored), ("audit", audit), ("Delivery", delivery),
                          ("Order", order), ("Product", product)]:
            assert_absent(repr(obj).encode(), codes, f"repr({what})")
            assert_absent(str(obj).encode(), codes, f"str({what})")


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_given_a_telegram_purchase_with_the_store_logging_at_debug_then_no_code_or_token_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, library: str) -> None:
    """The store's logging set-up (app/logs.py) keeps the libraries that log whole requests (PTB at DEBUG) or the
    bot token (httpx at INFO) above those levels, whatever `logging.level` says."""
    caplog.set_level(logging.DEBUG)
    # every logger quiet_libraries touches is put back (wechatpy at INFO broke a later WeChat Pay logging test)
    saved = {name: logging.getLogger(name).level for name in LIBRARY_LOG_FLOORS}
    quiet_libraries()
    try:
        async for api in fake_api():
            async with Shopfront(api, tmp_path, library=library) as shop:
                codes = await shop.stock(1, prefix="SECRET-LOGGED")
                ann = api.user(701)
                vip = (await shop.app.shop.products())[0]
                await shop.send(api.message_update(ann, "/start"))
                await shop.send(api.callback_update(ann, f"buy:{vip.id}:1", api.last_message(701)))
                invoice = await api.wait_for("sendInvoice")
                order_id = invoice.params["payload"]
                await shop.send(api.pre_checkout_update(ann, order_id, 70))
                await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-log"))
                await api.wait_for("sendMessage", lambda c, code=codes[0]: code in c.params.get("text", ""))
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    text = "\n".join([caplog.text] + [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records])
    assert codes[0] not in text and TOKEN.split(":")[1] + "/" not in text


async def test_given_a_new_shop_its_data_directory_is_0700_and_the_database_and_key_files_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)  # the usual default: new files 0644 and directories 0755 unless asked otherwise
    try:
        # given a first start with data/ not there yet, and some writes (SQLite then has its -wal and -shm open)
        settings = make_settings(f"sqlite+aiosqlite:///{data / 'store.db'}", tmp_path, key_file=data / "vault.key")
        app = await App.open(settings, notifiers={CHANNEL: RecordingNotifier()},
                             gateways={PROVIDER: RecordingGateway()})
        try:
            await import_n(app, 3)
            modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in data.iterdir()}
        finally:
            await app.close()
    finally:
        os.umask(old)
    # then no other user of the machine can read the codes' ciphertexts, the orders or the key
    assert oct(stat.S_IMODE(data.stat().st_mode)) == "0o700"
    assert modes == {"store.db": "0o600", "store.db-wal": "0o600", "store.db-shm": "0o600", "vault.key": "0o600"}
