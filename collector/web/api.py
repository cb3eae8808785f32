"""The collector's HTTP API (aiohttp): health, readiness, read-only SQL, agents, per-check
detail, Prometheus /metrics and the status page.

Every reader of an embedded store (the CLI's `query`, the status page) goes through here,
because only the collector process may open the chDB directory. Every query a request runs
is bounded by check id (the ORDER BY prefix) or by time, so none scans the whole results table.

    GET  /healthz, /readyz                   no token needed
    GET  /, /status/...                       the status page (static files, no data in them)
    GET  /metrics                             Prometheus text format
    POST /api/v1/query {"sql": ...}           read-only SQL, time and row limits
    GET  /api/v1/agents                       last seen, region, version, spool depth, impaired
    GET  /api/v1/checks/{id}?minutes=60       latency by phase over time, failures by class/region
    GET  /api/v1/status, /api/v1/events       from collector.web.events (fallbacks until it exists);
                                              status is cached per evaluation and sliceable
                                              (collector.web.status_cache)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.errors import StoreError
from collector.ingest.ingestor import Ingestor
from collector.store import Store

if TYPE_CHECKING:
    from collector.web.metrics import CollectorMetrics

log = logging.getLogger(__name__)

# Applied to every SQL request: read-only, bounded in time and size.
QUERY_SETTINGS = {
    "readonly": 2,
    "max_execution_time": 15,
    "max_result_rows": 100_000,
    "result_overflow_mode": "break",
}
STATUSPAGE_DIR = Path(__file__).parent / "statuspage"
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/favicon.ico")
MAX_DETAIL_MINUTES = 7 * 24 * 60
DETAIL_POINTS = 120


@dataclass
class ApiState:
    # While the app runs, `store` is the API's own client on the same store (see _reader_context).
    store: Store
    ingestor: Ingestor
    token: str = ""
    ready: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: CollectorMetrics | None = None
    # Agent ids with an open stream right now, and agents the verdict engine calls impaired.
    connected_agents: Callable[[], Collection[str]] = frozenset
    impaired_agents: Callable[[], Collection[str]] = frozenset


STATE_KEY = web.AppKey("state", ApiState)


def to_json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(to_json_value(data)), status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def _is_public(path: str) -> bool:
    # The status page's files hold no data; the data it shows comes from /api/v1 with the token.
    return path in PUBLIC_PATHS or path.startswith("/status/")


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    authorized = request.headers.get("Authorization", "") == f"Bearer {state.token}"
    if state.token and not _is_public(request.path) and not authorized:
        return error(401, "missing or wrong bearer token")
    response: web.StreamResponse = await handler(request)
    return response


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if not state.ready:
        return json_response({"status": "starting"}, 503)
    if not state.ingestor.store_ok:
        return json_response({"status": "store unavailable"}, 503)
    return json_response({"status": "ready"})


async def query(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return error(400, 'body must be JSON: {"sql": "SELECT ..."}')
    sql = body.get("sql") if isinstance(body, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        return error(400, "missing 'sql'")
    try:
        columns, rows = await state.store.run(state.store.query, sql, None, QUERY_SETTINGS)
    except StoreError as exc:
        return error(400, str(exc))
    return json_response({"columns": columns, "rows": rows})


async def run_query(request: web.Request, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one of the API's own queries; a store failure becomes a 503 with the reason."""
    state = request.app[STATE_KEY]
    try:
        _, rows = await state.store.run(state.store.query, sql, params, QUERY_SETTINGS)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": str(exc)}), content_type="application/json"
        ) from exc
    return rows


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected an integer, got {raw!r}"}),
            content_type="application/json",
        ) from exc
    if not low <= value <= high:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: must be between {low} and {high}"}),
            content_type="application/json",
        )
    return value


_AGENTS_SQL = """
SELECT agent_id, argMax(region, last_seen), argMax(version, last_seen), max(last_seen),
       dateDiff('millisecond', max(last_seen), now64(3)) / 1000.0,
       argMax(spool_depth, last_seen), argMax(dropped_results, last_seen), argMax(last_seq, last_seen)
FROM agents
GROUP BY agent_id
ORDER BY agent_id
LIMIT 100000
"""


async def agents(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    rows = await run_query(request, _AGENTS_SQL, {})
    connected = set(state.connected_agents())
    impaired = set(state.impaired_agents())
    # The table is written every few seconds; the ingestor knows the latest committed seq now.
    committed = state.ingestor.committed
    return json_response(
        {
            "agents": [
                {
                    "agent_id": a,
                    "region": region,
                    "version": version,
                    "last_seen": last_seen,
                    "seconds_since_seen": round(float(age), 3),
                    "spool_depth": spool,
                    "dropped_results": dropped,
                    "last_seq": max(last_seq, committed.get(a, 0)),
                    "connected": a in connected,
                    "impaired": a in impaired,
                }
                for a, region, version, last_seen, age, spool, dropped, last_seq in rows
            ]
        }
    )


# Latency only from results that got an answer: a failed probe's phases stop where it failed.
_LATENCY_SQL = """
SELECT toUnixTimestamp(toStartOfInterval(started_at, INTERVAL {step:UInt32} SECOND)) AS t,
       round(avgIf(dns_ms, ok), 2), round(avgIf(connect_ms, ok), 2), round(avgIf(tls_ms, ok), 2),
       round(avgIf(ttfb_ms, ok), 2), round(avgIf(transfer_ms, ok), 2), round(avgIf(total_ms, ok), 2),
       round(quantileIf(0.95)(total_ms, ok), 2), count(), countIf(outcome = 'failed'),
       countIf(outcome = 'partial')
FROM (SELECT started_at, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, total_ms, outcome,
             outcome != 'failed' AS ok
      FROM probe_results
      WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE)
GROUP BY t ORDER BY t
"""
# One row per (region, outcome, failure class): both the failures table and the per-region
# summary come from it, so a check's page costs two queries (three for a page probe).
_GROUPS_SQL = """
SELECT region, outcome, failure_class, count() AS n, anyLast(failure_host), anyLast(error),
       toUnixTimestamp64Milli(max(started_at)) / 1000, groupUniqArray(agent_id), any(probe), any(target)
FROM probe_results
WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
GROUP BY region, outcome, failure_class
ORDER BY n DESC
LIMIT 1000
"""
_HOSTS_SQL = """
SELECT host, cls, region, count() AS n
FROM probe_results ARRAY JOIN page_failed_hosts AS host, page_failed_classes AS cls
WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
  AND page_resources_failed > 0
GROUP BY host, cls, region ORDER BY n DESC LIMIT 100
"""
PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")


async def check_detail(request: web.Request) -> web.Response:
    check = request.match_info["check_id"]
    minutes = int_param(request, "minutes", 60, 1, MAX_DETAIL_MINUTES)
    step = max(60, (minutes * 60) // DETAIL_POINTS // 60 * 60)
    params = {"check": check, "minutes": minutes, "step": step}
    groups = await run_query(request, _GROUPS_SQL, params)
    if not groups:
        return error(404, f"no results for check {check!r} in the last {minutes} minutes")
    latency = await run_query(request, _LATENCY_SQL, params)
    probe, target = groups[0][8], groups[0][9]
    hosts = await run_query(request, _HOSTS_SQL, params) if probe == "page" else []
    return json_response(
        {
            "check": check,
            "probe": probe,
            "target": target,
            "minutes": minutes,
            "step_s": step,
            "phases": list(PHASES),
            "latency": [_latency_point(row) for row in latency],
            "failures": [
                {"class": cls or "", "region": region, "count": n, "host": host, "error": err, "last": last}
                for region, outcome, cls, n, host, err, last, *_ in groups
                if outcome != "success"
            ],
            "regions": _region_summaries(groups),
            "failed_hosts": [{"host": h, "class": c, "region": r, "count": n} for h, c, r, n in hosts],
        }
    )


def _latency_point(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "t": row[0],
        **{p: _num(v) for p, v in zip(PHASES, row[1:7], strict=True)},
        "p95_total": _num(row[7]),
        "results": row[8],
        "failures": row[9],
        "partials": row[10],
    }


def _region_summaries(groups: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    regions: dict[str, dict[str, Any]] = {}
    agents: dict[str, set[str]] = {}
    for region, outcome, _, n, _, _, last, agent_ids, *_ in groups:
        summary = regions.setdefault(
            region, {"region": region, "results": 0, "failures": 0, "partials": 0, "latest": "", "last": 0}
        )
        summary["results"] += n
        summary["failures"] += n if outcome == "failed" else 0
        summary["partials"] += n if outcome == "partial" else 0
        if last >= summary["last"]:
            summary["latest"], summary["last"] = outcome, last
        agents.setdefault(region, set()).update(agent_ids)
    return [{**regions[r], "agents": len(agents[r])} for r in sorted(regions)]


def _num(value: Any) -> float | None:
    # avgIf over no rows is nan: JSON has no nan, and "no data" is what it means.
    return None if value is None or math.isnan(value) else float(value)


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state = request.app[STATE_KEY]
    if state.metrics is None:
        return error(503, "metrics are not set up")
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATUSPAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def to_status_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/status/")


def _has_route(app: web.Application, method: str, path: str) -> bool:
    return any(
        route.method == method and route.resource is not None and route.resource.canonical == path
        for route in app.router.routes()
    )


def _add_verdict_routes(app: web.Application) -> None:
    """Verdicts and events come from the verdict engine's module; fallbacks fill what it lacks."""
    try:
        from collector.web import events as verdict_api  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        log.info("collector.web.events not present: serving status and events from the fallback")
    else:
        verdict_api.add_routes(app)
    from collector.web import status as api_fallback

    for path, handler in api_fallback.ROUTES:
        if not _has_route(app, "GET", path):
            app.router.add_get(path, handler)


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
    from collector.web.status_cache import CACHE_KEY, StatusCache, status_context, status_middleware

    app = web.Application(middlewares=[auth_middleware, status_middleware])
    app[STATE_KEY] = state
    app[CACHE_KEY] = StatusCache()
    app.cleanup_ctx.append(_reader_context)
    app.cleanup_ctx.append(status_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/v1/query", query)
    app.router.add_get("/api/v1/agents", agents)
    app.router.add_get("/api/v1/checks/{check_id}", check_detail)
    app.router.add_get("/", to_status_page)
    app.router.add_get("/status/", status_page)
    app.router.add_static("/status/", STATUSPAGE_DIR, append_version=False)
    _add_verdict_routes(app)
    return app
