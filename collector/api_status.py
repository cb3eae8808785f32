"""GET /api/v1/status at thousands of checks: built once per evaluation, sliced per request.

The verdict engine's document (collector.verdict_api.status_document) for 10,000 checks x 20
regions is megabytes of JSON; building it per request costs far more than the 200 ms budget.
So it is built once per evaluation, off the event loop, right after each tick, and kept as
ready-to-send bytes. Requests may ask for a slice, worst checks first:

    ?limit=200&offset=0      a page of checks (outage, partial, unknown, then ok; then by id)
    ?q=shop                  checks whose id contains this text
    ?status=outage,partial   only these statuses

A sliced answer has the same fields plus `total` (checks matching), `counts` (per status,
over every check) and `next` (the offset of the next page, or null).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from collector.api import STATE_KEY, error, to_json_value

log = logging.getLogger(__name__)

STATUS_PATH = "/api/v1/status"
STATUS_ORDER = {"outage": 0, "partial": 1, "unknown": 2, "ok": 3}
MAX_LIMIT = 100_000
WATCH_S = 0.25


@dataclass(frozen=True)
class Snapshot:
    evaluation: Any
    head: dict[str, Any]  # every field but `checks`
    checks: list[dict[str, Any]]  # worst first
    counts: dict[str, int]
    body: bytes  # the whole document, encoded


def build_snapshot(evaluation: Any, open_events: list[Any]) -> Snapshot:
    from collector.verdict_api import status_document

    # status_document reads `latest` and `tracker.current()`; the open events were copied on
    # the event loop, so this thread never iterates the tracker while a tick changes it.
    view: Any = SimpleNamespace(latest=evaluation, tracker=SimpleNamespace(current=lambda: open_events))
    doc = status_document(view)
    checks = sorted(doc.pop("checks"), key=lambda c: (STATUS_ORDER.get(c["status"], 9), c["check"]))
    counts = dict(Counter(c["status"] for c in checks))
    head = {**doc, "counts": counts, "total": len(checks)}
    body = json.dumps(to_json_value({**head, "checks": checks})).encode()
    return Snapshot(evaluation, head, checks, counts, body)


class StatusCache:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        self.builds = 0

    async def get(self, evaluator: Any) -> Snapshot | None:
        latest = getattr(evaluator, "latest", None)
        if latest is None:
            return None
        if self.snapshot is not None and self.snapshot.evaluation is latest:
            return self.snapshot
        async with self._lock:
            if self.snapshot is None or self.snapshot.evaluation is not latest:
                tracker = evaluator.tracker
                open_events = list(tracker.current()) if tracker is not None else []
                self.snapshot = await asyncio.to_thread(build_snapshot, latest, open_events)
                self.builds += 1
        return self.snapshot


CACHE_KEY = web.AppKey("status_cache", StatusCache)


def _evaluator(request: web.Request) -> Any:
    return request.app[STATE_KEY].extra.get("evaluator")


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    value = int(raw)  # ValueError is answered with a 400 by the caller
    if not 0 <= value <= MAX_LIMIT:
        raise ValueError(f"{name}: must be between 0 and {MAX_LIMIT}")
    return value


def sliced(snapshot: Snapshot, request: web.Request) -> web.Response:
    try:
        limit = _int(request, "limit", MAX_LIMIT) or MAX_LIMIT
        offset = _int(request, "offset", 0)
    except ValueError as exc:
        return error(400, f"expected an integer: {exc}")
    text = request.query.get("q", "").lower()
    statuses = {s for s in request.query.get("status", "").split(",") if s}
    checks = snapshot.checks
    if text:
        checks = [c for c in checks if text in c["check"].lower()]
    if statuses:
        checks = [c for c in checks if c["status"] in statuses]
    page = checks[offset : offset + limit]
    more = offset + limit < len(checks)
    doc = {**snapshot.head, "total": len(checks), "checks": page, "next": offset + limit if more else None}
    return web.Response(body=json.dumps(to_json_value(doc)).encode(), content_type="application/json")


@web.middleware
async def status_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    snapshot = None
    if request.path == STATUS_PATH and request.method == "GET":
        snapshot = await request.app[CACHE_KEY].get(_evaluator(request))
    if snapshot is None:  # not status, or no evaluation yet: the verdict API answers
        response: web.StreamResponse = await handler(request)
        return response
    if not request.query:
        return web.Response(body=snapshot.body, content_type="application/json")
    return sliced(snapshot, request)


async def _prebuild(app: web.Application) -> None:
    """Build each evaluation's snapshot as soon as it exists, so no request waits for it."""
    cache = app[CACHE_KEY]
    while True:
        evaluator = app[STATE_KEY].extra.get("evaluator")
        try:
            await cache.get(evaluator)
        except Exception:
            # The next request retries and reports; the loop must outlive one bad build.
            log.exception("building the status snapshot failed")
        await asyncio.sleep(WATCH_S)


async def status_context(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_prebuild(app), name="status-snapshot")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
