"""Resellers' card faces and the users bound to a reseller, in memory."""
from __future__ import annotations

from datetime import datetime

from core.cardfaces import CardFace
from core.models import Buyer
from tests.unit.fakes.state import FakeRepo


class FakeCardFaceRepo(FakeRepo):
    """Card faces and bound users (core/cardfaces.py CardFaceRepo)."""

    async def reseller_name(self, reseller_id: int) -> str | None:
        return self.s.reseller_names.get(reseller_id)

    async def save_face(self, reseller_id: int, face: CardFace, at: datetime) -> None:
        self.s.card_faces[reseller_id] = face

    async def drop_face(self, reseller_id: int) -> bool:
        return self.s.card_faces.pop(reseller_id, None) is not None

    async def face(self, reseller_id: int) -> CardFace | None:
        return self.s.card_faces.get(reseller_id)

    async def bind(self, reseller_id: int, buyer: Buyer, at: datetime) -> None:
        self.s.reseller_users[buyer] = reseller_id

    async def unbind(self, buyer: Buyer) -> bool:
        return self.s.reseller_users.pop(buyer, None) is not None

    async def bound(self, buyer: Buyer) -> tuple[int, str] | None:
        rid = self.s.reseller_users.get(buyer)
        return (rid, self.s.reseller_names[rid]) if rid is not None and rid in self.s.reseller_names else None

    async def any_face(self) -> bool:
        return bool(self.s.card_faces)
