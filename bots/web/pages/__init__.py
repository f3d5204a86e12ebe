"""The console's page groups: each module declares `pages = Pages()` (bots/web/app.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import codes, dashboard, products, session

ALL = [session.pages, dashboard.pages, products.pages, codes.pages]
add_public = session.add_public
