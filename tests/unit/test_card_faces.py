"""Card faces (core/cardfaces.py): the codes a reseller's people receive carry the reseller's own card; ordinary
buyers get none. CardFaceDesk on the fake unit of work (`uow.card_faces`)."""
from __future__ import annotations

import pytest

from core.cardfaces import CardFace, CardFaceCode, CardFaceDesk, CardFaceError
from core.models import Buyer
from tests.unit.fakes import FakeUnitOfWorkFactory

MEMBER, STRANGER = Buyer("telegram", "member"), Buyer("telegram", "stranger")


async def test_a_bound_user_gets_the_resellers_face_and_an_ordinary_buyer_none(fake: FakeUnitOfWorkFactory) -> None:
    fake.add_reseller(7, "acme")
    desk = CardFaceDesk(fake, fake.clock)
    assert await desk.face_for(MEMBER) is None  # no face anywhere: not even a lookup of the buyer
    await desk.set_face(7, CardFace("ACME Cards", "#1a2b3c"), actor="merchant")
    await desk.bind(7, MEMBER, actor="merchant")
    assert await desk.face_for(MEMBER) == CardFace("ACME Cards", "#1A2B3C")  # stored as checked
    assert await desk.face_for(STRANGER) is None
    assert await desk.unbind(MEMBER, actor="merchant")
    assert await desk.face_for(MEMBER) is None
    assert [e.detail["op"] for e in fake.audit] == ["card_face", "bind", "unbind"]  # every change audited


async def test_a_face_in_the_config_wins_over_the_stored_one(fake: FakeUnitOfWorkFactory) -> None:
    fake.add_reseller(7, "acme")
    desk = CardFaceDesk(fake, fake.clock, {"acme": CardFace("From config")})
    await desk.set_face(7, CardFace("Stored"), actor="merchant")
    await desk.bind(7, MEMBER, actor="merchant")
    assert (await desk.face_for(MEMBER)).display_name == "From config"  # type: ignore[union-attr]


async def test_a_face_for_an_unknown_reseller_or_with_a_wrong_colour_is_refused(fake: FakeUnitOfWorkFactory) -> None:
    fake.add_reseller(7, "acme")
    desk = CardFaceDesk(fake, fake.clock)
    with pytest.raises(CardFaceError) as err:
        await desk.set_face(8, CardFace("Nobody"), actor="merchant")
    assert err.value.code is CardFaceCode.UNKNOWN_RESELLER
    with pytest.raises(CardFaceError) as err:
        await desk.set_face(7, CardFace("ACME", "red"), actor="merchant")
    assert err.value.code is CardFaceCode.BAD_COLOUR
    assert fake.state.card_faces == {} and fake.audit == []
