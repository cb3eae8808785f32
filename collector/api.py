"""The collector's HTTP API (aiohttp): health, readiness and read-only SQL.

Every reader of an embedded store (the CLI's `query`, the status page) goes through here,
because only the collector process may open the chDB directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.errors import StoreError
from collector.ingest import Ingestor
from collector.store import Store

log = logging.getLogger(__name__)

# Applied to every SQL request: read-only, bounded in time and size.
QUERY_SETTINGS = {
    "readonly": 2,
    "max_execution_time": 15,
    "max_result_rows": 100_000,
    "result_overflow_mode": "break",
}


@dataclass
class ApiState:
    store: Store
    ingestor: Ingestor
    token: str = ""
    ready: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


STATE_KEY = web.AppKey("state", ApiState)


def to_json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
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


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(to_json_value(data)), status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if state.token and request.path not in ("/healthz", "/readyz"):
        if request.headers.get("Authorization", "") != f"Bearer {state.token}":
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
        return error(400, "body must be JSON: {\"sql\": \"SELECT ...\"}")
    sql = body.get("sql") if isinstance(body, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        return error(400, "missing 'sql'")
    try:
        columns, rows = await state.store.run(state.store.query, sql, None, QUERY_SETTINGS)
    except StoreError as exc:
        return error(400, str(exc))
    return json_response({"columns": columns, "rows": rows})


def make_app(state: ApiState) -> web.Application:
    app = web.Application(middlewares=[auth_middleware])
    app[STATE_KEY] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/api/v1/query", query)
    return app
