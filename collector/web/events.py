"""GET /api/v1/events/{id}: one event, every version, and the path traces its agents sent.

GET /api/v1/events: events (latest version of each; `versions=all` for every version), newest
first. Filters: since, until (ISO 8601 or epoch seconds: events overlapping that span), check,
status, scope, kind, open=true|false; paginated with limit (default 100, max 1000) and the `next`
offset of the previous answer. Each event says whether a maintenance window or silence covers
it (`in_maintenance`, `maintenance`: the window's name).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from collector.errors import StoreError
from collector.store.events import EVENT_COLUMNS
from collector.store.paths import load_traces_sql, traces_from_rows
from collector.verdicts.events import event_from_row
from collector.web.base import STATE_KEY, error, json_response
from collector.web.silences import mark

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_FILTERS = {"check": "check_id", "status": "status", "scope": "scope", "kind": "kind"}


class _BadParam(Exception):
    pass


def _time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _BadParam(f"{name}: expected ISO 8601 or epoch seconds, got {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _int_param(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise _BadParam(f"{name}: expected an integer, got {raw!r}") from exc
    if not 0 <= value <= high:
        raise _BadParam(f"{name}: must be between 0 and {high}")
    return value


def events_query(request: web.Request) -> tuple[str, dict[str, Any], int, int]:
    limit = _int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
    offset = _int_param(request, "next", 0, 10**9)
    table = "outage_events FINAL" if request.query.get("versions") == "all" else "outage_events_latest"
    where = ["1"]
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
    for name, column in _FILTERS.items():
        if request.query.get(name):
            where.append(f"{column} = {{{name}:String}}")
            params[name] = request.query[name]
    since, until = _time_param(request, "since"), _time_param(request, "until")
    if since:
        where.append("(closed_at IS NULL OR closed_at >= fromUnixTimestamp64Milli({since:Int64}))")
        params["since"] = round(since.timestamp() * 1000)
    if until:
        where.append("opened_at <= fromUnixTimestamp64Milli({until:Int64})")
        params["until"] = round(until.timestamp() * 1000)
    open_only = request.query.get("open", "")
    if open_only not in ("", "true", "false"):
        raise _BadParam(f"open: expected true or false, got {open_only!r}")
    if open_only:
        where.append("closed_at IS NULL" if open_only == "true" else "closed_at IS NOT NULL")
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {table} WHERE {' AND '.join(where)} "
        "ORDER BY updated_at DESC, event_id, version DESC LIMIT {limit:UInt32} OFFSET {offset:UInt64}"
    )
    return sql, params, limit, offset


async def events(request: web.Request) -> web.Response:
    try:
        sql, params, limit, offset = events_query(request)
    except _BadParam as exc:
        return error(400, str(exc))
    store = request.app[STATE_KEY].store
    try:
        _, rows = await store.run(store.query, sql, params)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": str(exc)}), content_type="application/json"
        ) from exc
    found = [event_from_row(r) for r in rows[:limit]]
    page = [e.to_dict() for e in found]
    await mark(request, found, page)
    return json_response({"events": page, "next": offset + limit if len(rows) > limit else None})


async def event_detail(request: web.Request) -> web.Response:
    """The event's versions (oldest first) and path traces: where the path broke, per agent."""
    store = request.app[STATE_KEY].store
    params = {"event": request.match_info["event_id"]}
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM outage_events FINAL WHERE event_id = {{event:String}} "
        "ORDER BY version"
    )
    try:
        _, rows = await store.run(store.query, sql, params)
        _, trace_rows = await store.run(store.query, load_traces_sql(), params)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": str(exc)}), content_type="application/json"
        ) from exc
    if not rows:
        return error(404, f"no event {params['event']!r}")
    versions = [event_from_row(r).to_dict() for r in rows]
    return json_response(
        {"event": versions[-1], "versions": versions, "path_traces": traces_from_rows(trace_rows)}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/api/v1/events/{event_id}", event_detail)
