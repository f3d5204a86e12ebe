"""Product pictures (core/images.py): what a picture must be (PNG/JPEG/WebP/GIF within the byte and pixel limits,
decoded whole), re-encoded without its metadata and named by its content; the catalogue's `image` key checked at
start (a bad file stops the start naming the product, and changes nothing); the Mini App API naming the picture's
URL and `/app/img/NAME` serving exactly the kept bytes, public and immutable. SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from app import App
from bots.http import HttpServer
from bots.miniapp import mount_miniapp
from config.settings import ConfigError, parse_settings
from core.images import ImageCode, ImageError, ImageLimits, check_image
from tests.dbtemplate import from_template
from tests.helpers import DEFAULT_CATALOG, SKU, run_cli, write_config
from tests.test_miniapp_api import CATALOG, TOKEN, signed

LIMITS = ImageLimits()


# -- pictures to feed it ------------------------------------------------------------------------------------------
def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    im = Image.new("RGB", (width, height), colour)
    im.putpixel((0, 0), (0, 0, 255))  # not one flat colour
    im.save(out, "PNG")
    return out.getvalue()


def phone_jpeg() -> bytes:
    """A JPEG as a phone writes one: 120×60 stored, EXIF orientation 6 (shown turned a quarter: 60×120), the
    camera's name and a GPS position in EXIF, and bytes appended after the image's end."""
    exif = Image.Exif()
    exif[0x010F] = "SecretPhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (31.0, 14.0, 2.0), "E", (121.0, 28.0, 5.0)
    out = io.BytesIO()
    Image.new("RGB", (120, 60), (20, 120, 200)).save(out, "JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue() + b"APPENDED-AFTER-THE-END"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def claimed_png(width: int, height: int) -> bytes:
    """A few dozen bytes whose IHDR claims width×height RGB pixels (a decompression bomb when that is huge)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


def bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "BMP")
    return out.getvalue()


BAD: dict[str, tuple[bytes, ImageCode]] = {  # name -> (file, why it is refused)
    "text": (b"this is not a picture at all\n" * 4, ImageCode.NOT_AN_IMAGE),
    "bmp": (bmp(), ImageCode.NOT_AN_IMAGE),  # a picture, but not one of the four formats
    "truncated": (png(300, 200)[:180], ImageCode.BROKEN),
    "oversized": (png() + b"\0" * (LIMITS.max_bytes + 1), ImageCode.TOO_LARGE),
    "bomb": (claimed_png(50000, 50000), ImageCode.TOO_MANY_PIXELS),
    "too_wide": (claimed_png(LIMITS.max_side + 1, 10), ImageCode.TOO_MANY_PIXELS),
}


# -- the check itself -----------------------------------------------------------------------------------------
def test_a_phone_photo_is_kept_upright_without_its_exif_gps_or_appended_bytes() -> None:
    original = phone_jpeg()
    assert b"SecretPhoneMaker" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    kept = check_image(original, LIMITS)
    assert (kept.content_type, kept.width, kept.height) == ("image/jpeg", 60, 120)  # turned as the phone shows it
    assert b"SecretPhoneMaker" not in kept.data and b"APPENDED" not in kept.data and b"Exif" not in kept.data
    reopened = Image.open(io.BytesIO(kept.data))
    assert (reopened.format, reopened.size) == ("JPEG", (60, 120))
    assert dict(reopened.getexif()) == {} and not reopened.getexif().get_ifd(0x8825)
    assert kept.name == hashlib.sha256(kept.data).hexdigest()[:32] + ".jpg"  # named by what is kept


def test_formats_keep_their_family_and_a_changed_picture_gets_a_new_name() -> None:
    first, again, changed = (check_image(png(), LIMITS), check_image(png(), LIMITS),
                             check_image(png(colour=(30, 200, 30)), LIMITS))
    assert first.name == again.name and first.data == again.data and first.name.endswith(".png")
    assert changed.name != first.name
    gif, webp = io.BytesIO(), io.BytesIO()
    Image.new("P", (20, 10)).save(gif, "GIF")
    Image.new("RGBA", (20, 10), (1, 2, 3, 100)).save(webp, "WEBP")
    assert check_image(gif.getvalue(), LIMITS).content_type == "image/png"  # a still, lossless
    kept = check_image(webp.getvalue(), LIMITS)
    assert (kept.content_type, Image.open(io.BytesIO(kept.data)).mode) == ("image/webp", "RGBA")


@pytest.mark.parametrize("case", sorted(BAD))
def test_what_is_not_a_sound_picture_within_the_limits_is_refused(case: str) -> None:
    data, code = BAD[case]
    with pytest.raises(ImageError) as refused:
        check_image(data, LIMITS)
    assert refused.value.code is code
    if case in ("too_wide", "bomb"):  # what the header claims, read before anything is decoded
        claimed = (LIMITS.max_side + 1, 10) if case == "too_wide" else (50000, 50000)
        assert refused.value.params == {"width": claimed[0], "height": claimed[1], "max": LIMITS.max_side}


def test_the_limits_are_the_configured_ones() -> None:
    small = ImageLimits(max_bytes=2048, max_side=32)
    with pytest.raises(ImageError) as refused:
        check_image(png(33, 10), small)
    assert refused.value.code is ImageCode.TOO_MANY_PIXELS
    with pytest.raises(ImageError) as refused:
        check_image(png(30, 30) + b"\0" * 2048, small)
    assert (refused.value.code, refused.value.params["max_kb"]) == (ImageCode.TOO_LARGE, 2)
    assert check_image(png(32, 32), small).width == 32


# -- the catalogue's pictures, the API and the route ------------------------------------------------------------
def settings_with(url: str, tmp_path: Path, images: dict[str, str]) -> Any:
    catalog = [{**p, **({"image": images[p["sku"]]} if p["sku"] in images else {})} for p in CATALOG]
    return parse_settings({
        "database": {"url": url}, "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": catalog, "telegram": {"token": TOKEN}, "server": {"public_url": "https://shop.example"},
    }, tmp_path, env={})


@asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[tuple[App, str, aiohttp.ClientSession]]:
    app = await App.open(settings)
    server = HttpServer("127.0.0.1", 0)
    try:
        mount_miniapp(server, app)
        await server.start()
        async with aiohttp.ClientSession() as http:
            yield app, f"http://127.0.0.1:{server.port}", http
    finally:
        await server.stop()
        await app.close()


async def test_catalogue_pictures_are_named_by_the_api_and_served_as_kept(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "card.png").write_bytes(png())
    (tmp_path / "pics" / "stream.jpg").write_bytes(phone_jpeg())
    settings = settings_with(from_template(db_url), tmp_path, {"CARD10": "pics/card.png",  # relative to config
                                                               "STREAM": str(tmp_path / "pics" / "stream.jpg")})
    card, stream = check_image(png(), LIMITS), check_image(phone_jpeg(), LIMITS)
    async with serving(settings) as (app, base, http):
        auth = {"Authorization": f"tma {signed()}"}
        async with http.get(base + "/app/api/catalog", headers=auth) as r:
            items = {p["sku"]: p for p in (await r.json())["products"]}
        assert items["CARD10"]["image"] == f"/app/img/{card.name}"
        assert items["STREAM"]["image"] == f"/app/img/{stream.name}"
        pid = items["CARD10"]["id"]
        async with http.get(base + f"/app/api/products/{pid}", headers=auth) as r:
            assert (await r.json())["product"]["image"] == f"/app/img/{card.name}"

        for kept in (card, stream):  # no Authorization: catalogue pictures are public
            async with http.get(base + f"/app/img/{kept.name}") as r:
                body = await r.read()
                assert (r.status, r.content_type, body) == (200, kept.content_type, kept.data)
                assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                etag = r.headers["ETag"]
            assert b"SecretPhoneMaker" not in body and b"APPENDED" not in body
            async with http.get(base + f"/app/img/{kept.name}", headers={"If-None-Match": etag}) as r:
                assert (r.status, await r.read()) == (304, b"")
            async with http.head(base + f"/app/img/{kept.name}") as r:
                assert (r.status, r.headers["Content-Length"]) == (200, str(len(kept.data)))

        for name in ("0" * 32 + ".png", card.name.upper(), card.name[:-4] + ".gif", "..%2F..%2Fconfig.yaml",
                     card.name + "x", "x"):
            async with http.get(base + f"/app/img/{name}") as r:
                assert r.status == 404, name
                assert card.data not in await r.read()

    # The next start with the same files changes nothing; without `image:` the product keeps its picture.
    async with serving(settings_with(settings.database.url, tmp_path, {})) as (app, base, http):
        assert (await app.shop.product_by_sku("CARD10")).image == card.name  # type: ignore[union-attr]
        assert (await app.shop.product_by_sku("OLD")).image is None  # type: ignore[union-attr]


async def test_a_bad_catalogue_picture_stops_the_start_naming_the_product_and_changes_nothing(
        db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(png())
    url = from_template(db_url)
    async with serving(settings_with(url, tmp_path, {"CARD10": "good.png"})) as (app, _, _http):
        kept = (await app.shop.product_by_sku("CARD10")).image  # type: ignore[union-attr]
    reasons = {"text": "is not a PNG, JPEG, WebP or GIF picture", "bmp": "is not a PNG, JPEG, WebP or GIF picture",
               "truncated": "cannot be decoded whole (truncated or corrupt)",
               "oversized": f"the most is {LIMITS.max_bytes} (store.images.max_bytes)",
               "bomb": "claims 50000x50000 pixels; the most is 4096 a side (store.images.max_side)",
               "too_wide": "claims 4097x10 pixels; the most is 4096 a side"}
    for case, (data, _) in sorted(BAD.items()):
        (tmp_path / f"{case}.img").write_bytes(data)
        with pytest.raises(ConfigError) as stopped:
            await App.open(settings_with(url, tmp_path, {"STREAM": "good.png", "CARD10": f"{case}.img"}))
        assert stopped.value.errors == [("catalog[0].image", stopped.value.errors[0][1])], case
        message = str(stopped.value)
        assert "catalog[0].image: product CARD10: " in message and reasons[case] in message, message
    with pytest.raises(ConfigError) as stopped:
        await App.open(settings_with(url, tmp_path, {"CARD10": "nowhere.png"}))
    assert f"product CARD10: cannot read {tmp_path / 'nowhere.png'} (No such file or directory)" in str(stopped.value)

    async with serving(settings_with(url, tmp_path, {})) as (app, _, _http):  # nothing changed by the refusals
        assert (await app.shop.product_by_sku("CARD10")).image == kept  # type: ignore[union-attr]
        assert (await app.shop.product_by_sku("STREAM")).image is None  # type: ignore[union-attr]


def test_the_limits_are_settings_with_bounds(tmp_path: Path) -> None:
    settings = parse_settings({"store": {"images": {"max_bytes": 4096, "max_side": 256}}}, tmp_path, env={})
    assert (settings.store.images.max_bytes, settings.store.images.max_side) == (4096, 256)
    with pytest.raises(ConfigError) as refused:
        parse_settings({"store": {"images": {"max_side": 100000}}}, tmp_path, env={})
    assert "store.images.max_side" in str(refused.value)


def test_run_py_stops_with_exit_2_naming_the_product_and_opens_no_database(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "bomb.png").write_bytes(claimed_png(50000, 50000))
    config = write_config(tmp_path, catalog=[{**DEFAULT_CATALOG[0], "image": "pics/bomb.png"}])
    done = run_cli(config, "stock")
    assert done.returncode == 2, done.stderr
    assert f"catalog[0].image: product {SKU}: {tmp_path / 'pics' / 'bomb.png'} claims" in done.stderr
    assert "store.images.max_side" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "store.db").exists()  # stopped before anything was opened
