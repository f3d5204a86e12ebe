"""The console's page groups: each module declares `pages = Pages()` (bots/web/kit.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import dashboard, orders, reviews, session, tickets

ALL = [session.pages, dashboard.pages, orders.pages, tickets.pages, reviews.pages]
add_public = session.add_public
