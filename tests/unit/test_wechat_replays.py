"""The WeChat callback takes each (timestamp, nonce) pair once in the whole store (bots/wechat/replays.py): a
replayed message is refused, even when both copies arrive in one batch of the group committer. On the fake unit of
work (`uow.wechat`)."""
from __future__ import annotations

import asyncio

import pytest

from bots.wechat import replays
from bots.wechat.replays import StoreReplayMemory
from core.batching import GroupCommitter
from tests.unit.fakes import FakeUnitOfWorkFactory

NOW = 1_772_442_000.0  # epoch seconds


async def test_a_pair_is_taken_once_even_when_its_copies_arrive_together(fake: FakeUnitOfWorkFactory) -> None:
    committer = GroupCommitter(fake)
    memory = StoreReplayMemory(committer)
    try:
        first = await asyncio.gather(memory.first_use("a", NOW, NOW + 600), memory.first_use("a", NOW, NOW + 600),
                                     memory.first_use("b", NOW, NOW + 600))
        assert first == [True, False, True]
        assert await memory.first_use("a", NOW + 1, NOW + 601) is False  # a later replay
        assert committer.batches == 2  # the three at once cost one transaction
    finally:
        await committer.close()


async def test_pairs_are_forgotten_once_their_timestamp_went_stale(fake: FakeUnitOfWorkFactory,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replays, "SWEEP_EVERY", 0.0)  # every batch sweeps (the store: at most once a minute)
    committer = GroupCommitter(fake)
    memory = StoreReplayMemory(committer)
    try:
        await memory.first_use("old", NOW, NOW + 600)
        await memory.first_use("new", NOW + 700, NOW + 1300)
        assert set(fake.state.nonce_pairs) == {"new"}
    finally:
        await committer.close()
