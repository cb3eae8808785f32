"""What every route group of the HTTP API shares: the app's state, JSON answers and errors, the
bearer-token check, bounded store queries and integer query parameters."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.errors import StoreError
from collector.store import Store
from collector.store.readonly_sql import SqlLimits

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from collector.config import CollectorConfig
    from collector.verdicts import Evaluator
    from collector.verdicts.maintenance import MaintenanceBook

# Applied to the API's own queries (callers' SQL gets collector.store.readonly_sql's limits).
QUERY_SETTINGS = {
    "readonly": 2,
    "max_execution_time": 15,
    "max_result_rows": 100_000,
    "result_overflow_mode": "break",
}
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/favicon.ico")


def _always() -> bool:
    return True


def _zero() -> float:
    return 0.0


def _nothing(region: str, agent_id: str) -> int:
    return 0


@dataclass
class ApiState:
    """What the routes read, handed in by the composition root (collector.app)."""

    # While the app runs, `store` is the API's own client on the same store (see api._reader_context).
    store: Store
    token: str = ""
    ready: bool = False
    # Whether the ingestor's last insert succeeded; the highest committed seq of (region, agent id).
    store_ok: Callable[[], bool] = _always
    committed_seq: Callable[[str, str], int] = _nothing
    # Seconds pending rows have not moved, once ingest counts as stuck; 0 while it moves.
    ingest_stalled: Callable[[], float] = _zero
    # Agents (region, agent id) with an open stream right now; agent ids the verdict engine
    # calls impaired.
    connected_agents: Callable[[], Collection[tuple[str, str]]] = frozenset
    impaired_agents: Callable[[], Collection[str]] = frozenset
    # The live evaluator (latest evaluation, open events); None without verdicts.
    evaluator: Evaluator | None = None
    # The registry /metrics serves (collector.web.metrics.CollectorMetrics.registry).
    registry: CollectorRegistry | None = None
    # Callers' SQL runs on its own pool (collector.web.query), through `query_url` (a server
    # store's read-only query user) when set.
    sql_limits: SqlLimits = field(default_factory=SqlLimits)
    query_url: str = ""
    # Maintenance windows and silences (collector.web.silences); None without verdicts.
    maintenance: MaintenanceBook | None = None
    # The active config (checks, SLOs, maintenance windows), swapped by a reload.
    config: Callable[[], CollectorConfig] | None = None


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
