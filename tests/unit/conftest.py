"""The fast tier: use cases and pure decisions on the fake unit of work (tests/unit/fakes/) and a FakeClock; no
database, no network, no sleeping. `make test-fast` runs it alone."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.clock import FakeClock
from tests.unit.fakes import FakeUnitOfWorkFactory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(clock)
