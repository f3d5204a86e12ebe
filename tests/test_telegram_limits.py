"""Telegram's limits: messages to one chat are paced (a burst, then one a second) without slowing other chats; a
429 is waited out and the message still arrives; a user who blocked the bot is not written to again, and their
code stays in "My orders"."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.telegram.common import OutMessage, buyer_of
from bots.telegram.limits import limited
from config.settings import parse_settings
from core.clock import FakeClock
from storage import tables as t
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront


class TimedPort:
    """Telegram's side of the port: when each message to each chat went out."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.sent: list[tuple[int, float]] = []

    async def send(self, chat_id: int, message: OutMessage) -> int:
        self.sent.append((chat_id, time.monotonic() - self.start))
        return len(self.sent)

    def times(self, chat_id: int) -> list[float]:
        return [at for chat, at in self.sent if chat == chat_id]


async def test_given_five_messages_to_one_chat_then_three_go_at_once_then_one_a_second_and_other_chats_wait_for_nobody(
        tmp_path: Path) -> None:
    # The end-to-end harness lifts the limits (tests/telegram_harness.py UNPACED); these are the shipped ones.
    telegram = TimedPort()
    port = limited(telegram, parse_settings({}, tmp_path, env={}).telegram.limits)  # type: ignore[arg-type]
    ann = [asyncio.create_task(port.send(601, OutMessage(f"m{i}"))) for i in range(5)]
    await asyncio.sleep(0)
    await port.send(602, OutMessage("bob"))
    await asyncio.gather(*ann)
    at = telegram.times(601)
    assert len(at) == 5 and at[2] - at[0] < 0.5  # the burst
    assert 0.9 <= at[3] - at[0] < 2.0 and 0.9 <= at[4] - at[3] < 2.0  # then about one a second
    assert telegram.times(602)[0] < at[3]  # Bob is not queued behind Ann


async def test_given_telegram_answers_429_once_then_the_message_is_sent_after_retry_after(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        ann = api.user(601)
        api.fail_next("sendMessage", status=429, retry_after=1)
        mark = api.mark()
        await shop.send(api.message_update(ann, "/start"))
        sent = await api.wait_for("sendMessage", lambda c: c.status == 200 and c.params["chat_id"] == 601,
                                  since=mark, timeout=10)
        attempts = [c.status for c in api.calls_since(mark, "sendMessage") if c.params["chat_id"] == 601]
        assert attempts[:2] == [429, 200]
        assert sent.at - api.calls_since(mark, "sendMessage")[0].at >= 0.9  # it waited as told
        assert "Welcome" in sent.params["text"]


async def test_given_a_buyer_who_blocked_the_bot_when_their_payment_arrives_then_it_is_not_retried_forever(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        [code] = await shop.stock(1)
        ann = api.user(602)
        product = await shop.app.shop.product_by_sku("GAME")
        order = await shop.app.shop.reserve(buyer_of(602), product.id, 1, "en", "602")
        api.block_chat(602)
        await shop.send(api.successful_payment_update(ann, order.id, 70, "charge-b"))
        await shop.app.shop.dispatcher.drain()
        async with shop.app.db.uow() as uow:
            row = (await uow.codes.c.execute(select(t.outbox).where(t.outbox.c.order_id == order.id))).one()
        assert (row.status, row.last_error) == ("failed", "RecipientUnreachable")
        assert [c.status for c in api.calls("sendMessage") if c.params["chat_id"] == 602] == [403]
        assert api.calls("refundStarPayment") == []  # they paid and the code is theirs
        _, _, codes = await shop.app.shop.reveal(order.id, buyer_of(602))
        assert codes == [code]


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_given_delete_code_after_when_the_time_passes_then_the_code_message_is_deleted_but_kept_in_my_orders(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    clock = FakeClock()
    async with Shopfront(api, tmp_path, clock, library=library, telegram={"delete_code_after": 10}) as shop:
        [code] = await shop.stock(1)
        ann = api.user(603)
        product = await shop.app.shop.product_by_sku("GAME")
        order = await shop.app.shop.reserve(buyer_of(603), product.id, 1, "en", "603")
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order.id, 70, "charge-d"))
        sent = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
        await shop.app.shop.dispatcher.drain()
        message_id = sent.result["message_id"]
        clock.advance(minutes=9)
        await shop.app.shop.dispatcher.drain()
        assert not api.is_deleted(603, message_id)
        clock.advance(minutes=2)
        await shop.app.shop.dispatcher.drain()
        assert api.is_deleted(603, message_id)
        _, _, codes = await shop.app.shop.reveal(order.id, buyer_of(603))
        assert codes == [code]
