"""The console's page groups: each module declares `pages = Pages()` (bots/web/app.py) and its handlers."""
from __future__ import annotations

from bots.web.pages import audit, codes, dashboard, jobs, products, reports, resellers, session, sessions

ALL = [session.pages, dashboard.pages, products.pages, codes.pages, resellers.pages, jobs.pages, audit.pages,
       sessions.pages, reports.pages]
add_public = session.add_public
