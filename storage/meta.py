"""The store's own facts as keys and values (`uow.meta`): the vault's canaries, the demo's seed mark, the Stars
reconciliation checkpoint, restock state."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage import tables as t
from storage.base import SqlRepo


class MetaRepo(SqlRepo):
    async def get(self, key: str) -> str | None:
        return (await self.c.execute(select(t.meta.c.value).where(t.meta.c.key == key))).scalar()

    async def set(self, key: str, value: str) -> None:
        ins = (pg_insert if self.pg else sqlite_insert)(t.meta).values(key=key, value=value)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    async def with_prefix(self, prefix: str) -> dict[str, str]:
        rows = await self.c.execute(select(t.meta).where(t.meta.c.key.like(prefix.replace("%", r"\%") + "%")))
        return {r.key: r.value for r in rows}
