"""What a merchant's order search is (the console's /orders), checked before anything is read.

A search names any of: an order id (exact), a buyer (`channel:id`, or a bare id on any channel), a status, and a
range of days (both ends included, whole days in the store's zone `jobs.timezone`); results come newest first, a
page at a time (core/admin.py `AdminService.search_orders`, one query: storage/orders.py `OrderRepo.search`). Garbage
is refused with its reason (`SearchCode`, worded by handlers/errors.py in the merchant commands' room), never searched
for; an empty field is no filter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import Refused
from core.models import OrderStatus

ORDER_ID = re.compile(r"^[0-9A-Za-z]{1,24}$")
CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,15}$")  # orders.buyer_channel is 16 characters
BUYER_ID = re.compile(r"^[^\s:]{1,64}$")  # orders.buyer_id is 64 characters; a Telegram id, an openid, ...
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FIRST_YEAR, LAST_YEAR = 2000, 2999  # a shop's orders; the bounds keep a day's instants inside datetime's range
MAX_PAGE = 100_000

class SearchCode(StrEnum):
    """Why a search was refused (a merchant reads it as `admin.error.<value>`)."""

    BAD_ORDER_ID = "bad_order_id"  # params: text
    BAD_BUYER = "bad_buyer"  # params: text
    BAD_STATUS = "bad_status"  # params: given, statuses (the words of the chat's /orders STATUS)
    BAD_DATE = "bad_date"  # params: text
    DATES_BACKWARDS = "dates_backwards"  # params: start, end
    BAD_PAGE = "bad_page"  # params: text


class SearchError(Refused):
    """A refused order search; `code` is a SearchCode."""

    codes = SearchCode
    code: SearchCode


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """A checked search: every field None is no filter. `page` counts from 0."""

    order_id: str | None = None
    channel: str | None = None  # with buyer_id: that account; None with buyer_id: the id on any channel
    buyer_id: str | None = None
    status: OrderStatus | None = None
    first: date | None = None
    last: date | None = None
    page: int = 0

    def window(self, zone: str) -> tuple[datetime | None, datetime | None]:
        """The instants [since, until) the days cover in `zone` (None: open on that side)."""
        tz = ZoneInfo(zone)
        since = datetime.combine(self.first, time(), tz) if self.first else None
        until = datetime.combine(self.last + timedelta(days=1), time(), tz) if self.last else None
        return since, until

    def audit(self) -> dict[str, Any]:
        """The filters as an audit entry's detail (only those given)."""
        out: dict[str, Any] = {"page": self.page + 1}
        if self.order_id:
            out["order"] = self.order_id
        if self.buyer_id:
            out["buyer"] = f"{self.channel}:{self.buyer_id}" if self.channel else self.buyer_id
        if self.status:
            out["status"] = self.status.value
        if self.first:
            out["from"] = self.first.isoformat()
        if self.last:
            out["to"] = self.last.isoformat()
        return out


def parse_query(*, order_id: str = "", buyer: str = "", status: str = "", first: str = "", last: str = "",
                page: str = "") -> OrderQuery:
    """A search from what the merchant typed; refused (SearchError) when a field is garbage or the days are
    backwards. `page` counts from 1 as shown."""
    oid = order_id.strip()
    if oid and not ORDER_ID.match(oid):
        raise SearchError(SearchCode.BAD_ORDER_ID, text=oid[:30])
    channel, buyer_id = _buyer(buyer.strip())
    wanted = status.strip().lower()
    if wanted in ("", "all"):
        state = None
    else:
        try:
            state = OrderStatus(wanted)
        except ValueError:
            raise SearchError(SearchCode.BAD_STATUS, given=wanted[:20],
                              statuses=", ".join(s.value for s in OrderStatus)) from None
    start, end = _day(first), _day(last)
    if start and end and end < start:
        raise SearchError(SearchCode.DATES_BACKWARDS, start=start.isoformat(), end=end.isoformat())
    shown = page.strip() or "1"
    if not (shown.isascii() and shown.isdigit() and 1 <= int(shown) <= MAX_PAGE):
        raise SearchError(SearchCode.BAD_PAGE, text=shown[:12])
    return OrderQuery(oid.upper() or None, channel, buyer_id, state, start, end, int(shown) - 1)


def _buyer(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    channel, sep, ident = text.partition(":")
    if not sep:
        channel, ident = "", text
    if (sep and not CHANNEL.match(channel)) or not BUYER_ID.match(ident) or not ident.isprintable():
        raise SearchError(SearchCode.BAD_BUYER, text=text[:70])
    return channel or None, ident


def _day(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        if not DAY.match(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise SearchError(SearchCode.BAD_DATE, text=text[:20]) from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise SearchError(SearchCode.BAD_DATE, text=text)
    return day
