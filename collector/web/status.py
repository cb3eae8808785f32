"""GET /api/v1/status and /api/v1/events for a collector without the verdict engine's routes.

The verdict engine (collector/verdict_api.py) owns these endpoints; when it does not provide
them, these answer in the same shapes so the status page and the CLI keep working:

- status: region states from the last minutes of the minute rollup (no confirm, no quorum, no
  impaired vantages: a rough view, marked `"source": "rollup"`), each answer reused for 5 s,
- events: none (only the verdict engine opens events).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.web.api import STATE_KEY, int_param, json_response, run_query, to_json_value

STATUS_MINUTES = 3
CACHE_S = 5.0
MAX_CHECKS = 100_000

# One row per check: the state of each region over the last minutes, and the number of
# affected regions so the worst checks sort first.
_STATUS_SQL = """
SELECT check_id, groupArray(region), groupArray(state),
       countIf(state IN ('DOWN', 'PARTIAL')) AS affected, countIf(state = 'DOWN') AS down
FROM (
    SELECT check_id, region, countMerge(results) AS r, countIfMerge(failures) AS f,
           countIfMerge(partials) AS p,
           multiIf(r = 0, 'NO_DATA', f * 2 >= r, 'DOWN', (f + p) * 2 >= r, 'PARTIAL', 'UP') AS state
    FROM probe_results_1m
    WHERE minute >= toStartOfMinute(now() - INTERVAL {minutes:UInt32} MINUTE)
    GROUP BY check_id, region
)
GROUP BY check_id
ORDER BY down DESC, affected DESC, check_id
LIMIT {limit:UInt32}
"""
_CAUSE_SQL = """
SELECT check_id, topKWeighted(1)(failure_class, 1)[1] AS cls,
       anyLast(failure_host), anyLast(error)
FROM probe_results
WHERE check_id IN {checks:Array(String)} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
  AND outcome != 'success'
GROUP BY check_id
"""


def verdict(states: dict[str, str]) -> tuple[str, str, list[str]]:
    """status, scope and affected regions of one check, as design section 4 defines them."""
    with_data = [r for r, s in states.items() if s != "NO_DATA"]
    affected = sorted(r for r, s in states.items() if s in ("DOWN", "PARTIAL"))
    if not with_data:
        return "unknown", "undetermined", []
    if not affected:
        return "ok", "", []
    status = "outage" if any(states[r] == "DOWN" for r in affected) else "partial"
    if len(with_data) < 2:
        scope = "undetermined"
    else:
        scope = "global" if len(affected) == len(with_data) else "regional"
    return status, scope, affected


@dataclass
class _Cached:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answers: dict[int, tuple[float, bytes]] = field(default_factory=dict)


async def status(request: web.Request) -> web.Response:
    """The rollup changes once a minute: one answer per limit is reused for CACHE_S, and
    requests arriving while it is computed wait for that one computation."""
    limit = int_param(request, "limit", MAX_CHECKS, 1, MAX_CHECKS)
    cache: _Cached = request.app[STATE_KEY].extra.setdefault("fallback_status", _Cached())
    async with cache.lock:
        expires, body = cache.answers.get(limit, (0.0, b""))
        if time.monotonic() >= expires:
            body = json.dumps(to_json_value(await _status_document(request, limit))).encode()
            cache.answers[limit] = (time.monotonic() + CACHE_S, body)
    return web.Response(body=body, content_type="application/json")


async def _status_document(request: web.Request, limit: int) -> dict[str, Any]:
    rows = await run_query(request, _STATUS_SQL, {"minutes": STATUS_MINUTES, "limit": limit})
    checks: list[dict[str, Any]] = []
    regions: set[str] = set()
    for check_id, names, states, *_ in rows:
        region_states = dict(zip(names, states, strict=True))
        regions.update(names)
        status_, scope, affected_regions = verdict(region_states)
        checks.append(
            {
                "check": check_id,
                "status": status_,
                "scope": scope,
                "regions": affected_regions,
                "cause": None,
                "region_states": region_states,
            }
        )
    bad = [c for c in checks if c["status"] not in ("ok", "unknown")]
    if bad:
        causes = await run_query(
            request, _CAUSE_SQL, {"checks": [c["check"] for c in bad], "minutes": STATUS_MINUTES}
        )
        by_check = {c: {"class": cls, "host": host, "error": err} for c, cls, host, err in causes}
        for c in bad:
            c["cause"] = by_check.get(c["check"])
    return {"checks": checks, "regions": sorted(regions), "source": "rollup"}


async def events(request: web.Request) -> web.Response:
    # Without the verdict engine nothing opens events.
    return json_response({"events": [], "next": None, "source": "none"})


ROUTES = [("/api/v1/status", status), ("/api/v1/events", events)]
