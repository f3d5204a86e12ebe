"""core.images.ImageRepo over the table product_images and products.image (migration 0016_product_images), bound
to the unit of work's connection (`uow.images`, storage/db.py)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.images import StoredImage
from storage import tables as t
from storage.base import SqlRepo


class ImageRepo(SqlRepo):
    """Implements core.images.ImageRepo."""

    async def save(self, image: StoredImage, at: datetime) -> None:
        insert = pg_insert if self.pg else sqlite_insert
        await self.c.execute(insert(t.product_images).values(
            name=image.name, content_type=image.content_type, data=image.data, width=image.width,
            height=image.height, created_at=at).on_conflict_do_nothing(index_elements=["name"]))

    async def get(self, name: str) -> StoredImage | None:
        i = t.product_images.c
        r = (await self.c.execute(select(i.name, i.content_type, i.data, i.width, i.height)
                                  .where(i.name == name))).first()
        return StoredImage(r.name, r.content_type, bytes(r.data), r.width, r.height) if r else None

    async def set_product_image(self, product_id: int, name: str | None) -> None:
        await self.c.execute(update(t.products).where(t.products.c.id == product_id)
                             .values(image=name, updated_at=self._now()))
