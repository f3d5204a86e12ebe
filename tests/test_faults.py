"""Faults from the outside world: slow chat platforms, broken rows, dropped connections, odd input."""
from __future__ import annotations

import asyncio
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import App
from config.settings import load_settings
from core.clock import FakeClock
from core.models import Buyer, OutboxItem
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from storage import tables as t
from tests.helpers import (
    PROVIDER,
    SKU,
    RecordingGateway,
    RecordingNotifier,
    buyer,
    import_n,
    open_shop,
    order_status,
    pay,
    product_id,
    run_cli,
    settle,
    stock_of,
    write_config,
)


class HangsOnce:
    """A chat platform whose first send never answers; later sends go through."""

    def __init__(self) -> None:
        self.calls = 0
        self.deliveries: list = []

    async def deliver(self, recipient, delivery):  # noqa: ANN001, ANN201
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()
        self.deliveries.append(delivery)

    async def notify(self, *a):  # noqa: ANN002, ANN201
        pass


async def _outbox_row(app, order_id: str):  # noqa: ANN001, ANN202
    async with app.db.uow() as uow:
        return (await uow.codes.c.execute(select(t.outbox).where(t.outbox.c.order_id == order_id))).one()


async def test_given_a_send_that_never_answers_then_it_is_cut_off_inside_its_lease_and_the_code_goes_out_once(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        slow = HangsOnce()
        app.shop.add_notifier("test", slow)
        d = app.shop.dispatcher
        d.lease, d.send_timeout = timedelta(seconds=2), 0.3
        await import_n(app, 1)
        order = await app.shop.reserve(buyer(1), await product_id(app), 1, "en")
        await pay(app, order)

        assert await asyncio.wait_for(d.dispatch_once(), 10) == 1  # the hanging send is given up
        row = await _outbox_row(app, order.id)
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "TimeoutError")
        clock.advance(seconds=3)  # past the lease: the row is in backoff, not up for grabs
        assert await d.dispatch_once() == 0
        clock.advance(seconds=10)
        await settle(app)
        assert len(slow.deliveries) == 1 and slow.calls == 2
        assert (await _outbox_row(app, order.id)).status == "sent"


class ThreeMessages:
    """A chat platform whose deliveries take three messages; the second one hangs the first time it is sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.hanging = asyncio.Event()

    async def deliver(self, recipient, delivery):  # noqa: ANN001, ANN201
        return [await delivery.parts.send(n, lambda n=n: self._send(n)) for n in range(3)]

    async def _send(self, n: int) -> int:
        if n == 1 and not self.hanging.is_set():
            self.hanging.set()
            await asyncio.Event().wait()
        self.sent.append(n)
        return 100 + n  # the message id

    async def notify(self, *a):  # noqa: ANN002, ANN201
        pass


async def test_given_three_messages_when_the_second_hangs_then_the_first_is_already_recorded_and_never_sent_again(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        platform = ThreeMessages()
        app.shop.add_notifier("test", platform)
        d = app.shop.dispatcher
        d.lease, d.send_timeout = timedelta(seconds=2), 0.5
        await import_n(app, 1)
        order = await app.shop.reserve(buyer(1), await product_id(app), 1, "en")
        await pay(app, order)

        sending = asyncio.create_task(d.dispatch_once())
        await asyncio.wait_for(platform.hanging.wait(), 5)
        # A crash now would cost the second message only: the first is recorded on the row.
        assert (await _outbox_row(app, order.id)).payload["parts"] == {"0": 100}
        assert await sending == 1
        row = await _outbox_row(app, order.id)
        assert (row.status, row.last_error) == ("pending", "TimeoutError")
        clock.advance(seconds=11)
        await settle(app)
        assert platform.sent == [0, 1, 2]  # each message once
        assert (await _outbox_row(app, order.id)).status == "sent"


async def test_given_a_lease_taken_over_when_the_first_claimer_reports_then_its_report_is_ignored(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        async with app.db.uow(write=True) as uow:
            await uow.outbox.add_many([OutboxItem(None, "notify", "test", "u1", None, {"key": "menu.title"})])
            await uow.commit()
        now = clock.now()
        async with app.db.uow(write=True) as uow:
            [first] = await uow.outbox.claim(now, 10, now + timedelta(seconds=60))
            await uow.commit()
        clock.advance(seconds=61)
        later = clock.now()
        async with app.db.uow(write=True) as uow:
            [second] = await uow.outbox.claim(later, 10, later + timedelta(seconds=60))
            await uow.outbox.mark_sent([(first.id, first.lease)], later)  # the slow first claimer, too late
            await uow.commit()
        assert first.id == second.id and first.lease != second.lease
        async with app.db.uow() as uow:
            assert await uow.outbox.pending_count() == 1
        async with app.db.uow(write=True) as uow:
            await uow.outbox.mark_sent([(second.id, second.lease)], later)
            await uow.commit()
        async with app.db.uow() as uow:
            assert await uow.outbox.pending_count() == 0


async def test_given_one_order_whose_code_does_not_decrypt_then_the_others_are_delivered_and_it_waits_for_a_fix(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, _):
        await import_n(app, 2)
        alice = await app.shop.reserve(buyer("alice"), await product_id(app), 1, "en")
        bob = await app.shop.reserve(buyer("bob"), await product_id(app), 1, "en")
        async with app.db.uow(write=True) as uow:
            good = (await uow.codes.c.execute(select(t.codes).where(t.codes.c.order_id == bob.id))).one()
            broken = bytes([good.ciphertext[0] ^ 1]) + good.ciphertext[1:]
            await uow.codes.c.execute(update(t.codes).where(t.codes.c.id == good.id).values(ciphertext=broken))
            await uow.commit()
        await pay(app, alice)
        await pay(app, bob)
        await settle(app)
        assert [d.order.id for _, d in notifier.deliveries] == [alice.id]
        row = await _outbox_row(app, bob.id)
        assert (row.status, row.attempts, row.last_error) == ("pending", 0, "codes do not decrypt")

        async with app.db.uow(write=True) as uow:  # the merchant restores the row from a backup
            await uow.codes.c.execute(update(t.codes).where(t.codes.c.id == good.id)
                                      .values(ciphertext=good.ciphertext))
            await uow.commit()
        clock.advance(minutes=11)
        await settle(app)
        assert [d.order.id for _, d in notifier.deliveries] == [alice.id, bob.id]


def test_given_a_running_store_when_the_merchant_rekeys_with_a_new_key_then_sales_and_reveals_go_on(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("".join(f"LIVE-{i}\n" for i in range(4)))
    assert run_cli(cfg, "codes", "import", SKU, str(codes_file)).returncode == 0

    async def scenario() -> None:
        notifier = RecordingNotifier()
        async with await App.open(load_settings(cfg), notifiers={"test": notifier},
                                  gateways={PROVIDER: RecordingGateway()}) as app:
            await app.shop.start()
            first = await app.shop.reserve(buyer(1), await product_id(app), 1, "en")
            await pay(app, first)
            done = await asyncio.to_thread(run_cli, cfg, "codes", "rekey", "--new-key")
            assert done.returncode == 0 and "under key k2" in done.stdout, done.stderr
            second = await app.shop.reserve(buyer(2), await product_id(app), 1, "en")
            await pay(app, second)
            await app.shop.dispatcher.drain()
            assert sorted(c for _, d in notifier.deliveries for c in d.codes) == ["LIVE-0", "LIVE-1"]
            _, _, shown = await app.shop.reveal(first.id, buyer(1))
            assert shown == ["LIVE-0"]

    asyncio.run(scenario())


class DropsAfterCommit:
    """The database connection drops right after COMMIT reached the server: the client cannot tell."""

    def __init__(self, factory) -> None:  # noqa: ANN001
        self.factory = factory
        self.armed = True

    def __call__(self, write: bool = False):  # noqa: ANN204
        uow = self.factory(write)
        if write and self.armed:
            real = uow.commit

            async def commit() -> None:
                await real()
                if self.armed:
                    self.armed = False
                    raise ConnectionResetError("connection lost after commit")

            uow.commit = commit
        return uow


async def test_given_a_connection_lost_after_commit_when_the_hold_is_retried_then_the_buyer_has_one_order(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 3)
        app.shop.committer._uow = DropsAfterCommit(app.shop.committer._uow)
        order = await app.shop.reserve(buyer(1), await product_id(app), 2, "en")
        assert [o.id for o in await app.shop.my_orders(buyer(1))] == [order.id]
        assert await stock_of(app) == (1, 2, 0)
        assert await order_status(app, order.id) == "held"


def test_given_an_overlong_csv_field_and_a_file_without_newlines_then_they_are_rejected_not_crashed(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("code,expires_at\n" + "".join(f"GOOD-{i},\n" for i in range(5)) + "X" * 140_000 + ",\n"
                     + '"unterminated,\n' + "".join(f"MORE-{i},\n" for i in range(5)))
    done = run_cli(cfg, "codes", "import", SKU, str(mixed))
    assert done.returncode == 1, done.stderr
    assert "imported 10, duplicates 0, rejected 2" in done.stdout
    assert "rejected line 7: too long" in done.stdout and "rejected line 8: bad CSV" in done.stdout
    assert "Traceback" not in done.stderr

    blob = tmp_path / "one-line.txt"
    blob.write_text("Y" * 300_000)
    done = run_cli(cfg, "codes", "import", SKU, str(blob))
    assert done.returncode == 2 and "rejected line 1: too long" in done.stdout


@pytest.mark.parametrize("typed", ["²", "٣", "9" * 5000, "0", "-1", "1.5"])
async def test_given_odd_numbers_typed_then_the_buyer_gets_the_menu_not_a_crash(sqlite_url, tmp_path, typed):  # noqa: ANN001
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        flow = CustomerFlow(app.shop, Translator(), shop_name="S")
        ctx = Ctx(Buyer("test", "u1"), "c", "en")
        await flow.on_text(ctx, "/start")
        [menu] = await flow.on_text(ctx, typed)
        assert menu.error == "error.unknown" and [a.id for a in menu.flat_actions()][0] == "catalog"


async def test_given_an_internal_failure_then_the_buyer_is_told_in_their_language_and_sees_no_code(
        sqlite_url, tmp_path, caplog) -> None:  # noqa: ANN001
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        [code] = await import_n(app, 1)
        order = await app.shop.reserve(buyer(1), await product_id(app), 1, "zh_CN")
        await pay(app, order)
        async with app.db.uow(write=True) as uow:
            await uow.codes.c.execute(update(t.codes).values(ciphertext=b"\x00" * 32))
            await uow.commit()
        flow = CustomerFlow(app.shop, Translator(), shop_name="S")
        await app.shop.save_customer(await app.shop.customer(buyer(1), "zh_CN"))
        [screen] = await flow.on_action(Ctx(buyer(1), "c", "zh_CN"), f"k:{order.id}")
        assert screen.error == "error.internal" and screen.title.startswith("系统出了点问题")  # the apology first
        assert screen.secrets == []
        assert code not in caplog.text


def test_given_a_leftover_world_readable_temp_key_file_when_a_key_is_added_then_the_key_file_is_0600(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    f = tmp_path / "codes.txt"
    f.write_text("K-1\n")
    assert run_cli(cfg, "codes", "import", SKU, str(f)).returncode == 0
    leftover = tmp_path / "vault.key.tmp"
    leftover.write_text("junk")
    os.chmod(leftover, 0o644)
    assert run_cli(cfg, "codes", "rekey", "--new-key").returncode == 0
    assert stat.S_IMODE((tmp_path / "vault.key").stat().st_mode) == 0o600
    assert not leftover.exists()
