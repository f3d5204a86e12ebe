"""The console's audit log over HTTP (and once in a real browser): newest first, paged, filtered by action, actor,
order and dates; bad filters refused with why; never a code on the page although codes were delivered and revealed;
staff kept out."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Page

from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import buyer, import_n, pay, product_id, settle


def _rows(html: str) -> list[tuple[int, str]]:
    """(id, action) of every entry shown, in page order."""
    return [(int(i), a) for i, a in re.findall(r'data-audit="(\d+)" data-action="([a-z_]+)"', html)]


def _today(kit: ConsoleKit) -> str:
    return datetime.now(ZoneInfo(kit.app.settings.jobs.timezone)).date().isoformat()


async def test_the_log_shows_deliveries_and_reveals_but_never_a_code(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http:
        codes = await import_n(kit.app, 3)
        alice, bob = buyer("alice"), buyer("bob")
        first = await kit.app.shop.reserve(alice, await product_id(kit.app), 2, "en")
        second = await kit.app.shop.reserve(bob, await product_id(kit.app), 1, "en")
        await pay(kit.app, first)
        await pay(kit.app, second)
        await settle(kit.app)
        _, _, shown = await kit.app.shop.reveal(first.id, alice)
        assert sorted(shown) and set(shown) <= set(codes)  # codes did go out, and were seen again

        status, html = await kit.get(http, "/audit")
        assert status == 200
        rows = _rows(html)
        assert [i for i, _ in rows] == sorted((i for i, _ in rows), reverse=True)  # newest first
        assert {"deliver", "reveal", "import"} <= {a for _, a in rows}
        assert not [c for c in codes if c in html]  # delivered, revealed, imported: never on the page

        # every entry the store holds, read straight from the database: no code in any detail either
        async with kit.app.shop.uow() as uow:
            every = await uow.audit.search(action=None, actor=None, order_id=None, since=None, until=None,
                                           before_id=None, limit=1000)
        assert not [c for c in codes for e in every if c in str(e.detail)]

        status, html = await kit.get(http, "/audit?action=reveal")
        assert {a for _, a in _rows(html)} == {"reveal"} and alice.key in html
        status, html = await kit.get(http, f"/audit?actor={alice.key}")
        assert {a for _, a in _rows(html)} == {"reveal"}
        status, html = await kit.get(http, "/audit?actor=system")  # the outbox delivered
        assert {a for _, a in _rows(html)} == {"deliver"} and alice.key not in html
        status, html = await kit.get(http, f"/audit?order={second.id.lower()}")  # as typed: case does not matter
        assert {a for _, a in _rows(html)} == {"deliver"} and first.id not in html
        today = _today(kit)
        status, html = await kit.get(http, f"/audit?from={today}&to={today}&action=deliver")
        assert len(_rows(html)) == 2
        yesterday = (datetime.fromisoformat(today) - timedelta(days=1)).date().isoformat()
        status, html = await kit.get(http, f"/audit?from={yesterday}")
        assert status == 200 and "data-empty" in html

        # the looks at the log are recorded, with the merchant's identity and the filters
        async with kit.app.shop.uow() as uow:
            looks = [e.detail for e in await uow.audit.latest("admin", OWNER.key)
                     if e.detail["command"] == "audit_log"]
        assert {"command": "audit_log", "action": "reveal", "entries": 1} in looks


async def test_bad_filters_are_refused_and_staff_kept_out(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        today = datetime.fromisoformat(_today(kit))
        later = (today + timedelta(days=2)).date().isoformat()
        async with kit.client(OWNER) as http:
            for query, code in (("action=DROP%20TABLE", "audit_bad_filter"), ("order=a%20b", "audit_bad_filter"),
                                ("actor=" + "x" * 97, "audit_bad_filter"), ("before=abc", "audit_bad_filter"),
                                ("before=0", "audit_bad_filter"), ("from=2024-13-01", "report_bad_period"),
                                (f"from={later}", "report_future"),
                                ("from=2024-03-02&to=2024-03-01", "report_backwards"),
                                ("from=2014-01-01&to=2024-01-01", "report_too_long")):
                status, html = await kit.get(http, "/audit?" + query)
                assert status == 400 and f'data-refusal="{code}"' in html, query
                assert "data-audit=" not in html
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, "/audit")
            assert status == 403 and 'data-refusal="owner_only"' in html


async def test_pages_walk_back_through_the_whole_log(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit, kit.client(OWNER) as http:
        for i in range(120):
            await kit.web.admin.record(OWNER, "stock", n=i)
        seen: list[int] = []
        path = "/audit?action=admin&actor=" + OWNER.key
        for _ in range(5):
            status, html = await kit.get(http, path)
            seen += [i for i, _ in _rows(html)]
            older = re.search(r'data-older href="\?([^"]+)"', html)
            if older is None:
                break
            path = "/audit?" + older.group(1).replace("&amp;", "&")
            assert "action=admin" in path  # the filters go along
        # 120 records, plus the looks recorded while paging (each after its page was read)
        assert len(seen) == len(set(seen)) and len(seen) >= 120
        assert seen == sorted(seen, reverse=True)


async def test_in_a_browser_the_log_shows_an_action_just_taken(sqlite_url: str, tmp_path: Path, page: Page) -> None:
    async with open_console(sqlite_url, tmp_path) as kit:
        await page.goto(await kit.link(OWNER))
        await page.wait_for_url(re.compile(r"/console/$"))
        await page.goto(kit.base + "/console/resellers")
        await page.fill("#new-reseller input[name=name]", "Acme <b>Trading</b>")
        await page.fill("#new-reseller input[name=discount]", "15")
        await page.click("#new-reseller button[type=submit]")
        await page.wait_for_selector("[data-done=created]")

        await page.goto(kit.base + "/console/audit")
        await page.fill("#audit-filters input[name=action]", "reseller")
        await page.click("#audit-filters button[type=submit]")
        row = page.locator("tr[data-action=reseller]").first
        assert await row.locator("[data-detail=op]").inner_text() == "op=create"
        assert await row.locator("[data-detail=name]").inner_text() == "name=Acme <b>Trading</b>"  # text, not markup
        await page.goto(kit.base + "/console/audit?action=admin")
        mine = page.locator("tr[data-action=admin]", has_text="console reseller").first
        assert OWNER.key in await mine.inner_text()
