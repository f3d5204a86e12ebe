"""An in-memory unit of work for the fast tier (tests/unit): see uow.py."""
from tests.unit.fakes.uow import FakeUnitOfWork, FakeUnitOfWorkFactory, Missing

__all__ = ["FakeUnitOfWork", "FakeUnitOfWorkFactory", "Missing"]
