"""`GET /app/img/{name}`: product pictures (core/images.py), public (catalogue pictures are no secret; no
Authorization, so an `<img>` tag loads them), named by their content hash and therefore immutable: cached by
browsers and proxies for a year. An unknown or malformed name is a 404; HEAD answers the same headers."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from core.images import ImageDesk

PATH = "/app/img/{name}"
IMMUTABLE = "public, max-age=31536000, immutable"


class ImageRoute:
    def __init__(self, images: ImageDesk) -> None:
        self.images = images

    async def serve(self, request: web.Request) -> web.StreamResponse:
        image = await self.images.get(request.match_info["name"])
        if image is None:
            return web.Response(status=404, text="no such picture", headers={"Cache-Control": "no-store",
                                                                              "X-Content-Type-Options": "nosniff"})
        etag = f'"{image.name.partition(".")[0]}"'
        headers = {"Cache-Control": IMMUTABLE, "ETag": etag, "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; sandbox"}
        if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
            return web.Response(status=304, headers=headers)
        return web.Response(body=image.data, content_type=image.content_type, headers=headers)


def mount_images(server: Any, app: Any) -> None:
    """The pictures' route on `server` (bots/http.py HttpServer), before anything else under /app/ (a static
    route for /app/ added first would answer 404 for /app/img/). Once: both hosts' pages (Mini App, H5) use it."""
    router = server.app.router
    if any(r.canonical == PATH for r in router.resources()):
        return
    router.add_get(PATH, ImageRoute(app.images).serve)
