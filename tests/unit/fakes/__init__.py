"""An in-memory unit of work for the fast tier (tests/unit): the repositories are dicts and lists, the commit
semantics are the real one's (storage/db.py SqlUnitOfWork).

    fake = FakeUnitOfWorkFactory(clock)          # core.ports.UnitOfWorkFactory: hand it to a desk as `uow`
    card = fake.add_product("CARD", price=1000)  # given: rows put straight into the committed state
    fake.add_codes(card, 5)
    async with fake(write=True) as uow:          # when: a use case runs in a transaction
        await book.reserve_batch(uow, [...])
        await uow.commit()
    fake.orders, fake.outbox, fake.codes         # then: what was committed

- Each transaction works on its own copy of the committed state; commit() makes that copy the committed state.
  Without commit (or when the block raises) its changes are gone. Write transactions run one at a time (like
  SQLite's single writer), so a later writer sees what an earlier one committed.
- Repositories hand out copies: changing an object read from them changes nothing until it is written back
  (a use case that forgets the write fails here as it would on the database).
- Only the methods the fast tier's use cases call are here, each with the semantics of its SQL repository
  (in storage/). A method or repository the fake lacks raises NotImplementedError naming it: add it (with those
  semantics) when a use case needs it, never a stand-in that pretends.

The parts: state.py (the rows and the state a transaction copies; the repositories' base), one module per group of
repositories (catalog.py: products and codes; orders.py: orders, payments, outbox, audit; risk.py; aftersales.py:
tickets; cardfaces.py; wechat.py: the callback's nonce pairs; reports.py: the funnel's counters), and uow.py (the
unit of work, which repository each attribute is, and the factory with the givens and thens of a test).
"""
from tests.unit.fakes.state import Missing
from tests.unit.fakes.uow import FakeUnitOfWork, FakeUnitOfWorkFactory

__all__ = ["FakeUnitOfWork", "FakeUnitOfWorkFactory", "Missing"]
