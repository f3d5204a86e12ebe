"""The console's orders over real HTTP (tests/console_kit.py) on SQLite and PostgreSQL: a merchant finds orders by
id, buyer, status and days (in jobs.timezone), newest first in pages; garbage is refused and searched for nowhere;
an order's detail shows its payments, its codes by row id and state and its trail, never a code's text; the owner
refunds once (the provider is asked once, through the outbox), staff may not (403, nothing changed); a reveal shows
the codes on its POST's answer only and is audited with the merchant as the actor, limited like a buyer's; a POST
without the CSRF token does nothing."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Dialog, Page

from core.clock import FakeClock
from core.models import AuditEntry, Buyer, Order
from core.shop import REVEALS_PER_HOUR
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import buyer, import_n, order_status, pay, product_id, settle

ROW = re.compile(r'<tr data-order="([0-9A-Z]+)"')
START = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # 2026-03-02 01:00 in Shanghai
SHANGHAI = {"jobs": {"timezone": "Asia/Shanghai"}}


def rows(html: str) -> list[str]:
    return ROW.findall(html)


def refusal(html: str) -> str | None:
    found = re.search(r'data-refusal="([a-z_]+)"', html)
    return found.group(1) if found else None


async def delivered(kit: ConsoleKit, who: Buyer, qty: int = 1) -> Order:
    order = await kit.app.shop.reserve(who, await product_id(kit.app), qty, "en")
    assert (await pay(kit.app, order)).outcome == "delivered"
    await settle(kit.app)
    return order


async def audited(kit: ConsoleKit, action: str, actor: str) -> list:  # noqa: ANN401
    async with kit.app.shop.uow() as uow:
        return await uow.audit.latest(action, actor)


async def test_orders_are_found_by_id_buyer_status_and_days_newest_first(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_console(db_url, tmp_path, clock=clock, extra=SHANGHAI) as kit:
        await import_n(kit.app, 10)
        pid = await product_id(kit.app)
        first = await delivered(kit, buyer("alice"))  # 2026-03-02 01:00 in the store's zone
        clock.advance(days=1)
        held = await kit.app.shop.reserve(buyer("bob"), pid, 1, "en")  # 03-03
        clock.advance(days=1)
        second = await delivered(kit, buyer("alice"), 2)  # 03-04
        clock.advance(minutes=1)
        twin = await kit.app.shop.reserve(Buyer("wechat", "ualice"), pid, 1, "en")  # the same id on WeChat
        async with kit.client(OWNER) as http:
            everything = rows((await kit.get(http, "/orders"))[1])
            assert everything == [twin.id, second.id, held.id, first.id]  # newest first
            for query, want in [
                (f"id={second.id}", [second.id]),
                (f"id={second.id.lower()}", [second.id]),  # read out over the phone in lower case
                ("id=260301ZZZZZZZZ", []),
                ("buyer=test:ualice", [second.id, first.id]),
                ("buyer=ualice", [twin.id, second.id, first.id]),  # a bare id: any channel
                ("buyer=wechat:ualice", [twin.id]),
                ("status=held", [twin.id, held.id]),
                ("status=delivered&buyer=ualice", [second.id, first.id]),
                ("status=all", everything),
                ("from=2026-03-02&to=2026-03-02", [first.id]),  # 01:00 in Shanghai is still 03-01 in UTC
                ("from=2026-03-01&to=2026-03-01", []),
                ("from=2026-03-03", [twin.id, second.id, held.id]),
                ("to=2026-03-03", [held.id, first.id]),
                ("from=2026-03-02&to=2026-03-04&status=delivered&buyer=test:ualice", [second.id, first.id]),
            ]:
                status, html = await kit.get(http, "/orders?" + query)
                assert status == 200 and refusal(html) is None, query
                assert rows(html) == want, query
            _, html = await kit.get(http, "/orders?buyer=wechat:ualice&status=held")
            assert 'value="wechat:ualice"' in html and '<option value="held" selected>' in html  # the form kept
        [search] = [e.detail for e in await audited(kit, "admin", OWNER.key) if e.detail.get("buyer") == "wechat:ualice"
                    and e.detail.get("status") == "held"]
        assert search == {"command": "orders", "buyer": "wechat:ualice", "status": "held", "page": 1}


async def test_orders_come_a_page_at_a_time(sqlite_url: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with open_console(sqlite_url, tmp_path, clock=clock) as kit:
        await import_n(kit.app, 30)
        pid = await product_id(kit.app)
        made = []
        for i in range(27):
            made.append((await kit.app.shop.reserve(buyer(i), pid, 1, "en")).id)
            clock.advance(minutes=1)
        async with kit.client(OWNER) as http:
            _, one = await kit.get(http, "/orders?status=held")
            assert rows(one) == made[::-1][:25] and 'rel="next"' in one and 'rel="prev"' not in one
            nxt = re.search(r'href="/console(/orders\?[^"]+)" rel="next"', one)
            assert nxt is not None and "status=held" in nxt.group(1)
            _, two = await kit.get(http, nxt.group(1).replace("&amp;", "&"))
            assert rows(two) == made[::-1][25:] and 'rel="next"' not in two and 'rel="prev"' in two
            assert rows((await kit.get(http, "/orders?page=9"))[1]) == []


async def test_garbage_in_a_search_is_refused_clearly_and_nothing_is_listed(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        await import_n(kit.app, 2)
        await delivered(kit, buyer("alice"))
        async with kit.client(STAFF) as http:
            for query, code in [
                ("id=R1%27%20OR%201=1", "bad_order_id"),
                ("id=" + "9" * 25, "bad_order_id"),
                ("buyer=tele%20gram:1", "bad_buyer"),
                ("buyer=TELEGRAM:1", "bad_buyer"),
                ("buyer=u%20alice", "bad_buyer"),
                ("buyer=" + "x" * 65, "bad_buyer"),
                ("status=paid", "bad_status"),
                ("from=2026-13-01", "bad_date"),
                ("to=yesterday", "bad_date"),
                ("from=1000-01-01", "bad_date"),
                ("from=2026-03-05&to=2026-03-01", "dates_backwards"),
                ("page=0", "bad_page"),
                ("page=two", "bad_page"),
            ]:
                status, html = await kit.get(http, "/orders?" + query)
                assert (status, refusal(html)) == (400, code), query
                assert rows(html) == [] and 'id="order-search"' in html, query
            _, html = await kit.get(http, "/orders?status=paid")
            assert "Unknown status paid. Use one of: held, pending, delivered" in html  # the chat's words
            _, html = await kit.get(http, "/orders?from=2026-03-05&to=2026-03-01&lang=zh_CN")
            assert "日期顺序颠倒" in html
        refused = [e.detail for e in await audited(kit, "admin", STAFF.key) if e.detail.get("refused")]
        assert {d["refused"] for d in refused} >= {"bad_order_id", "bad_buyer", "bad_status", "bad_date"}


async def test_the_detail_shows_payments_codes_by_row_id_and_the_trail_never_a_codes_text(
        db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        codes = await import_n(kit.app, 4)
        order = await delivered(kit, buyer("alice"), 2)
        held = await kit.app.shop.reserve(buyer("bob"), await product_id(kit.app), 1, "en")
        async with kit.app.shop.uow() as uow:
            mine = (await uow.codes.for_orders([order.id]))[order.id]
        for who in (OWNER, STAFF):
            async with kit.client(who) as http:
                status, html = await kit.get(http, f"/orders/{order.id}")
                assert status == 200
                assert f'data-order="{order.id}" data-status="delivered"' in html
                assert {int(i) for i in re.findall(r'data-code-id="(\d+)" data-status="sold"', html)} == {
                    c.id for c in mine}
                assert f"txn-{order.id}" in html and 'data-payment="' in html  # the payment, by its transaction
                assert 'data-action="deliver"' in html  # the trail
                assert 'id="reveal"' in html and ('id="refund"' in html) is (who == OWNER)
                pages = [html]
                for path in ("/", "/orders", f"/orders?buyer={buyer('alice').key}", f"/orders/{held.id}",
                             "/tickets", "/reviews", f"/orders/{order.id}?lang=zh_CN"):
                    status, page = await kit.get(http, path)
                    assert status == 200, path
                    pages.append(page)
                for page in pages:
                    assert not [c for c in codes if c in page]  # no GET page ever carries a code
        async with kit.app.shop.uow(write=True) as uow:  # a much-viewed order: its trail shows the newest 30
            await uow.audit.add_many([AuditEntry("admin", OWNER.key, "telegram", kit.app.clock.now(), order.id,
                                                 detail={"command": "order", "n": i}) for i in range(120)])
            await uow.commit()
        async with kit.client(OWNER) as http:
            _, html = await kit.get(http, f"/orders/{order.id}")
            assert len(re.findall(r'<tr data-action="', html)) == 30 and "earlier entries are not shown" in html
            shown = {int(n) for n in re.findall(r"n=(\d+)</td>", html)}
            assert shown == set(range(90, 120))  # the older ones (and the delivery) are left out
            _, html = await kit.get(http, f"/orders/{held.id}")
            assert 'id="reveal"' not in html and 'id="refund"' not in html  # nothing to show or refund yet
            for bad in ("NOPE0000", "x" * 40, "R1%27--"):
                status, html = await kit.get(http, f"/orders/{bad}")
                assert (status, refusal(html)) == (404, "order_not_found"), bad


async def test_the_owner_refunds_once_through_the_outbox_and_staff_may_not(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        await import_n(kit.app, 3)
        order = await delivered(kit, buyer("alice"))
        async with kit.client(STAFF) as http:
            await kit.get(http, f"/orders/{order.id}")
            status, html = await kit.post(http, f"/orders/{order.id}/refund")
            assert (status, refusal(html)) == (403, "owner_only")
        await settle(kit.app)
        assert await order_status(kit.app, order.id) == "delivered" and kit.gateway.refunds == []
        async with kit.client(OWNER) as http:
            await kit.get(http, f"/orders/{order.id}")
            status, html = await kit.post(http, f"/orders/{order.id}/refund")
            assert status == 200 and 'data-done="refund"' in html and "Refund queued" in html
            await settle(kit.app)
            assert kit.gateway.refunded_txns() == [f"txn-{order.id}"]
            assert await order_status(kit.app, order.id) == "refunded"
            status, html = await kit.post(http, f"/orders/{order.id}/refund")
            assert (status, refusal(html)) == (409, "already_refunded")
            assert f"Order {order.id} is already" in html
            _, html = await kit.get(http, f"/orders/{order.id}")
            assert 'data-status="refunded"' in html and 'id="refund"' not in html
            assert re.findall(r'data-code-id="\d+" data-status="(\w+)"', html) == ["burned"]
            status, html = await kit.post(http, "/orders/NOPE0000/refund")
            assert (status, refusal(html)) == (404, "order_not_found")
        await settle(kit.app)
        assert len(kit.gateway.refunds) == 1
        [done] = [e for e in await audited(kit, "admin", OWNER.key) if e.detail["command"] == "refund"
                  and "refused" not in e.detail]
        assert done.order_id == order.id and done.detail["codes_burned"] == 1
        assert [e for e in await audited(kit, "admin_denied", STAFF.key)
                if e.detail["command"] == "console /orders/{id}/refund"]


async def test_a_reveal_shows_the_codes_on_its_answer_only_audited_and_limited(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        codes = await import_n(kit.app, 3)
        order = await delivered(kit, buyer("alice"), 2)
        held = await kit.app.shop.reserve(buyer("bob"), await product_id(kit.app), 1, "en")
        sold = sorted(kit.notifier.codes())  # what the buyer got
        assert len(sold) == 2
        async with kit.client(STAFF) as http:
            await kit.get(http, f"/orders/{order.id}")
            status, html = await kit.post(http, f"/orders/{order.id}/reveal")
            assert status == 200 and sorted(re.findall(r"<p class=\"secret\" data-secret>([^<]+)</p>", html)) == sold
            _, page = await kit.get(http, f"/orders/{order.id}")
            assert not [c for c in codes if c in page]  # the detail still shows none
            assert 'data-action="reveal" data-actor="telegram:222"' in page  # the reveal is on the trail
            status, html = await kit.post(http, f"/orders/{held.id}/reveal")
            assert (status, refusal(html)) == (409, "nothing_to_reveal") and not [c for c in codes if c in html]
        [entry] = await audited(kit, "reveal", STAFF.key)
        assert (entry.order_id, entry.channel, entry.detail["merchant"], entry.detail["codes"]) == (
            order.id, "telegram", True, 2)
        async with kit.client(OWNER) as http:
            await kit.get(http, f"/orders/{order.id}")
            for _ in range(REVEALS_PER_HOUR):
                assert (await kit.post(http, f"/orders/{order.id}/reveal"))[0] == 200
            status, html = await kit.post(http, f"/orders/{order.id}/reveal")
            assert (status, refusal(html)) == (429, "reveal_limit") and not [c for c in codes if c in html]
        assert len(await audited(kit, "reveal", OWNER.key)) == REVEALS_PER_HOUR


async def test_a_post_without_the_csrf_token_changes_nothing(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        codes = await import_n(kit.app, 2)
        order = await delivered(kit, buyer("alice"))
        async with kit.client(OWNER) as http:
            for action in ("refund", "reveal"):
                status, html = await kit.post(http, f"/orders/{order.id}/{action}", csrf=False)
                assert (status, refusal(html)) == (403, "csrf"), action
                assert not [c for c in codes if c in html]
        await settle(kit.app)
        assert await order_status(kit.app, order.id) == "delivered" and kit.gateway.refunds == []
        assert await audited(kit, "reveal", OWNER.key) == []


async def test_in_a_browser_the_owner_finds_an_order_and_refunds_it(db_url: str, tmp_path: Path, page: Page) -> None:
    async with open_console(db_url, tmp_path) as kit:
        codes = await import_n(kit.app, 3)
        await delivered(kit, buyer("bob"))
        order = await delivered(kit, buyer("alice"))
        await page.goto(await kit.link(OWNER))  # the link the bot sends; its form signs in by itself
        await page.wait_for_selector('[data-figure="orders"]')
        await page.set_viewport_size({"width": 360, "height": 780})  # a phone
        await page.goto(kit.base + "/console/orders")
        await page.fill('#order-search input[name="buyer"]', buyer("alice").key)
        await page.click('#order-search button[type="submit"]')
        await page.wait_for_url("**/console/orders?*buyer=*")
        assert await page.locator("tr[data-order]").count() == 1
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # the table scrolls, not the page
        await page.click(f'tr[data-order="{order.id}"] a')
        await page.wait_for_selector(f'#order[data-order="{order.id}"][data-status="delivered"]')
        assert not [c for c in codes if c in await page.content()]
        asked: list[str] = []

        async def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        page.once("dialog", confirm)
        await page.click("#refund button")
        await page.wait_for_selector('[data-done="refund"]')
        assert asked and order.id in asked[0]  # the merchant was asked first
        await settle(kit.app)
        assert kit.gateway.refunded_txns() == [f"txn-{order.id}"]
        await page.click("#back")
        await page.wait_for_selector('#order[data-status="refunded"]')
        assert await page.locator("#refund").count() == 0
