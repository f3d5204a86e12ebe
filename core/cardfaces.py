"""Custom card faces (定制卡面): a reseller's own look for the codes its people receive.

A reseller may have a card face: a display name, a background colour or image, a logo (and a font for names in
Chinese). When codes are delivered to a chat user bound to that reseller (the reseller's own chat accounts and the
members it orders for), each code is ALSO sent as a picture of a card with that face (drawn by the adapter,
bots/cardface.py, in memory only). Ordinary buyers get no card.

Faces come from the config (`card_faces:`, by reseller name) or from the merchant's command (`run.py reseller
cardface ID ...`, stored in `card_faces`); a config entry wins. Users are bound with `run.py reseller bind ID
telegram:<user id>` (`reseller_users`); other ways of binding (a reseller's group members) plug in as
`CardFaceDesk.resolvers`.
"""
from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from core.clock import Clock
from core.errors import Refused
from core.models import AuditEntry, Buyer
from core.ports import UnitOfWorkFactory

COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
NAME_MAX = 32
CACHE_SECONDS = 5.0  # a bind or face change shows in other processes within this


class CardFaceCode(StrEnum):
    """Why a card face or a binding was refused."""

    BAD_COLOUR = "bad_colour"
    BAD_NAME = "bad_name"
    BAD_USER = "bad_user"
    NO_SUCH_FILE = "no_such_file"
    NOT_AN_IMAGE = "not_an_image"
    UNKNOWN_RESELLER = "unknown_reseller"


class CardFaceError(Refused):
    """A card face or binding refused; `code` is stable, params name what."""

    codes = CardFaceCode
    code: CardFaceCode


@dataclass(frozen=True, slots=True)
class CardFace:
    display_name: str
    background: str = "#1F2937"  # #RRGGBB, under the background image if there is one
    background_image: str = ""  # paths to image files (PNG/JPEG), read when a card is drawn
    logo: str = ""
    font: str = ""  # a TrueType/OpenType font with the glyphs of the name (e.g. a CJK font); "" = built in


def check_face(face: CardFace) -> CardFace:
    """The face as stored, or CardFaceError naming the field that is wrong."""
    name = face.display_name.strip()
    if not name or len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
        raise CardFaceError(CardFaceCode.BAD_NAME, max=NAME_MAX)
    if not COLOUR.match(face.background):
        raise CardFaceError(CardFaceCode.BAD_COLOUR, background=face.background)
    for field_name in ("background_image", "logo", "font"):
        path = getattr(face, field_name)
        if path and not Path(path).is_file():
            raise CardFaceError(CardFaceCode.NO_SUCH_FILE, field=field_name, path=path)
    return replace(face, display_name=name, background=face.background.upper())


class CardFaceRepo(Protocol):
    """Card faces and bound users (storage/cardfaces.py): `uow.card_faces`, bound to the unit of work's
    connection."""

    async def reseller_name(self, reseller_id: int) -> str | None: ...
    async def save_face(self, reseller_id: int, face: CardFace, at: datetime) -> None: ...
    async def drop_face(self, reseller_id: int) -> bool: ...
    async def face(self, reseller_id: int) -> CardFace | None: ...
    async def bind(self, reseller_id: int, buyer: Buyer, at: datetime) -> None: ...
    async def unbind(self, buyer: Buyer) -> bool: ...
    async def bound(self, buyer: Buyer) -> tuple[int, str] | None:
        """(reseller id, reseller name) the user is bound to, or None."""
    async def any_face(self) -> bool:
        """True when some reseller has a stored card face."""


Resolver = Callable[[Buyer], Awaitable[int | None]]


class CardFaceDesk:
    """Card face use cases. `configured`: faces from the config by reseller name (they win over stored ones)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock,
                 configured: Mapping[str, CardFace] | None = None) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.configured = dict(configured or {})
        self.resolvers: list[Resolver] = []  # more ways a user belongs to a reseller (e.g. its group's members)
        self._cache: dict[Buyer, tuple[float, CardFace | None]] = {}
        self._any: tuple[float, bool] | None = None  # whether any face exists: most shops have none, and then
        # a delivery costs no lookup of its buyer
        # A face changed: this process's cache drops; the composition root points this at the shop's CacheBus
        # (every process's drops at once, core/coordination.py)
        self.changed: Callable[[str], None] = self.drop

    def drop(self, _key: str = "*") -> None:
        self._cache.clear()
        self._any = None

    async def set_face(self, reseller_id: int, face: CardFace, *, actor: str) -> CardFace:
        """The merchant gives a reseller a card face (audited)."""
        face = check_face(face)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await uow.card_faces.reseller_name(reseller_id) is None:
                raise CardFaceError(CardFaceCode.UNKNOWN_RESELLER, reseller=reseller_id)
            await uow.card_faces.save_face(reseller_id, face, now)
            await uow.audit.add_many([AuditEntry("reseller", actor, "api", now, detail={
                "reseller": reseller_id, "op": "card_face", "name": face.display_name})])
            await uow.commit()
        self.changed("*")
        return face

    async def clear_face(self, reseller_id: int, *, actor: str) -> bool:
        async with self.uow(write=True) as uow:
            dropped = await uow.card_faces.drop_face(reseller_id)
            if dropped:
                await uow.audit.add_many([AuditEntry("reseller", actor, "api", self.clock.now(), detail={
                    "reseller": reseller_id, "op": "card_face_cleared"})])
            await uow.commit()
        self.changed("*")
        return dropped

    async def face(self, reseller_id: int) -> CardFace | None:
        """The reseller's face as deliveries will use it (config first, then the stored one)."""
        async with self.uow() as uow:
            name = await uow.card_faces.reseller_name(reseller_id)
            if name is None:
                raise CardFaceError(CardFaceCode.UNKNOWN_RESELLER, reseller=reseller_id)
            return self.configured.get(name) or await uow.card_faces.face(reseller_id)

    async def bind(self, reseller_id: int, buyer: Buyer, *, actor: str) -> None:
        """A chat user receives this reseller's card faces from now on (one reseller per user; audited)."""
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await uow.card_faces.reseller_name(reseller_id) is None:
                raise CardFaceError(CardFaceCode.UNKNOWN_RESELLER, reseller=reseller_id)
            await uow.card_faces.bind(reseller_id, buyer, now)
            await uow.audit.add_many([AuditEntry("reseller", actor, buyer.channel, now, detail={
                "reseller": reseller_id, "op": "bind", "user": buyer.key})])
            await uow.commit()
        self._cache.pop(buyer, None)

    async def unbind(self, buyer: Buyer, *, actor: str) -> bool:
        async with self.uow(write=True) as uow:
            done = await uow.card_faces.unbind(buyer)
            if done:
                await uow.audit.add_many([AuditEntry("reseller", actor, buyer.channel, self.clock.now(), detail={
                    "op": "unbind", "user": buyer.key})])
            await uow.commit()
        self._cache.pop(buyer, None)
        return done

    async def face_for(self, buyer: Buyer) -> CardFace | None:
        """The card face a user's deliveries carry: their reseller's, or None (ordinary buyers)."""
        hit = self._cache.get(buyer)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        if not self.configured:
            if self._any is None or time.monotonic() - self._any[0] >= CACHE_SECONDS:
                async with self.uow() as uow:
                    self._any = (time.monotonic(), await uow.card_faces.any_face())
            if not self._any[1]:
                return None
        face: CardFace | None = None
        async with self.uow() as uow:
            bound = await uow.card_faces.bound(buyer)
            if bound is None:
                for resolve in self.resolvers:
                    rid = await resolve(buyer)
                    if rid is not None:
                        name = await uow.card_faces.reseller_name(rid)
                        bound = (rid, name) if name is not None else None
                        break
            if bound is not None:
                face = self.configured.get(bound[1]) or await uow.card_faces.face(bound[0])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[buyer] = (time.monotonic(), face)
        return face
