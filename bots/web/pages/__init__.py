"""The console's page groups: each module declares `pages = Pages()` (bots/web/kit.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import (
    audit,
    codes,
    dashboard,
    jobs,
    orders,
    products,
    reports,
    resellers,
    reviews,
    session,
    sessions,
    tickets,
)

ALL = [session.pages, dashboard.pages, products.pages, codes.pages, orders.pages, tickets.pages, reviews.pages,
       resellers.pages, jobs.pages, audit.pages, sessions.pages, reports.pages]
add_public = session.add_public
