"""The merchant's web console under `/console/` on the store's HTTP server (aiohttp + aiohttp-jinja2, plain JS).

    web = mount_console(server, app)       # bots/http.py HttpServer, app/bootstrap.py App

The pages are thin: each reads the session's merchant and calls the same use cases as the chat commands
(core/admin.py AdminService, the desks), so everything is audited as the chat audits it, with the merchant's
identity. Who may open what: core/console.py (owners and staff). What the adapter adds: the session cookie, CSRF
on every POST, security headers, the language (zh_CN / en) and the templates. bots/web/app.py builds it;
bots/web/pages/ holds one module per page group.
"""
from __future__ import annotations

from bots.web.app import ConsoleWeb, mount_console

__all__ = ["ConsoleWeb", "mount_console"]
