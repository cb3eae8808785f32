"""Maintenance windows and silences over HTTP.

GET    /api/v1/silences        {"silences": [...], "windows": [...], "in_maintenance": [event ids]}:
                               silences not yet over, the config's windows, and the open events
                               a window or silence covers right now
POST   /api/v1/silences        {"name", "checks": [ids or globs], "regions"?, "start"?, "end",
                               "comment"?, "created_by"?} -> 201 with the silence (start: now)
DELETE /api/v1/silences/{id}   -> 204, or 404

Changing silences always needs the API's bearer token: with none configured they are refused.
Events are shown with `in_maintenance` (and the window's name in `maintenance`) by /api/v1/events.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from collector.errors import ConfigError, StoreError
from collector.maintenance import covering, parse_window
from collector.store.silences import insert_silence, silence_by_id
from collector.verdicts.events import Event
from collector.verdicts.maintenance import MaintenanceBook
from collector.web.base import STATE_KEY, error, json_response


def _book(request: web.Request) -> MaintenanceBook:
    book = request.app[STATE_KEY].maintenance
    if book is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "no maintenance book: verdicts are not running"}),
            content_type="application/json",
        )
    return book


def _store_failed(exc: StoreError) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=json.dumps({"error": str(exc)}), content_type="application/json")


async def mark(request: web.Request, events: Iterable[Event], docs: list[dict[str, Any]]) -> None:
    """Add `in_maintenance` and `maintenance` to event documents: for an open event, whether a
    window covers it now; for a closed one, whether one covered it when it last changed."""
    book, now = request.app[STATE_KEY].maintenance, time.time()
    if book is not None:
        await book.refresh()
    windows = book.windows() if book is not None else []
    for event, doc in zip(events, docs, strict=True):
        at = now if event.closed_at is None else event.updated_at
        window = covering(windows, event.check, event.regions, at)
        doc["in_maintenance"] = window is not None
        doc["maintenance"] = window.name if window else None


async def list_silences(request: web.Request) -> web.Response:
    book = _book(request)
    await book.refresh()
    now = time.time()
    evaluator = request.app[STATE_KEY].evaluator
    open_events = list(evaluator.open_events) if evaluator else []
    windows = book.windows()
    return json_response(
        {
            "silences": [w.to_dict(now) for w in book.silences],
            "windows": [w.to_dict(now) for w in windows if not w.id],
            "in_maintenance": [e.id for e in open_events if covering(windows, e.check, e.regions, now)],
        }
    )


def _require_token(request: web.Request) -> None:
    if not request.app[STATE_KEY].token:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "changing silences needs api.token (a bearer token) to be set"}),
            content_type="application/json",
        )


async def create_silence(request: web.Request) -> web.Response:
    _require_token(request)
    try:
        raw = await request.json()
    except json.JSONDecodeError:
        return error(400, "expected a JSON object")
    if not isinstance(raw, dict):
        return error(400, "expected a JSON object")
    if "every" in raw:
        return error(400, "every: a silence is one span (start, end); recurring windows go in collector.yaml")
    created_by = str(raw.pop("created_by", ""))
    raw.setdefault("start", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        window = parse_window(raw, "request", "silence", id=uuid.uuid4().hex[:16], created_by=created_by)
    except ConfigError as exc:
        return error(400, f"{exc.key}: {exc.reason}")
    fields = {
        "id": window.id,
        "name": window.name,
        "checks": window.checks,
        "regions": window.regions,
        "start": window.start,
        "end": window.end,
        "comment": window.comment,
        "created_by": created_by,
    }
    book, store = _book(request), request.app[STATE_KEY].store
    try:
        await store.run(insert_silence, store, fields)
    except StoreError as exc:
        raise _store_failed(exc) from exc
    book.invalidate()
    return json_response(window.to_dict(time.time()), 201)


async def delete_silence(request: web.Request) -> web.Response:
    _require_token(request)
    book, store = _book(request), request.app[STATE_KEY].store
    silence_id = request.match_info["id"]
    try:
        fields = await store.run(silence_by_id, store, silence_id)
        if fields is None:
            return error(404, f"no silence {silence_id!r}")
        await store.run(insert_silence, store, fields, True)
    except StoreError as exc:
        raise _store_failed(exc) from exc
    book.invalidate()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", create_silence)
    app.router.add_delete("/api/v1/silences/{id}", delete_silence)
