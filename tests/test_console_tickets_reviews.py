"""The console's after-sales tickets and review queue over real HTTP on SQLite and PostgreSQL: a ticket is answered
by reissue or reject (owners and staff) or refund (owners), the chat's use cases with the merchant's identity, and a
ticket answered already, an unknown one or a reject without an answer is refused in the chat's words, changing
nothing; an order held for review is approved or rejected there, audited with the merchant."""
from __future__ import annotations

import re
from pathlib import Path

from core.errors import ErrorCode, StoreError
from core.models import Buyer, Order
from locales import Translator
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.helpers import buyer, import_n, order_status, pay, product_id, settle, stock_of

BIG = [{"sku": "BIG", "title": "Big card", "price": 400_000, "kind": "code", "max_qty": 5}]
REVIEW = {"risk": {"review_at": 40, "refuse_at": 200}}  # a new account's large order scores 50: review


def refusal(html: str) -> str | None:
    found = re.search(r'data-refusal="([a-z_]+)"', html)
    return found.group(1) if found else None


def listed(html: str, kind: str) -> list[str]:
    return re.findall(rf'<section class="card {kind}" data-{"ticket" if kind == "ticket" else "order"}="(\w+)"', html)


async def ticket_on(kit: ConsoleKit, who: Buyer) -> tuple[Order, str]:
    """A delivered order its buyer reported straight to the merchants: (order, "T<id>")."""
    order = await kit.app.shop.reserve(who, await product_id(kit.app), 1, "en")
    assert (await pay(kit.app, order)).outcome == "delivered"
    outcome = await kit.app.shop.problems.report(who, order.id, "other", "the code says used", ticket=True)
    assert outcome.ticket is not None
    await settle(kit.app)
    return order, f"T{outcome.ticket}"


async def ticket_status(kit: ConsoleKit, order_id: str) -> list[tuple[str, str, str]]:
    tickets = (await kit.app.shop.problems.tickets_for([order_id])).get(order_id, [])
    return [(tk.status, tk.decided_by, tk.answer) for tk in tickets]


async def test_tickets_are_reissued_or_rejected_by_staff_and_refused_in_the_chats_words(
        db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        await import_n(kit.app, 5)
        one, t1 = await ticket_on(kit, buyer("alice"))
        two, t2 = await ticket_on(kit, buyer("bob"))
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, "/tickets")
            assert status == 200 and listed(html, "ticket") == [t1, t2]  # oldest first
            assert "the code says used" in html and 'class="refund"' not in html  # staff: no refund button
            status, html = await kit.post(http, f"/tickets/{t1}/reissue")
            assert status == 200 and f'data-done="{t1}"' in html and listed(html, "ticket") == [t2]
            assert f"new code(s) of order {one.id} are on their way" in html  # the chat's words
            status, html = await kit.post(http, f"/tickets/{t1}/reissue")
            assert (status, refusal(html)) == (409, "ticket_closed") and f"Ticket {t1} was already answered" in html
            status, html = await kit.post(http, f"/tickets/{t2}/reject", {"answer": "  "})
            assert (status, refusal(html)) == (400, "no_answer")
            assert await ticket_status(kit, two.id) == [("open", "", "")]
            status, html = await kit.post(http, f"/tickets/{t2}/reject", {"answer": "The code was redeemed by you."})
            assert status == 200 and f'data-done="{t2}"' in html and listed(html, "ticket") == []
            assert 'id="no-tickets"' in html
            for ref, code in (("T99999", "ticket_not_found"), ("NOPE", "ticket_not_found")):
                status, html = await kit.post(http, f"/tickets/{ref}/reject", {"answer": "no"})
                assert (status, refusal(html)) == (404, code), ref
            status, html = await kit.post(http, f"/tickets/{t2}/reissue", csrf=False)
            assert (status, refusal(html)) == (403, "csrf")
        await settle(kit.app)
        assert await ticket_status(kit, one.id) == [("reissued", STAFF.key, "")]
        assert await ticket_status(kit, two.id) == [("rejected", STAFF.key, "The code was redeemed by you.")]
        assert len(kit.notifier.delivered_to(buyer("alice").external_id)) == 2  # the order, then the new code
        assert kit.notifier.notices_to(buyer("bob").external_id, "aftersales.rejected")
        assert await stock_of(kit.app) == (2, 0, 2)  # five codes: bob's and alice's new one sold, her old one burned


async def test_a_ticket_is_refunded_by_the_owner_only_and_once(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit:
        await import_n(kit.app, 4)
        order, ref = await ticket_on(kit, buyer("alice"))
        other, other_ref = await ticket_on(kit, buyer("bob"))
        async with kit.client(STAFF) as http:
            await kit.get(http, "/tickets")
            status, html = await kit.post(http, f"/tickets/{ref}/refund")
            assert (status, refusal(html)) == (403, "owner_only")
            assert (await kit.post(http, f"/tickets/{other_ref}/reissue"))[0] == 200
        await settle(kit.app)
        assert kit.gateway.refunds == [] and await ticket_status(kit, order.id) == [("open", "", "")]
        async with kit.client(OWNER) as http:
            _, html = await kit.get(http, "/tickets")
            assert 'class="refund"' in html
            status, html = await kit.post(http, f"/tickets/{ref}/refund")
            assert status == 200 and f'data-done="{ref}"' in html and "Refund queued" in html
            status, html = await kit.post(http, f"/tickets/{ref}/refund")
            assert (status, refusal(html)) == (409, "ticket_closed")
            # staff reissued bob's meanwhile: the owner's (stale) refund button is refused, not paid out on top
            status, html = await kit.post(http, f"/tickets/{other_ref}/refund")
            assert (status, refusal(html)) == (409, "ticket_closed")
        await settle(kit.app)
        assert await order_status(kit.app, other.id) == "delivered"
        assert kit.gateway.refunded_txns() == [f"txn-{order.id}"]
        assert await order_status(kit.app, order.id) == "refunded"
        assert await ticket_status(kit, order.id) == [("refunded", OWNER.key, "")]


async def test_a_reissue_with_an_empty_pool_is_refused_and_the_ticket_stays_open(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit:
        await import_n(kit.app, 1)
        order, ref = await ticket_on(kit, buyer("alice"))
        async with kit.client(OWNER) as http:
            await kit.get(http, "/tickets")
            status, html = await kit.post(http, f"/tickets/{ref}/reissue")
            assert (status, refusal(html)) == (409, "no_replacement") and listed(html, "ticket") == [ref]
        assert await ticket_status(kit, order.id) == [("open", "", "")]


async def held_for_review(kit: ConsoleKit, who: Buyer) -> str:
    try:
        await kit.app.shop.reserve(who, await product_id(kit.app, "BIG"), 1, "en")
    except StoreError as exc:
        assert exc.code is ErrorCode.UNDER_REVIEW
        return str(exc.params["order_id"])
    raise AssertionError("the order was not held for review")


async def test_orders_under_review_are_approved_or_rejected_audited_with_the_merchant(
        db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path, catalog=BIG, extra=REVIEW) as kit:
        await import_n(kit.app, 3, "BIG")
        first = await held_for_review(kit, buyer("alice"))
        second = await held_for_review(kit, buyer("bob"))
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, "/reviews")
            assert status == 200 and listed(html, "review") == [first, second]
            assert 'data-score="50"' in html and "order value" in html.lower()
            status, html = await kit.post(http, f"/reviews/{first}/approve")
            assert status == 200 and 'data-done="approve"' in html and listed(html, "review") == [second]
            status, html = await kit.post(http, f"/reviews/{first}/reject")
            assert (status, refusal(html)) == (409, "order_not_payable")
            assert f"Order {first} could not be decided" in html  # the chat's words
            for bad in ("NOPE0000", "x%27--"):
                status, html = await kit.post(http, f"/reviews/{bad}/approve")
                assert (status, refusal(html)) == (404, "not_found"), bad
            status, html = await kit.post(http, f"/reviews/{second}/approve", csrf=False)
            assert (status, refusal(html)) == (403, "csrf")
        async with kit.client(OWNER) as http:
            await kit.get(http, "/reviews")
            status, html = await kit.post(http, f"/reviews/{second}/reject", {"note": "stolen card"})
            assert status == 200 and 'data-done="reject"' in html and 'id="no-reviews"' in html
        await settle(kit.app)
        assert await order_status(kit.app, first) == "held" and await order_status(kit.app, second) == "cancelled"
        assert await stock_of(kit.app, "BIG") == (2, 1, 0)  # the rejected order's code went back
        assert kit.notifier.notices_to(buyer("alice").external_id, "risk.review.approved")
        assert kit.notifier.notices_to(buyer("bob").external_id, "risk.review.rejected")
        async with kit.app.shop.uow() as uow:
            decisions = {(e.order_id, e.actor, e.detail["decision"]) for e in await uow.audit.latest("review")}
        assert decisions == {(first, STAFF.key, "approved"), (second, OWNER.key, "rejected")}


def test_every_word_the_work_pages_use_is_in_both_languages() -> None:
    root = Path(__file__).resolve().parents[1] / "bots" / "web"
    sources = [*(root / "templates").glob("orders_*.html"), root / "templates" / "tickets.html",
               root / "templates" / "reviews.html", *((root / "pages" / f"{m}.py") for m in ("orders", "tickets",
                                                                                              "reviews", "shown"))]
    keys = {k for f in sources for k in re.findall(r"""\bt\(\s*["']([a-z_][a-z0-9_.]+)["']""", f.read_text())}
    used = {k for k in keys if not k.endswith(".")}
    prefixes = keys - used  # t("status." ~ o.status.value), req.t("risk.reason." + signal)
    assert {"console.orders.title", "admin.refund.queued", "risk.admin.review_failed"} <= used
    tr = Translator(("en", "zh_CN"))
    for lang in ("en", "zh_CN"):
        assert used - set(tr.catalogs[lang]) == set(), lang
        assert all(any(k.startswith(p) for k in tr.catalogs[lang]) for p in prefixes), lang
