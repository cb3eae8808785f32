"""The status page: static files (statuspage/), no data in them; the page reads /api/v1."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATUSPAGE_DIR = Path(__file__).parent / "statuspage"


async def status_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATUSPAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def to_status_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/status/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", to_status_page)
    app.router.add_get("/status/", status_page)
    app.router.add_static("/status/", STATUSPAGE_DIR, append_version=False)
