"""Tickets in storage, on SQLite and PostgreSQL: two merchants answering one ticket at once decide it once (the
loser's codes untouched), a refund closes the order's open tickets, and a buyer's history holds only their own
purchases, reveals and tickets, newest first, in pages."""
from __future__ import annotations

import asyncio
from pathlib import Path

from core.admin import Merchant
from core.aftersales import AftersalesCode, AftersalesError
from core.models import CodeStatus
from handlers.admin import AdminFlow
from locales import Translator
from tests.helpers import SKU, buyer, import_n, open_shop, pay, settle


async def _delivered(app, who: str) -> str:  # noqa: ANN001
    order = await app.shop.reserve(buyer(who), (await app.shop.product_by_sku(SKU)).id, 1, "en", who)
    assert (await pay(app, order)).outcome == "delivered"
    return order.id


async def test_two_merchants_answering_one_ticket_at_once_decide_it_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        await import_n(app, 6)
        order_id = await _delivered(app, "ann")
        desk = app.shop.problems
        outcome = await desk.report(buyer("ann"), order_id, "wrong_product")
        assert (outcome.outcome, outcome.ticket) == ("ticket", 1)
        again = await desk.report(buyer("ann"), order_id, "other", "still wrong")
        assert again.ticket == 1  # one open ticket per order

        results = await asyncio.gather(desk.reissue("telegram:1", "telegram", order_id, 1),
                                       desk.reject("telegram:2", "telegram", order_id, "no", 1),
                                       return_exceptions=True)
        closed = [r for r in results if isinstance(r, AftersalesError)]
        assert len(closed) == 1 and not any(isinstance(r, Exception) and r is not closed[0] for r in results)
        assert closed[0].code is AftersalesCode.TICKET_CLOSED
        assert closed[0].params["ticket"] == "T1" and closed[0].params["state"] in ("reissued", "rejected")
        [ticket] = (await desk.tickets_for([order_id]))[order_id]
        assert ticket.status in ("reissued", "rejected")
        await settle(app)
        replaced = notifier.notices_to("ann", "aftersales.replaced")
        rejected = notifier.notices_to("ann", "aftersales.rejected")
        assert (len(replaced), len(rejected)) == ((1, 0) if ticket.status == "reissued" else (0, 1))
        async with app.db.uow() as uow:
            codes = (await uow.codes.for_orders([order_id]))[order_id]
        burned = [c for c in codes if c.status is CodeStatus.BURNED]
        assert len(burned) == (1 if ticket.status == "reissued" else 0)  # the loser burned nothing


async def test_a_refund_closes_the_orders_open_ticket_and_history_is_the_buyers_own(db_url: str,
                                                                                    tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, gateway):
        await import_n(app, 6)
        first = await _delivered(app, "ann")
        second = await _delivered(app, "ann")
        await _delivered(app, "bob")  # someone else's order: never in Ann's history
        await app.shop.reveal(first, buyer("ann"), chat="group-7")
        desk = app.shop.problems
        await desk.report(buyer("ann"), second, "wrong_product")
        await AdminFlow(app.shop, Translator()).service.refund(Merchant("telegram", "1"), second)
        [ticket] = (await desk.tickets_for([second]))[second]
        assert (ticket.status, ticket.decided_by) == ("refunded", "telegram:1")
        await settle(app)
        assert [p.order_id for p, _ in gateway.refunds] == [second]

        items = await desk.history(buyer("ann"), 10)
        assert [(i.kind, i.order_id) for i in items] == [  # newest first; bob's order is not there
            ("ticket", second), ("reveal", first), ("purchase", second), ("purchase", first)]
        assert items[0].status == "refunded" and items[2].status == "refunded"  # ticket; the order (settled)
        [reveal] = [i for i in items if i.kind == "reveal"]
        assert (reveal.chat, reveal.channel) == ("group-7", "test")
        page = await desk.history(buyer("ann"), 2, 2)
        assert [(i.kind, i.order_id) for i in page] == [(i.kind, i.order_id) for i in items[2:4]]
        assert [i.kind for i in await desk.history(buyer("bob"), 10)] == ["purchase"]
        assert await desk.open_tickets(10) == []
