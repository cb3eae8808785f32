"""GET /api/v1/status: the latest evaluation, every check's verdict and every region's state,
impaired vantage points, open events (`"source": "engine"`; sliced and cached per evaluation by
status_cache.py).

Before the first evaluation it answers in the same shape from the last minutes of the minute
rollup (no confirm, no quorum, no impaired vantages: a rough view, marked `"source": "rollup"`),
each answer reused for 5 s, so the status page and the CLI work from the start.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.verdicts.events import iso
from collector.web.base import STATE_KEY, int_param, json_response, run_query, to_json_value

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


ROLLUP_KEY = web.AppKey("rollup_status", _Cached)


async def rollup_status(request: web.Request) -> web.Response:
    """The rollup changes once a minute: one answer per limit is reused for CACHE_S, and
    requests arriving while it is computed wait for that one computation."""
    limit = int_param(request, "limit", MAX_CHECKS, 1, MAX_CHECKS)
    cache = request.app[ROLLUP_KEY]
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


def status_document(evaluator: Any) -> dict[str, Any]:
    """The engine's answer: from `evaluator.latest` (an Evaluation) and `evaluator.open_events`."""
    evaluation = evaluator.latest if evaluator else None
    if evaluation is None:
        return {
            "checks": [],
            "regions": [],
            "vantage": [],
            "open_events": [],
            "evaluated_at": None,
            "source": "engine",
        }
    checks = []
    regions: set[str] = set()
    for check_id in sorted(evaluation.verdicts):
        verdict = evaluation.verdicts[check_id]
        doc = verdict.to_dict()
        doc["region_detail"] = doc.pop("region_states")
        doc["region_states"] = {r: d["state"] for r, d in doc["region_detail"].items()}
        regions.update(doc["region_states"])
        checks.append(doc)
    vantage = [
        {
            "scope": v.scope,
            "region": v.region,
            "agent": v.agent_id,
            "failing_checks": v.failing_checks,
            "checks": v.checks,
            "cause": v.cause.to_dict() if v.cause else None,
        }
        for v in evaluation.vantage
    ]
    open_events = [e.to_dict() for e in evaluator.open_events] if evaluator else []
    return {
        "checks": checks,
        "regions": sorted(regions),
        "vantage": vantage,
        "open_events": open_events,
        "evaluated_at": iso(evaluation.now),
        "source": "engine",
    }


async def status(request: web.Request) -> web.Response:
    evaluator = request.app[STATE_KEY].evaluator
    if evaluator is None or evaluator.latest is None:
        return await rollup_status(request)
    return json_response(status_document(evaluator))


def add_routes(app: web.Application) -> None:
    app[ROLLUP_KEY] = _Cached()
    app.router.add_get("/api/v1/status", status)
