"""Alembic environment: runs on the connection storage.db.Database.upgrade hands over.

A database at a revision these migrations do not know was upgraded by a newer release of the store: nothing is
run on it (neither an upgrade nor a downgrade), and the start stops with SchemaAheadError naming the revision
(`run.py` exits 2). Running older code on a newer schema would fail later, somewhere less clear, or damage it."""
from alembic import context
from alembic.script import ScriptDirectory

from storage.backup import known_revision
from storage.migrations import SchemaAheadError
from storage.tables import metadata


def refuse_a_newer_schema(script: ScriptDirectory, current: tuple[str, ...]) -> None:
    unknown = [r for r in current if not known_revision(r)]
    if unknown:
        raise SchemaAheadError(
            f"database.url: the database's schema is at revision {', '.join(unknown)}, which this release of the "
            f"store does not know (its newest is {script.get_current_head()}): a newer release upgraded it. Run "
            "that release, or restore a backup made before the upgrade (run.py restore); nothing was changed")


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through Database.upgrade
    raise SystemExit("run migrations with: python run.py db upgrade")
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
refuse_a_newer_schema(context.script, context.get_context().get_current_heads())
with context.begin_transaction():
    context.run_migrations()
