"""The console's page groups: each module declares `pages = Pages()` (bots/web/kit.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import codes, dashboard, orders, products, reviews, session, tickets

ALL = [session.pages, dashboard.pages, products.pages, codes.pages, orders.pages, tickets.pages, reviews.pages]
add_public = session.add_public
