"""GET /api/v1/status at thousands of checks: built once per evaluation, sliced per request.

The verdict engine's document (collector.web.status.status_document) for 10,000 checks x 20
regions is megabytes of JSON; building it per request costs far more than the 200 ms budget.
So it is built once per evaluation, off the event loop, right after each tick, and kept as
ready-to-send bytes. Requests may ask for a slice, worst checks first:

    ?limit=200&offset=0      a page of checks (outage, partial, unknown, then ok; then by id)
    ?q=shop                  checks whose id contains this text
    ?status=outage,partial   only these statuses
    ?detail=false            without each check's per-region agent counts (`region_detail`)

A sliced answer has the same fields plus `total` (checks matching), `counts` (per status,
over every check) and `next` (the offset of the next page, or null).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from collector.web.base import STATE_KEY, error, to_json_value
from collector.web.status import status_document

log = logging.getLogger(__name__)

STATUS_PATH = "/api/v1/status"
STATUS_ORDER = {"outage": 0, "partial": 1, "unknown": 2, "ok": 3}
MAX_LIMIT = 100_000
MAX_ANSWERS = 64
WATCH_S = 0.25


@dataclass
class Snapshot:
    evaluation: Any
    head: dict[str, Any]  # every field but `checks`
    checks: list[dict[str, Any]]  # worst first
    counts: dict[str, int]
    # Encoded answers of this evaluation, by query string: every viewer of the page asks the
    # same question, and the answer only changes with the next evaluation.
    answers: dict[str, bytes] = field(default_factory=dict)


def build_snapshot(evaluation: Any, open_events: list[Any]) -> Snapshot:
    # status_document reads the evaluator's `latest` and open events; both were taken on the
    # event loop, so this thread never sees a tick half-applied.
    view: Any = SimpleNamespace(
        latest=evaluation, open_events=open_events, tracker=SimpleNamespace(current=lambda: open_events)
    )
    doc = status_document(view)
    checks = sorted(doc.pop("checks"), key=lambda c: (STATUS_ORDER.get(c["status"], 9), c["check"]))
    counts = dict(Counter(c["status"] for c in checks))
    return Snapshot(evaluation, {**doc, "counts": counts, "total": len(checks)}, checks, counts)


class StatusCache:
    """The latest evaluation's snapshot. While the next one builds, requests get the previous
    one (seconds old at most) instead of waiting for it."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._building: asyncio.Task[Snapshot] | None = None
        self.builds = 0

    async def get(self, evaluator: Any) -> Snapshot | None:
        latest = getattr(evaluator, "latest", None)
        if latest is None:
            return None
        if self.snapshot is not None and self.snapshot.evaluation is latest:
            return self.snapshot
        if self._building is None:
            open_events = list(open_events_of(evaluator))
            self._building = asyncio.create_task(asyncio.to_thread(build_snapshot, latest, open_events))
            self._building.add_done_callback(self._built)
        if self.snapshot is None:
            await asyncio.shield(self._building)
        return self.snapshot

    def _built(self, task: asyncio.Task[Snapshot]) -> None:
        self._building = None
        if not task.cancelled() and task.exception() is None:
            self.snapshot = task.result()
            self.builds += 1


CACHE_KEY = web.AppKey("status_cache", StatusCache)


def open_events_of(evaluator: Any) -> list[Any]:
    """The evaluator's open events as of its last tick (read on the event loop)."""
    if hasattr(evaluator, "open_events"):
        return list(evaluator.open_events)
    tracker = getattr(evaluator, "tracker", None)
    return list(tracker.current()) if tracker is not None else []


def encode(snapshot: Snapshot, query: Mapping[str, str]) -> bytes:
    """The answer to one query string (raises ValueError on a bad integer)."""
    limit = _int_from(query, "limit", MAX_LIMIT) or MAX_LIMIT
    offset = _int_from(query, "offset", 0)
    text = query.get("q", "").lower()
    statuses = {s for s in query.get("status", "").split(",") if s}
    checks = snapshot.checks
    if text:
        checks = [c for c in checks if text in c["check"].lower()]
    if statuses:
        checks = [c for c in checks if c["status"] in statuses]
    page = checks[offset : offset + limit]
    if query.get("detail") == "false":
        page = [{k: v for k, v in c.items() if k != "region_detail"} for c in page]
    more = offset + limit < len(checks)
    doc = {**snapshot.head, "total": len(checks), "checks": page, "next": offset + limit if more else None}
    return json.dumps(to_json_value(doc)).encode()


def _int_from(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name, "")
    if not raw:
        return default
    value = int(raw)
    if not 0 <= value <= MAX_LIMIT:
        raise ValueError(f"{name}: must be between 0 and {MAX_LIMIT}")
    return value


async def answer(snapshot: Snapshot, request: web.Request) -> web.Response:
    key = request.query_string
    body = snapshot.answers.get(key)
    if body is None:
        try:
            # The whole document of 10,000 checks is megabytes: encoded off the loop.
            body = await asyncio.to_thread(encode, snapshot, dict(request.query))
        except ValueError as exc:
            return error(400, f"expected an integer: {exc}")
        if len(snapshot.answers) < MAX_ANSWERS:
            snapshot.answers[key] = body
    return web.Response(body=body, content_type="application/json")


@web.middleware
async def status_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    snapshot = None
    if request.path == STATUS_PATH and request.method == "GET":
        try:
            snapshot = await request.app[CACHE_KEY].get(request.app[STATE_KEY].evaluator)
        except Exception:
            # The verdict API's own (uncached) answer is still right, only slower.
            log.exception("status snapshot failed; answering without it")
    if snapshot is None:  # not status, or no evaluation yet: the verdict API answers
        response: web.StreamResponse = await handler(request)
        return response
    return await answer(snapshot, request)


async def _prebuild(app: web.Application) -> None:
    """Build each evaluation's snapshot as soon as it exists, so no request waits for it."""
    cache = app[CACHE_KEY]
    while True:
        try:
            await cache.get(app[STATE_KEY].evaluator)
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
