"""POST /api/v1/query {"sql": ...}: one read-only SELECT over the project's tables.

Every reader of an embedded store (the CLI's `query`, the status page) goes through the API,
because only the collector process may open the chDB directory. What a caller's SQL may do is
decided in collector.store.readonly_sql; it runs on that module's own bounded pool, so heavy
queries never hold up the other routes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from aiohttp import web

from collector.errors import StoreError
from collector.store.readonly_sql import ReadOnlySql, RejectedQuery, SqlBusy
from collector.web.base import STATE_KEY, error, json_response

SQL_KEY = web.AppKey("sql", ReadOnlySql)


async def query(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return error(400, 'body must be JSON: {"sql": "SELECT ..."}')
    sql = body.get("sql") if isinstance(body, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        return error(400, "missing 'sql'")
    try:
        columns, rows = await request.app[SQL_KEY].run(sql)
    except SqlBusy as exc:
        return error(503, str(exc))
    except (RejectedQuery, StoreError) as exc:
        return error(400, str(exc))
    return json_response({"columns": columns, "rows": rows})


async def _sql_context(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    app[SQL_KEY] = ReadOnlySql(state.query_url or state.store.url, state.sql_limits)
    try:
        yield
    finally:
        await app[SQL_KEY].aclose()


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_sql_context)
    app.router.add_post("/api/v1/query", query)
