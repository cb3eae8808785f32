"""GET /api/v1/report and /api/v1/report/daily: availability from the verdict history.

    /api/v1/report?since=30d&check=GLOB&regions=worst  per check and region: availability, down,
                                                        degraded, excluded and no-data time,
                                                        incidents, MTTR, SLO budget and burn rates;
                                                        worst regions, top causes; regions=all
                                                        lists every region of each check, none none
    /api/v1/report/daily?days=90&check=GLOB&limit=200  one cell a day per check (the status page's bars)

Both run on a store client of their own (a report over 10,000 checks takes seconds: the other
routes never wait behind one), and each answer is reused for CACHE_S (the history it reads
changes slowly; one computation serves concurrent callers of the same query).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.config import CollectorConfig, parse_seconds
from collector.errors import ConfigError, StoreError
from collector.store import Store
from collector.verdicts.report import Scope, daily, report, stored_scope
from collector.web.base import STATE_KEY, int_param, json_response

MAX_SINCE_S = 400 * 86_400.0
CACHE_S = 30.0
CACHE_ENTRIES = 32


@dataclass
class _Reports:
    store: Store
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answers: dict[str, tuple[float, Any]] = field(default_factory=dict)


REPORTS_KEY = web.AppKey("reports", _Reports)


async def _reports_context(app: web.Application) -> AsyncIterator[None]:
    main = app[STATE_KEY].store
    app[REPORTS_KEY] = _Reports(Store(main.url, main.cluster, main.ttl_days))
    try:
        yield
    finally:
        await app[REPORTS_KEY].store.aclose()


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def since_param(request: web.Request) -> float:
    raw = request.query.get("since", "30d")
    try:
        since = float(parse_seconds(raw, "query", "since"))
    except ConfigError as exc:
        raise _bad_request(f"since: {exc.reason}") from exc
    if since > MAX_SINCE_S:
        raise _bad_request(f"since: at most {MAX_SINCE_S / 86_400:g}d")
    return since


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    state, reports = request.app[STATE_KEY], request.app[REPORTS_KEY]
    if state.config is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "no config"}), content_type="application/json"
        )
    config, pattern = state.config(), request.query.get("check") or "*"
    key = request.path_qs
    async with reports.lock:
        cached = reports.answers.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        try:
            answer = await reports.store.run(_scoped, reports.store, config, pattern, fn, *args)
        except StoreError as exc:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": str(exc)}), content_type="application/json"
            ) from exc
        reports.answers[key] = (time.monotonic(), answer)
        while len(reports.answers) > CACHE_ENTRIES:
            reports.answers.pop(next(iter(reports.answers)))
        return answer


def _scoped(store: Store, config: CollectorConfig, pattern: str, fn: Callable[..., Any], *args: Any) -> Any:
    """On the store's thread: the scope (with the stored silences), then the answer."""
    return fn(store, stored_scope(store, config, pattern, time.time()), *args)


async def get_report(request: web.Request) -> web.Response:
    since = since_param(request)
    regions = request.query.get("regions", "worst")
    if regions not in ("all", "worst", "none"):
        raise _bad_request("regions: all, worst or none")
    return json_response(await _run(request, _report, since, time.time(), regions))


def _report(store: Store, scope: Scope, since: float, now: float, regions: str) -> dict[str, Any]:
    return report(store, scope, since, now, regions=regions)


async def get_daily(request: web.Request) -> web.Response:
    days = int_param(request, "days", 90, 1, 400)
    limit = int_param(request, "limit", 200, 1, 10_000)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    return json_response(await _run(request, _daily, days, time.time(), (offset, limit)))


def _daily(store: Store, scope: Scope, days: int, now: float, page_of: tuple[int, int]) -> dict[str, Any]:
    offset, limit = page_of
    page = dataclasses.replace(scope, checks=scope.checks[offset : offset + limit])
    answer = daily(store, page, days, now)
    answer["total"] = len(scope.checks)
    return answer


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_reports_context)
    app.router.add_get("/api/v1/report", get_report)
    app.router.add_get("/api/v1/report/daily", get_daily)
