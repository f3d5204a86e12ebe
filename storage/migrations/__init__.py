"""The store's schema migrations: Alembic's versions/, run by env.py on the connection storage.db.Database.upgrade
hands over; RELEASES.md lists the released revisions."""
from __future__ import annotations


class SchemaAheadError(Exception):
    """The database is at a schema revision these migrations do not know: a newer release of the store upgraded it.
    Nothing was run on it. `run.py` says so and exits 2 (a configuration problem: database.url names it)."""
