"""core.cardfaces.CardFaceRepo over the tables card_faces and reseller_users (migration 0010_card_faces), bound to
the unit of work's connection (`uow.card_faces`, storage/db.py)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from core.cardfaces import CardFace
from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo
from storage.resellers import resellers


class CardFaceRepo(SqlRepo):
    """Implements core.cardfaces.CardFaceRepo."""

    async def reseller_name(self, reseller_id: int) -> str | None:
        return (await self.c.execute(select(resellers.c.name).where(resellers.c.id == reseller_id))
                ).scalar_one_or_none()

    async def save_face(self, reseller_id: int, face: CardFace, at: datetime) -> None:
        await self.c.execute(delete(t.card_faces).where(t.card_faces.c.reseller_id == reseller_id))
        await self.c.execute(t.card_faces.insert().values(
            reseller_id=reseller_id, display_name=face.display_name, background=face.background,
            background_image=face.background_image, logo=face.logo, font=face.font, updated_at=at))

    async def drop_face(self, reseller_id: int) -> bool:
        res = await self.c.execute(delete(t.card_faces).where(t.card_faces.c.reseller_id == reseller_id))
        return bool(res.rowcount)

    async def face(self, reseller_id: int) -> CardFace | None:
        r = (await self.c.execute(select(t.card_faces).where(t.card_faces.c.reseller_id == reseller_id))).first()
        return CardFace(r.display_name, r.background, r.background_image, r.logo, r.font) if r else None

    async def bind(self, reseller_id: int, buyer: Buyer, at: datetime) -> None:
        u = t.reseller_users.c
        await self.c.execute(delete(t.reseller_users).where(u.channel == buyer.channel,
                                                            u.external_id == buyer.external_id))
        await self.c.execute(t.reseller_users.insert().values(channel=buyer.channel, external_id=buyer.external_id,
                                                              reseller_id=reseller_id, created_at=at))

    async def unbind(self, buyer: Buyer) -> bool:
        u = t.reseller_users.c
        res = await self.c.execute(delete(t.reseller_users).where(u.channel == buyer.channel,
                                                                  u.external_id == buyer.external_id))
        return bool(res.rowcount)

    async def bound(self, buyer: Buyer) -> tuple[int, str] | None:
        u = t.reseller_users.c
        r = (await self.c.execute(
            select(u.reseller_id, resellers.c.name).join(resellers, resellers.c.id == u.reseller_id)
            .where(u.channel == buyer.channel, u.external_id == buyer.external_id))).first()
        return (r.reseller_id, r.name) if r else None

    async def any_face(self) -> bool:
        return (await self.c.execute(select(t.card_faces.c.reseller_id).limit(1))).first() is not None
