"""GET /api/v1/agents (last seen, region, version, spool depth, connected, impaired) and
GET /api/v1/checks/{id}?minutes=60 (latency by phase over time, failures by class and region).

Every query is bounded by check id (the ORDER BY prefix) or by time, so none scans the whole
results table.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from collector.verdicts.model import agent_key
from collector.web.base import STATE_KEY, error, int_param, json_response, run_query

MAX_DETAIL_MINUTES = 7 * 24 * 60
DETAIL_POINTS = 120

# An agent is (region, agent id): the same id in two regions is two agents.
_AGENTS_SQL = """
SELECT agent_id, region, argMax(version, last_seen), max(last_seen),
       dateDiff('millisecond', max(last_seen), now64(3)) / 1000.0,
       argMax(spool_depth, last_seen), argMax(dropped_results, last_seen), argMax(last_seq, last_seen)
FROM agents
GROUP BY region, agent_id
ORDER BY agent_id, region
LIMIT 100000
"""


async def agents(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    rows = await run_query(request, _AGENTS_SQL, {})
    connected = set(state.connected_agents())
    impaired = set(state.impaired_agents())
    # The table is written every few seconds; the ingestor knows the latest committed seq now.
    return json_response(
        {
            "agents": [
                {
                    "agent_id": a,
                    "region": region,
                    "version": version,
                    "last_seen": last_seen,
                    "seconds_since_seen": round(float(age), 3),
                    "spool_depth": spool,
                    "dropped_results": dropped,
                    "last_seq": max(last_seq, state.committed_seq(region, a)),
                    "connected": (region, a) in connected,
                    "impaired": agent_key(region, a) in impaired,
                }
                for a, region, version, last_seen, age, spool, dropped, last_seq in rows
            ]
        }
    )


# Latency only from results that got an answer: a failed probe's phases stop where it failed.
_LATENCY_SQL = """
SELECT toUnixTimestamp(toStartOfInterval(started_at, INTERVAL {step:UInt32} SECOND)) AS t,
       round(avgIf(dns_ms, ok), 2), round(avgIf(connect_ms, ok), 2), round(avgIf(tls_ms, ok), 2),
       round(avgIf(ttfb_ms, ok), 2), round(avgIf(transfer_ms, ok), 2), round(avgIf(total_ms, ok), 2),
       round(quantileIf(0.95)(total_ms, ok), 2), count(), countIf(outcome = 'failed'),
       countIf(outcome = 'partial')
FROM (SELECT started_at, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, total_ms, outcome,
             outcome != 'failed' AS ok
      FROM probe_results
      WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE)
GROUP BY t ORDER BY t
"""
# One row per (region, outcome, failure class): both the failures table and the per-region
# summary come from it, so a check's page costs two queries (three for a page probe).
_GROUPS_SQL = """
SELECT region, outcome, failure_class, count() AS n, anyLast(failure_host), anyLast(error),
       toUnixTimestamp64Milli(max(started_at)) / 1000, groupUniqArray(agent_id), any(probe), any(target)
FROM probe_results
WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
GROUP BY region, outcome, failure_class
ORDER BY n DESC
LIMIT 1000
"""
_HOSTS_SQL = """
SELECT host, cls, region, count() AS n
FROM probe_results ARRAY JOIN page_failed_hosts AS host, page_failed_classes AS cls
WHERE check_id = {check:String} AND started_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
  AND page_resources_failed > 0
GROUP BY host, cls, region ORDER BY n DESC LIMIT 100
"""
PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")


async def check_detail(request: web.Request) -> web.Response:
    check = request.match_info["check_id"]
    minutes = int_param(request, "minutes", 60, 1, MAX_DETAIL_MINUTES)
    step = max(60, (minutes * 60) // DETAIL_POINTS // 60 * 60)
    params = {"check": check, "minutes": minutes, "step": step}
    groups = await run_query(request, _GROUPS_SQL, params)
    if not groups:
        return error(404, f"no results for check {check!r} in the last {minutes} minutes")
    latency = await run_query(request, _LATENCY_SQL, params)
    probe, target = groups[0][8], groups[0][9]
    hosts = await run_query(request, _HOSTS_SQL, params) if probe == "page" else []
    return json_response(
        {
            "check": check,
            "probe": probe,
            "target": target,
            "minutes": minutes,
            "step_s": step,
            "phases": list(PHASES),
            "latency": [_latency_point(row) for row in latency],
            "failures": [
                {"class": cls or "", "region": region, "count": n, "host": host, "error": err, "last": last}
                for region, outcome, cls, n, host, err, last, *_ in groups
                if outcome != "success"
            ],
            "regions": _region_summaries(groups),
            "failed_hosts": [{"host": h, "class": c, "region": r, "count": n} for h, c, r, n in hosts],
        }
    )


def _latency_point(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "t": row[0],
        **{p: _num(v) for p, v in zip(PHASES, row[1:7], strict=True)},
        "p95_total": _num(row[7]),
        "results": row[8],
        "failures": row[9],
        "partials": row[10],
    }


def _region_summaries(groups: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    regions: dict[str, dict[str, Any]] = {}
    agents: dict[str, set[str]] = {}
    for region, outcome, _, n, _, _, last, agent_ids, *_ in groups:
        summary = regions.setdefault(
            region, {"region": region, "results": 0, "failures": 0, "partials": 0, "latest": "", "last": 0}
        )
        summary["results"] += n
        summary["failures"] += n if outcome == "failed" else 0
        summary["partials"] += n if outcome == "partial" else 0
        if last >= summary["last"]:
            summary["latest"], summary["last"] = outcome, last
        agents.setdefault(region, set()).update(agent_ids)
    return [{**regions[r], "agents": len(agents[r])} for r in sorted(regions)]


def _num(value: Any) -> float | None:
    # avgIf over no rows is nan: JSON has no nan, and "no data" is what it means.
    return None if value is None or math.isnan(value) else float(value)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/agents", agents)
    app.router.add_get("/api/v1/checks/{check_id}", check_detail)
