"""The console's page groups: each module declares `pages = Pages()` (bots/web/app.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import dashboard, session

ALL = [session.pages, dashboard.pages]
add_public = session.add_public
