"""POST /api/v1/query {"sql": ...}: read-only SQL with time and row limits.

Every reader of an embedded store (the CLI's `query`, the status page) goes through the API,
because only the collector process may open the chDB directory.
"""

from __future__ import annotations

import json

from aiohttp import web

from collector.errors import StoreError
from collector.web.base import QUERY_SETTINGS, STATE_KEY, error, json_response


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


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/query", query)
