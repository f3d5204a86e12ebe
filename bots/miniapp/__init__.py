"""The Telegram Mini App's server side under `/app/api/` on the store's HTTP server (aiohttp).

    api = mount_miniapp(server, app)       # bots/http.py HttpServer, app/bootstrap.py App

Every request carries the Mini App's `initData` (`Authorization: tma <initData>`), checked by core/webapp_auth.py
with the bot's token before anything else; without it, or forged, stale, or signed for another bot: 401 and
nothing done. Read-only for now: the catalogue, search, one product (core/shop.py's catalogue use cases).
"""
from __future__ import annotations

from bots.miniapp.api import PREFIX, MiniAppApi, mount_miniapp

__all__ = ["PREFIX", "MiniAppApi", "mount_miniapp"]
