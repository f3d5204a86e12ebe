"""The console's code import: a file uploaded (streamed to a temporary file, never held whole), imported in the
background by the CLI's importer, its progress polled to done; the stock then shows the new codes and the import is
audited with the merchant's identity. Every refusal (type, binary, blank, oversized, unknown SKU, no CSRF token) is
said clearly and imports nothing; the temporary file is always deleted; an import that fails part-way says what
landed."""
from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page

from core.models import AuditEntry
from locales import Translator
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import SKU, stock_of, unique_codes

REUSABLE = {"sku": "COURSE", "title": "Course link", "price": 500, "kind": "reusable"}
CATALOG = [{"sku": SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
           REUSABLE]


@pytest.fixture(autouse=True)
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's temporary files land here (the server runs in this process), so a test can see them go."""
    where = tmp_path / "spool"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def codes_file(codes: list[str]) -> bytes:
    return "".join(c + "\n" for c in codes).encode()


async def upload(kit: ConsoleKit, http: aiohttp.ClientSession, name: str, data: Any, *, sku: str = SKU,
                 csrf: bool = True, script: bool = True, sku_first: bool = True) -> tuple[int, Any]:
    """POST the form as the page's script does (JSON answer, X-CSRF-Token) or as a plain form (?csrf=, HTML)."""
    if id(http) not in kit.csrf:
        await kit.get(http, "/codes")
    form = aiohttp.FormData()
    if sku_first:
        form.add_field("sku", sku)
    if isinstance(data, bytes):
        data = io.BytesIO(data)  # a file, as a browser sends one (aiohttp warns about large bytes bodies)
    form.add_field("file", data, filename=name, content_type="text/plain")
    if not sku_first:
        form.add_field("sku", sku)
    headers, url = {}, kit.base + "/console/codes/upload"
    if script:
        headers["Accept"] = "application/json"
        if csrf:
            headers["X-CSRF-Token"] = kit.csrf[id(http)]
    elif csrf:
        url += "?csrf=" + kit.csrf[id(http)]
    async with http.post(url, data=form, headers=headers, allow_redirects=False) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, r.headers.get("Location") or await r.text()


async def poll(kit: ConsoleKit, http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Every state the page would see, until the import is done."""
    seen = []
    for _ in range(2000):
        async with http.get(kit.base + url, headers={"Accept": "application/json"}) as r:
            assert r.status == 200
            state = await r.json()
        seen.append(state)
        if state["done"]:
            return seen
        await asyncio.sleep(0.01)
    raise AssertionError("the import never finished")


async def audit(kit: ConsoleKit, action: str, actor: str) -> list[AuditEntry]:
    async with kit.app.shop.uow() as uow:
        return await uow.audit.latest(action, actor)


async def test_an_uploaded_file_is_imported_with_live_progress_and_shows_in_the_stock(db_url: str, tmp_path: Path,
                                                                                      spool: Path) -> None:
    codes = unique_codes(2500)
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        kit.web.admin.import_batch = 200  # many batches: the bar moves in steps
        async with kit.client(OWNER) as http:
            status, answer = await upload(kit, http, "codes.txt", codes_file(codes))
            assert status == 202, answer
            seen = await poll(kit, http, answer["status_url"])
            last = seen[-1]
            assert (last["state"], last["percent"], last["imported"], last["duplicates"], last["rejected"]) == (
                "done", 100, 2500, 0, 0)
            assert last["read"] == last["total"] == len(codes_file(codes))
            assert "Imported: 2500" in last["summary"]
            percents = [s["percent"] for s in seen]
            assert percents == sorted(percents)  # the bar only moves forward
            assert await stock_of(kit.app) == (2500, 0, 0)
            status, html = await kit.get(http, "/products")
            assert 'data-stock="available">2500<' in html
            status, html = await kit.get(http, "/codes")
            assert f'data-import="{answer["id"]}" data-state="done"' in html
            assert not any(code in html for code in codes[:50])  # never a code on a page

            # the same file again: every code already landed, nothing new
            status, answer = await upload(kit, http, "codes.txt", codes_file(codes))
            last = (await poll(kit, http, answer["status_url"]))[-1]
            assert (last["imported"], last["duplicates"]) == (0, 2500)
        assert not list(spool.glob("console-import-*"))  # the temporary files are gone
        admin = [e for e in await audit(kit, "admin", OWNER.key) if e.detail.get("command") == "import"]
        assert [(e.detail["imported"], e.detail["duplicates"], e.channel) for e in admin] == [
            (0, 2500, OWNER.channel), (2500, 0, OWNER.channel)]
        assert admin[-1].detail["file"] == "codes.txt" and admin[-1].detail["bytes"] == len(codes_file(codes))
        assert len(await audit(kit, "import", OWNER.key)) == 2  # the importer's own entries, by the merchant


async def test_staff_import_and_the_plain_form_works_without_scripts(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        async with kit.client(STAFF) as http:
            status, location = await upload(kit, http, "course.csv", b"code\nhttps://example.org/course\n",
                                            sku="COURSE", script=False, sku_first=False)
            assert status == 303 and location.startswith("/console/codes?import=")
            job = location.split("=", 1)[1]
            last = (await poll(kit, http, f"/console/codes/imports/{job}"))[-1]
            assert last["imported"] == 1 and last["by"] == STAFF.key
            status, html = await kit.get(http, f"/codes?import={job}")
            assert status == 200 and 'id="progress" data-state="done"' in html and 'value="100"' in html
        assert await stock_of(kit.app, "COURSE") == (1, 0, 0)
        assert [e.actor for e in await audit(kit, "import", STAFF.key)] == [STAFF.key]


async def test_rejected_lines_are_reported_with_their_line_numbers(sqlite_url: str, tmp_path: Path) -> None:
    good = unique_codes(3)
    data = (good[0] + "\n").encode() + b"\xff\xfe broken\n" + (good[1] + "\n").encode() + b"bad\x01code\n" + (
        good[2] + "\n").encode()
    async with open_console(sqlite_url, tmp_path, catalog=CATALOG) as kit, kit.client(OWNER) as http:
        status, answer = await upload(kit, http, "mixed.txt", data)
        last = (await poll(kit, http, answer["status_url"]))[-1]
        assert (last["state"], last["imported"], last["rejected"]) == ("done", 3, 2)
        assert last["rejected_lines"] == ["line 2: not UTF-8", "line 4: control characters"]


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_each_refusal_is_clear_and_imports_nothing(db_url: str, tmp_path: Path, spool: Path) -> None:
    i18n = Translator()
    big = codes_file(unique_codes(60_000))  # ~1.3 MB, over the 1 MB cap
    async with open_console(db_url, tmp_path, catalog=CATALOG, extra={"console": {
            "enabled": True, "staff": [f"telegram:{STAFF.external_id}"], "max_upload_mb": 1}}) as kit:
        async with kit.client(OWNER) as http:
            cases = [
                ("codes.pdf", b"ABC-1\n", SKU, 400, "bad_file_type"),
                ("codes.txt", b"ABC-1\n\x00\x01\x02binary", SKU, 400, "binary_file"),
                ("codes.txt", b"", SKU, 400, "empty_file"),
                ("codes.csv", b"\n  \n\t\n" * 30_000, SKU, 400, "empty_file"),  # blank past the first block too
                ("codes.txt", b"ABC-1\n", "NOPE-1", 400, "unknown_sku"),
                ("codes.txt", b"ABC-1\n", "bad sku!", 400, "bad_sku"),
                ("codes.txt", big, SKU, 413, "file_too_big"),  # its length said up front: refused unread
                ("codes.txt", chunks(big), SKU, 413, "file_too_big"),  # no length: refused when the cap is passed
            ]
            for name, data, sku, want, reason in cases:
                status, answer = await upload(kit, http, name, data, sku=sku)
                assert (status, answer["refusal"]) == (want, reason), (name, sku, answer)
                assert answer["message"], answer
            status, answer = await upload(kit, http, "codes.txt", b"ABC-1\n", sku="NOPE-1")
            assert answer["message"] == i18n.t("en", "admin.error.unknown_sku", sku="NOPE-1")
            status, answer = await upload(kit, http, "codes.txt", b"ABC-1\n", csrf=False)
            assert status == 403  # the frame's refusal (an HTML page)
            status, html = await upload(kit, http, "codes.txt", b"ABC-1\n", script=False, csrf=False)
            assert status == 403 and 'data-refusal="csrf"' in html
            status, html = await upload(kit, http, "codes.exe", b"ABC-1\n", script=False)
            assert status == 400 and 'data-refusal="bad_file_type"' in html  # the page, for a form without scripts
            async with http.post(kit.base + "/console/codes/upload", data={"sku": SKU, "csrf": kit.csrf[id(http)]},
                                 headers={"Accept": "application/json"}) as r:
                assert r.status == 400 and (await r.json())["refusal"] == "no_file"
            async with http.get(kit.base + "/console/codes/imports/nope") as r:
                assert r.status == 404
        assert await stock_of(kit.app) == (0, 0, 0) and await stock_of(kit.app, "COURSE") == (0, 0, 0)
        assert not list(spool.glob("console-import-*"))  # partial and refused files deleted
        refused = [e.detail["refused"] for e in await audit(kit, "admin", OWNER.key)
                   if e.detail.get("command") == "import"]
        assert {"bad_file_type", "binary_file", "empty_file", "unknown_sku", "file_too_big"} <= set(refused)


async def test_an_import_that_fails_part_way_says_what_landed(db_url: str, tmp_path: Path, spool: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    codes = unique_codes(100)
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        kit.web.admin.import_batch = 20
        vault = kit.app.shop.vault
        real = vault.encrypt
        calls = 0

        def failing(*args: Any, **kw: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 50:  # the disk, the database, the key file: something gives way in the third batch
                raise OSError("disk gone")
            return real(*args, **kw)

        monkeypatch.setattr(vault, "encrypt", failing)
        async with kit.client(OWNER) as http:
            status, answer = await upload(kit, http, "codes.txt", codes_file(codes))
            last = (await poll(kit, http, answer["status_url"]))[-1]
            assert (last["state"], last["refusal"], last["imported"]) == ("failed", "failed", 40)
            assert "40" in last["error"] and last["percent"] < 100
        assert await stock_of(kit.app) == (40, 0, 0)
        assert not list(spool.glob("console-import-*"))
        failed = [e.detail for e in await audit(kit, "admin", OWNER.key) if e.detail.get("command") == "import"]
        assert failed[0]["failed"] == "OSError" and failed[0]["imported"] == 40


async def test_in_a_browser_the_bar_reaches_100_and_the_products_page_shows_the_new_stock(
        db_url: str, tmp_path: Path, page: Page) -> None:
    codes = unique_codes(3000)
    file = tmp_path / "codes.txt"
    file.write_bytes(codes_file(codes))
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))  # a script that broke
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        kit.web.admin.import_batch = 100
        await page.goto(await kit.link(OWNER))  # the Sign in form submits itself
        await page.wait_for_selector('[data-figure="orders"]')
        await page.goto(kit.base + "/console/codes")
        await page.select_option("#import-sku", SKU)
        await page.set_input_files("#import-file", str(file))
        await page.click("#import-submit")
        percents = []
        box = page.locator("#progress")
        for _ in range(600):
            state = await box.get_attribute("data-state")
            percents.append(int(await page.locator("#import-bar").get_attribute("data-percent") or 0))
            if state in ("done", "failed", "refused"):
                break
            await page.wait_for_timeout(25)
        assert state == "done", await page.locator("#import-error").inner_text()
        assert percents[-1] == 100 and percents == sorted(percents)
        assert await page.locator("#import-bar").evaluate("bar => bar.value") == 100
        assert await page.locator("#import-report").get_attribute("data-imported") == "3000"
        assert "Imported: 3000" in await page.locator("#import-report").inner_text()
        assert await page.locator("#recent").count() == 0  # the list is the page's as loaded; it shows on reload
        await page.goto(kit.base + "/console/products")
        row = page.locator(f'tr[data-sku="{SKU}"]')
        assert await row.locator('[data-stock="available"]').inner_text() == "3000"
        await page.set_viewport_size({"width": 360, "height": 740})  # a phone: the table scrolls, the page does not
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.goto(kit.base + "/console/codes")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        assert await page.locator('#recent tr[data-state="done"]').count() == 1
    assert not problems, problems
