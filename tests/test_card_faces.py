"""Custom card faces (定制卡面) end to end on Telegram, both libraries against the local fake Bot API: a
buyer bound to a reseller with a card face gets each code ALSO as a protected photo of the reseller's card, whose
QR code decodes back to the code; an ordinary buyer gets no card; the picture and the code reach neither the log
nor the disk. Plus the merchant's `run.py reseller cardface/bind` and the config's checks."""
from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from config.settings import ConfigError, parse_settings
from core.cardfaces import CardFace, CardFaceError
from core.clock import FakeClock
from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.helpers import open_shop, run_cli, write_config
from tests.telegram_harness import Shopfront
from tests.test_telegram_storefront import browse_to_product, buy


def logo_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme-logo.png"
    Image.new("RGBA", (120, 120), (250, 200, 0, 255)).save(path)
    return path


async def purchase(shop: Shopfront, user: dict, charge: str) -> tuple[list[str], int]:
    """A buyer browses, buys one code with Stars and pays; returns the codes in the spoiler message and the API
    call mark taken before the payment."""
    api = shop.api
    page = await browse_to_product(shop, user)
    invoice, _ = await buy(shop, user, page)
    await shop.send(api.pre_checkout_update(user, invoice["payload"], 70))
    mark = api.mark()
    await shop.send(api.successful_payment_update(user, invoice["payload"], 70, charge))
    delivery = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == user["id"]
                                  and "tg-spoiler" in c.params["text"], since=mark)
    codes = [b["copy_text"]["text"] for row in delivery.params["reply_markup"]["inline_keyboard"] for b in row
             if "copy_text" in b]
    return codes, mark


async def test_a_reseller_s_member_gets_each_code_as_a_protected_card_and_an_ordinary_buyer_does_not(
        api: FakeBotAPI, tmp_path: Path, library: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logo = logo_file(tmp_path)
    faces = {"Acme": {"display_name": "Acme Games", "background": "#1e3a8a", "logo": str(logo)}}
    async with Shopfront(api, tmp_path, library=library, extra={"card_faces": faces}) as shop:
        stocked = await shop.stock(3)
        acme = await shop.app.shop.resellers.create("Acme", discount_percent=5)
        await shop.app.shop.card_faces.bind(acme.id, Buyer("telegram", "501"), actor="test")
        before = {p for p in tmp_path.rglob("*") if p.is_file()}

        member = api.user(501, "Ann", "en")
        [code], mark = await purchase(shop, member, "charge-member")
        photo = await api.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 501, since=mark)
        assert photo.params["protect_content"] is True
        name, data = photo.files["photo"]
        card = Image.open(io.BytesIO(data))
        assert card.format == "PNG" and card.size == (800, 480)
        assert [r.text for r in zxingcpp.read_barcodes(card)] == [code]
        assert card.getpixel((400, 20)) == (0x1E, 0x3A, 0x8A)  # the reseller's background
        assert card.getpixel((60, 60)) == (250, 200, 0)  # its logo, top left
        assert "Acme Games" in photo.params["caption"] and code not in photo.params["caption"]

        ordinary = api.user(502, "Bob", "en")
        [other], mark = await purchase(shop, ordinary, "charge-ordinary")
        await asyncio.sleep(0.2)
        assert [c for c in api.calls_since(mark, "sendPhoto") if c.params["chat_id"] == 502] == []
        assert {code, other} <= set(stocked)

        # made in memory only: no new file anywhere under the store's directory, and no code in the log
        assert {p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".png"} - before == set()
        ours = "\n".join(r.getMessage() for r in caplog.records  # (PTB's own DEBUG lines echo whole requests)
                         if r.name.split(".")[0] in ("app", "bots", "cli", "core", "handlers", "storage", "store",
                                                     "suppliers"))
        assert code not in ours and other not in ours


async def test_given_the_card_photo_fails_once_then_the_retry_sends_only_the_photo_and_both_messages_are_deleted_once(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    clock = FakeClock()
    faces = {"Acme": {"display_name": "Acme Games", "background": "#1e3a8a", "logo": str(logo_file(tmp_path))}}
    async with Shopfront(api, tmp_path, clock, library=library, extra={"card_faces": faces},
                         telegram={"delete_code_after": 10}) as shop:
        await shop.stock(2)
        acme = await shop.app.shop.resellers.create("Acme")
        await shop.app.shop.card_faces.bind(acme.id, Buyer("telegram", "503"), actor="test")
        member = api.user(503, "Cat", "en")
        api.fail_next("sendPhoto", 500)  # the card upload fails once, after the codes went out

        [code], mark = await purchase(shop, member, "charge-photo")
        await api.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 503, since=mark)
        await shop.app.shop.dispatcher.drain()
        clock.advance(seconds=11)  # the failed delivery's backoff
        await shop.app.shop.dispatcher.drain()

        def to_cat(method: str) -> list:
            return [c for c in api.calls_since(mark, method) if c.params["chat_id"] == 503 and c.status == 200]
        codes_messages = [c for c in to_cat("sendMessage") if "tg-spoiler" in c.params["text"]]
        photos = to_cat("sendPhoto")
        assert len(codes_messages) == 1 and len(photos) == 1  # each part went out once
        assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(photos[0].files["photo"][1])))] == [code]

        sent = [codes_messages[0].result["message_id"], photos[0].result["message_id"]]
        mark = api.mark()
        api.fail_next("deleteMessage", 500, after=1)  # deleting the card fails once, too
        clock.advance(minutes=11)  # delete_code_after: both the codes message and the card go away
        await shop.app.shop.dispatcher.drain()
        clock.advance(seconds=11)
        await shop.app.shop.dispatcher.drain()
        assert [api.is_deleted(503, m) for m in sent] == [True, True]
        assert [c.status for c in api.calls_since(mark, "deleteMessage")] == [200, 500, 200]  # each deleted once


def test_the_merchant_sets_a_card_face_and_binds_a_user_from_the_terminal(tmp_path: Path) -> None:
    logo = logo_file(tmp_path)
    cfg = write_config(tmp_path, demo=False)
    assert run_cli(cfg, "reseller", "add", "Acme").returncode == 0
    r = run_cli(cfg, "reseller", "cardface", "1", "--name", "Acme Games", "--background", "#0a0a0a", "--logo",
                str(logo))
    assert r.returncode == 0 and "card face 'Acme Games', background #0A0A0A, logo" in r.stdout
    bad = run_cli(cfg, "reseller", "cardface", "1", "--background", "blue")
    assert bad.returncode == 2 and "bad_colour" in bad.stderr
    (tmp_path / "not-an-image.png").write_bytes(b"hello")
    bad = run_cli(cfg, "reseller", "cardface", "1", "--logo", str(tmp_path / "not-an-image.png"))
    assert bad.returncode == 2 and "not_an_image" in bad.stderr
    assert run_cli(cfg, "reseller", "bind", "1", "telegram:501").returncode == 0
    bad = run_cli(cfg, "reseller", "bind", "9", "telegram:502")
    assert bad.returncode == 2 and "unknown_reseller" in bad.stderr
    shown = run_cli(cfg, "reseller", "cardface", "1")
    assert "card face 'Acme Games', background #0A0A0A" in shown.stdout
    assert "removed" in run_cli(cfg, "reseller", "cardface", "1", "--clear").stdout
    assert "no card face" in run_cli(cfg, "reseller", "cardface", "1").stdout


async def test_a_stored_face_is_used_for_bound_users_until_unbound(tmp_path: Path, db_url: str) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = app.shop.card_faces
        r = await app.shop.resellers.create("Beta")
        with pytest.raises(CardFaceError) as err:
            await desk.set_face(r.id, CardFace("Beta", logo=str(tmp_path / "missing.png")), actor="t")
        assert err.value.code == "no_such_file"
        await desk.set_face(r.id, CardFace("  Beta Shop ", "#ffffff"), actor="t")
        member = Buyer("telegram", "77")
        assert await desk.face_for(member) is None
        await desk.bind(r.id, member, actor="t")
        assert await desk.face_for(member) == CardFace("Beta Shop", "#FFFFFF")
        assert await desk.unbind(member, actor="t")
        assert await desk.face_for(member) is None


def test_card_faces_in_the_config_are_checked_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"card_faces": {"Acme": {"display_name": "Acme", "background": "navy",
                                                "logo": "logos/acme.png"}}}, tmp_path, env={})
    assert "card_faces.Acme.background" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_settings({"card_faces": {"Acme": {"display_name": "Acme", "logo": "logos/acme.png"}}}, tmp_path,
                       env={})
    assert "card_faces.Acme.logo: no such file" in str(err.value)
