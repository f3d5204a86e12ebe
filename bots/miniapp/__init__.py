"""The Telegram Mini App's server side under `/app/api/` on the store's HTTP server (aiohttp).

    runtime = app.add_telegram()
    api = mount_miniapp(server, app, runtime)   # bots/http.py HttpServer, app/bootstrap.py App; the bot makes
                                                # the invoice links (without it: browse only)

Every request carries the Mini App's `initData` (`Authorization: tma <initData>`), checked by core/webapp_auth.py
with the bot's token before anything else; without it, or forged, stale, or signed for another bot: 401 and
nothing done. The catalogue, search, one product; orders held by Shop.reserve and paid with a Stars invoice link
through the bot (docs/storefront.md).
"""
from __future__ import annotations

from bots.miniapp.api import PREFIX, MiniAppApi, mount_miniapp

__all__ = ["PREFIX", "MiniAppApi", "mount_miniapp"]
