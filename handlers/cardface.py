"""Card face screens (定制卡面): with a delivery to a user bound to a reseller that has a card face, one
extra screen per code whose image is that code drawn on the reseller's card (the painter is the adapter's,
bots/cardface.py). The code is in the picture only, never in the caption text."""
from __future__ import annotations

import logging
from collections.abc import Callable

from core.cardfaces import CardFace, CardFaceDesk
from core.models import localized
from core.ports import Delivery
from handlers.screen import Screen
from locales import Translator

log = logging.getLogger(__name__)

Painter = Callable[..., bytes]  # paint(face, *, title, code, order_id) -> PNG bytes
MAX_CARDS = 20  # a bulk order gets its codes as text/file as usual; cards only for the first ones


class CardFaceScreens:
    """For a notifier: `await cards(delivery)` -> the card screens to send after the codes ([] for most buyers)."""

    def __init__(self, desk: CardFaceDesk, paint: Painter, i18n: Translator, default_language: str = "en") -> None:
        self.desk = desk
        self.paint = paint
        self.i18n = i18n
        self.default_language = default_language

    async def __call__(self, delivery: Delivery) -> list[Screen]:
        face = await self.desk.face_for(delivery.order.buyer)
        if face is None or not delivery.codes:
            return []
        return self.screens(face, delivery)

    def screens(self, face: CardFace, delivery: Delivery) -> list[Screen]:
        o = delivery.order
        lang = o.language or self.default_language
        title = localized(delivery.product.title, lang, self.default_language)
        codes = delivery.codes[:MAX_CARDS]
        out = []
        for n, code in enumerate(codes, start=1):
            try:
                image = self.paint(face, title=title, code=code, order_id=o.id)
            except Exception as exc:  # noqa: BLE001 - the codes went out as text already; a card is extra
                log.error("card face for order %s could not be drawn: %s", o.id, type(exc).__name__)
                return out
            out.append(Screen(self.i18n.t(lang, "cardface.title", name=face.display_name),
                              self.i18n.t(lang, "cardface.body", title=title, n=n, total=len(codes), order=o.id),
                              image=image))
        return out
