"""The fake unit of work keeps the real one's promises (storage/db.py SqlUnitOfWork), or the fast tier would test
use cases against a store that forgives what the database does not."""
from __future__ import annotations

import asyncio

import pytest

from core.models import Buyer, CodeStatus, OrderStatus
from tests.unit.fakes import FakeUnitOfWorkFactory, Missing

ALICE = Buyer("telegram", "alice")


async def test_a_change_is_seen_by_later_transactions_only_once_committed(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    [code] = fake.add_codes(card, 1)
    async with fake(write=True) as uow:
        assert await uow.codes.hold([(code, "O1")]) == 1
        async with fake() as other:  # another transaction, before the commit: still available
            assert await other.codes.pick_available(card.id, 1, fake.clock.now()) == [code]
        await uow.commit()
    async with fake() as later:
        assert await later.codes.pick_available(card.id, 1, fake.clock.now()) == []
    assert fake.codes[code].status is CodeStatus.HELD


async def test_without_a_commit_every_change_is_rolled_back(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    [code] = fake.add_codes(card, 1)
    async with fake(write=True) as uow:
        await uow.codes.hold([(code, "O1")])  # no commit
    with pytest.raises(ZeroDivisionError):
        async with fake(write=True) as uow:
            await uow.codes.hold([(code, "O2")])
            raise ZeroDivisionError("the use case fails before its commit")
    assert fake.codes[code].status is CodeStatus.AVAILABLE and fake.commits == 0


async def test_what_a_repository_hands_out_is_a_copy(fake: FakeUnitOfWorkFactory) -> None:
    """A use case that changes an order it read but never writes it back changes nothing, as on the database."""
    card = fake.add_product("CARD")
    fake.add_codes(card, 1)
    order = fake.add_order(ALICE, card, status=OrderStatus.HELD)
    async with fake(write=True) as uow:
        read = await uow.orders.get(order.id)
        read.status = OrderStatus.CANCELLED
        await uow.commit()
    assert fake.orders[order.id].status is OrderStatus.HELD


async def test_a_method_or_repository_the_fake_lacks_fails_loudly(fake: FakeUnitOfWorkFactory) -> None:
    async with fake() as uow:
        with pytest.raises(Missing, match="FakeCodeRepo.stock"):
            await uow.codes.stock(fake.clock.now())
        with pytest.raises(Missing, match="uow.supplies"):
            await uow.supplies.get("r1")
    with pytest.raises(RuntimeError, match="outside"):
        uow.codes  # noqa: B018 - the transaction is over


async def test_write_transactions_take_turns_so_the_second_sees_the_first(fake: FakeUnitOfWorkFactory) -> None:
    card = fake.add_product("CARD")
    fake.add_codes(card, 1)
    got: list[list[int]] = []

    async def buyer(order_id: str) -> None:
        async with fake(write=True) as uow:
            picked = await uow.codes.pick_available(card.id, 1, fake.clock.now())
            await asyncio.sleep(0)  # let the other writer try to run in between
            got.append(picked if await uow.codes.hold([(c, order_id) for c in picked]) == len(picked) else [])
            await uow.commit()

    await asyncio.gather(buyer("O1"), buyer("O2"))
    assert sorted(map(len, got)) == [0, 1]  # one code, one buyer


async def test_a_write_transaction_inside_another_fails_instead_of_waiting_forever(
        fake: FakeUnitOfWorkFactory) -> None:
    async with fake(write=True):
        with pytest.raises(RuntimeError, match="wait for itself"):
            async with fake(write=True):
                pass
