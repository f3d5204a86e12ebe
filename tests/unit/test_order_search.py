"""An order search as the merchant types it (core/order_search.py): an order id in any case, a buyer as channel:id
or a bare id, a status, days in the store's zone, a page; garbage in any field is refused with its reason."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.models import OrderStatus
from core.order_search import OrderQuery, SearchCode, SearchError, parse_query


def test_an_empty_search_is_every_order_newest_first_from_page_one() -> None:
    assert parse_query() == OrderQuery()
    assert parse_query(status="all", page="1") == OrderQuery()


def test_each_field_becomes_its_filter() -> None:
    q = parse_query(order_id=" 260301abcd1234 ", buyer="wechat:o6_Xy-z", status="Delivered", first="2026-03-01",
                    last="2026-03-31", page="3")
    assert q == OrderQuery("260301ABCD1234", "wechat", "o6_Xy-z", OrderStatus.DELIVERED, date(2026, 3, 1),
                           date(2026, 3, 31), 2)
    assert parse_query(buyer="123456") == OrderQuery(channel=None, buyer_id="123456")  # any channel
    assert q.audit() == {"page": 3, "order": "260301ABCD1234", "buyer": "wechat:o6_Xy-z", "status": "delivered",
                         "from": "2026-03-01", "to": "2026-03-31"}


def test_days_are_whole_days_of_the_stores_zone() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    since, until = parse_query(first="2026-03-01", last="2026-03-01").window("Asia/Shanghai")
    assert (since, until) == (datetime(2026, 3, 1, tzinfo=sh), datetime(2026, 3, 2, tzinfo=sh))
    assert parse_query(first="2026-03-01").window("UTC")[1] is None  # open on that side
    assert parse_query(last="2999-12-31").window("UTC")[1] is not None


@pytest.mark.parametrize(("field", "value", "code"), [
    ("order_id", "R1' OR 1=1", SearchCode.BAD_ORDER_ID),
    ("order_id", "A" * 25, SearchCode.BAD_ORDER_ID),
    ("order_id", "订单", SearchCode.BAD_ORDER_ID),
    ("buyer", "tele gram:1", SearchCode.BAD_BUYER),
    ("buyer", "Telegram:1", SearchCode.BAD_BUYER),
    ("buyer", "telegram:", SearchCode.BAD_BUYER),
    ("buyer", ":1", SearchCode.BAD_BUYER),
    ("buyer", "telegram:1:2", SearchCode.BAD_BUYER),
    ("buyer", "u\x00", SearchCode.BAD_BUYER),
    ("buyer", "x" * 65, SearchCode.BAD_BUYER),
    ("status", "paid", SearchCode.BAD_STATUS),
    ("first", "2026-02-30", SearchCode.BAD_DATE),
    ("first", "20260301", SearchCode.BAD_DATE),
    ("last", "1999-12-31", SearchCode.BAD_DATE),
    ("last", "9999-12-31", SearchCode.BAD_DATE),
    ("page", "0", SearchCode.BAD_PAGE),
    ("page", "-1", SearchCode.BAD_PAGE),
    ("page", "١", SearchCode.BAD_PAGE),  # an Arabic-Indic digit is a digit to str.isdigit, not a page
    ("page", "100001", SearchCode.BAD_PAGE),
])
def test_garbage_is_refused_with_its_reason(field: str, value: str, code: SearchCode) -> None:
    with pytest.raises(SearchError) as err:
        parse_query(**{field: value})
    assert err.value.code is code


def test_backwards_days_are_refused_naming_both() -> None:
    with pytest.raises(SearchError) as err:
        parse_query(first="2026-03-05", last="2026-03-01")
    assert (err.value.code, err.value.params) == (SearchCode.DATES_BACKWARDS,
                                                  {"start": "2026-03-05", "end": "2026-03-01"})
    with pytest.raises(SearchError) as err:
        parse_query(status="sold")
    assert err.value.params["statuses"].startswith("held, pending, delivered")  # what is allowed
