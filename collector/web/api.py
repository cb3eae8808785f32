"""The collector's HTTP API (aiohttp): the app made of every route group.

GET  /healthz, /readyz                   no token needed
GET  /, /status/...                       the status page (page.py; static files, no data in them)
GET  /metrics                             Prometheus text format (metrics.py)
POST /api/v1/query {"sql": ...}           one read-only SELECT, own bounded pool (query.py)
GET  /api/v1/agents, /api/v1/checks/{id}  agents and per-check detail (agents.py)
GET  /api/v1/status                       verdicts, cached per evaluation and sliceable (status.py,
                                          status_cache.py); the minute rollup before the first one
GET  /api/v1/events                       event versions, filtered and paginated (events.py)
GET/POST/DELETE /api/v1/silences          maintenance windows and silences (silences.py)
GET  /api/v1/events/{id}                  one event: its versions and the path traces of its agents
GET  /api/v1/report, /api/v1/report/daily availability, SLOs and daily history (report.py)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from collector.store import Store
from collector.web.agents import add_routes as add_agent_routes
from collector.web.base import STATE_KEY, ApiState, auth_middleware, json_response
from collector.web.events import add_routes as add_event_routes
from collector.web.metrics import add_routes as add_metrics_routes
from collector.web.page import add_routes as add_page_routes
from collector.web.query import add_routes as add_query_routes
from collector.web.report import add_routes as add_report_routes
from collector.web.silences import add_routes as add_silence_routes
from collector.web.status import add_routes as add_status_routes
from collector.web.status_cache import CACHE_KEY, StatusCache, status_context, status_middleware


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if not state.ready:
        return json_response({"status": "starting"}, 503)
    if not state.store_ok():
        return json_response({"status": "store unavailable"}, 503)
    stalled = state.ingest_stalled()
    if stalled:
        return json_response(
            {"status": f"ingest stalled: pending rows have not moved for {stalled:.0f}s"}, 503
        )
    return json_response({"status": "ready"})


async def _reader_context(app: web.Application) -> AsyncIterator[None]:
    """Requests read through a second client on the same store, on its own thread, so they
    never queue behind the ingestor's inserts or a verdict tick's queries."""
    state = app[STATE_KEY]
    main = state.store
    reader = Store(main.url, main.cluster, main.ttl_days)
    state.store = reader
    try:
        yield
    finally:
        state.store = main
        await reader.aclose()


def make_app(state: ApiState) -> web.Application:
    app = web.Application(middlewares=[auth_middleware, status_middleware])
    app[STATE_KEY] = state
    app[CACHE_KEY] = StatusCache()
    app.cleanup_ctx.append(_reader_context)
    app.cleanup_ctx.append(status_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for add_routes in (
        add_metrics_routes,
        add_query_routes,
        add_agent_routes,
        add_page_routes,
        add_status_routes,
        add_event_routes,
        add_silence_routes,
        add_report_routes,
    ):
        add_routes(app)
    return app
