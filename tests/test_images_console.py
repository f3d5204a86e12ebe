"""A product's picture in the console (bots/web/pages/products.py): an owner uploads one on the product's page and
it replaces the old one (a new name, so a new URL), audited as a product change; a file that is not a picture,
truncated, too big or a decompression bomb is refused in the merchant's language with nothing changed (and the
refusal audited); staff, and a POST without the CSRF token, are refused. SQLite and PostgreSQL; one journey in a
real browser."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page

from core.images import check_image
from core.models import AuditEntry
from locales import Translator
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import SKU
from tests.test_images import BAD, LIMITS, phone_jpeg, png


async def upload(kit: ConsoleKit, http: aiohttp.ClientSession, data: bytes, *, csrf: bool = True,
                 query: str = "") -> tuple[int, str]:
    """The page's upload form, as a browser posts it (multipart; the CSRF token in the form's URL)."""
    if id(http) not in kit.csrf:
        await kit.get(http, f"/products/{SKU}")
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="picture.png", content_type="image/png")
    url = kit.base + f"/console/products/{SKU}/image?" + (f"csrf={kit.csrf[id(http)]}" if csrf else "") + query
    async with http.post(url, data=form, allow_redirects=False) as r:
        return r.status, r.headers.get("Location") or await r.text()


async def current(kit: ConsoleKit) -> str | None:
    kit.app.shop.catalog_changed()
    p = await kit.app.shop.product_by_sku(SKU)
    assert p is not None
    return p.image


async def image_audit(kit: ConsoleKit, actor: str) -> list[dict[str, Any]]:
    async with kit.app.shop.uow() as uow:
        entries: list[AuditEntry] = await uow.audit.latest("admin", actor)
    return [e.detail for e in entries if e.detail.get("command") == "product" and e.detail.get("field") == "image"]


async def test_an_owner_uploads_a_picture_and_a_new_one_replaces_it(db_url: str, tmp_path: Path) -> None:
    first, second = check_image(png(), LIMITS), check_image(phone_jpeg(), LIMITS)
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http:
        status, html = await kit.get(http, f"/products/{SKU}")
        assert status == 200 and 'data-image=""' in html and 'data-field="image"' in html
        assert await upload(kit, http, png()) == (303, f"/console/products/{SKU}?saved=image")
        assert await current(kit) == first.name
        status, html = await kit.get(http, f"/products/{SKU}?saved=image")
        assert f'data-image="{first.name}"' in html and 'data-saved="image"' in html
        async with http.get(kit.base + f"/console/products/{SKU}/image") as r:  # the page's preview
            assert (r.status, r.content_type, await r.read()) == (200, "image/png", first.data)

        assert (await upload(kit, http, phone_jpeg()))[0] == 303  # replaced: a new name, a new URL
        assert await current(kit) == second.name != first.name
        kept = await kit.app.images.get(second.name)
        assert kept is not None and kept.data == second.data and b"SecretPhoneMaker" not in kept.data
        assert (await kit.app.images.get(first.name)) is not None  # a page loaded before may still ask for it

        audit = await image_audit(kit, OWNER.key)
        assert [(a["old"], a["new"]) for a in audit] == [(first.name, second.name), ("", first.name)]
        assert (audit[0]["sku"], audit[0]["width"], audit[0]["height"]) == (SKU, 60, 120)

        status, location = await kit.post(http, f"/products/{SKU}/image/remove", allow_redirects=False)
        assert status == 303 and await current(kit) is None
        assert [(a["old"], a["new"]) for a in await image_audit(kit, OWNER.key)][0] == (second.name, "")


async def test_bad_uploads_are_refused_in_the_merchants_words_and_change_nothing(db_url: str,
                                                                               tmp_path: Path) -> None:
    en = Translator(["en", "zh_CN"], "en")
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http:
        assert (await upload(kit, http, png()))[0] == 303
        before = await current(kit)
        for case, (data, code) in sorted(BAD.items()):
            status, html = await upload(kit, http, data)
            assert status == (413 if case == "oversized" else 400), case
            assert f'data-refusal="{code.value}"' in html and "Nothing was changed." in html, case
            assert await current(kit) == before, case
            if case == "bomb":
                assert "The picture claims 50000×50000 pixels; at most 4096×4096 is accepted." in html
        # Past the limit by a little (read in chunks until it passes) and by a lot (refused from its length).
        for size in (LIMITS.max_bytes + 1, LIMITS.max_bytes + 200_000):
            status, html = await upload(kit, http, png() + b"\0" * size)
            assert status == 413 and en.t("en", "images.error.too_large", max_kb=1024) in html
        status, html = await upload(kit, http, b"")
        assert status == 400 and 'data-refusal="no_file"' in html
        status, html = await upload(kit, http, BAD["text"][0], query="&lang=zh_CN")  # in the merchant's language
        assert status == 400 and "不是 PNG、JPEG、WebP 或 GIF 图片，未做任何更改。" in html
        assert await current(kit) == before
        refused = [a for a in await image_audit(kit, OWNER.key) if "refused" in a]
        assert {a["refused"] for a in refused} == {"not_an_image", "broken", "too_large", "too_many_pixels"}


async def test_staff_and_forged_posts_may_not_change_a_picture(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, f"/products/{SKU}")
            assert status == 200 and 'data-field="image"' not in html  # no form for staff
            status, html = await upload(kit, http, png())
            assert status == 403 and 'data-refusal="owner_only"' in html
        async with kit.client(OWNER) as http:
            await kit.get(http, f"/products/{SKU}")
            status, html = await upload(kit, http, png(), csrf=False)
            assert status == 403 and 'data-refusal="csrf"' in html
            status, _ = await kit.post(http, f"/products/{SKU}/image/remove", csrf=False)
            assert status == 403
        assert await current(kit) is None
        assert await image_audit(kit, OWNER.key) == [] and await image_audit(kit, STAFF.key) == []
        async with kit.app.shop.uow() as uow:
            assert [e.detail["command"] for e in await uow.audit.latest("admin_denied", STAFF.key)] == [
                "console /products/{sku}/image"]


async def test_in_a_browser_an_owner_uploads_a_picture_and_sees_it(db_url: str, tmp_path: Path,
                                                                  page: Page) -> None:
    file = tmp_path / "photo.jpg"
    file.write_bytes(phone_jpeg())
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    async with open_console(db_url, tmp_path) as kit:
        await page.goto(await kit.link(OWNER))
        await page.wait_for_selector('[data-figure="orders"]')
        await page.goto(kit.base + f"/console/products/{SKU}")
        await page.set_input_files('form[data-field="image"] input[type="file"]', str(file))
        await page.click('form[data-field="image"] button[type="submit"]')
        await page.wait_for_selector('[data-saved="image"]')
        img = page.locator("#picture img")
        await img.wait_for()
        size = await img.evaluate("i => i.complete && [i.naturalWidth, i.naturalHeight]")
        assert size == [60, 120]  # decoded by the browser, upright
        assert await img.get_attribute("data-image") == await current(kit)
    assert problems == []
