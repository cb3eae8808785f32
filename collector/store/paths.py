"""path_traces rows: conversion from the wire PathTrace and back to the JSON shown with an event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from probenet.v1.stream_pb2 import PathTrace

TRACE_COLUMNS = (
    "event_id",
    "check_id",
    "agent_id",
    "region",
    "host",
    "address",
    "started_at",
    "method",
    "reached",
    "error",
    "hop",
    "hop_address",
    "rtt_ms",
    "sent",
    "lost",
)
MAX_HOPS = 64


def trace_rows(agent_id: str, region: str, trace: PathTrace) -> list[list[Any]]:
    """One row per hop; a trace without hops (the agent could not trace) is one row, hop 0."""
    started = trace.started_at.ToDatetime(tzinfo=UTC) if trace.HasField("started_at") else datetime.now(UTC)
    head = [trace.event_id, trace.check_id, agent_id, region, trace.host, trace.address, started]
    tail = [trace.method or "udp", int(trace.reached), trace.error[:1000]]
    hops = list(trace.hops)[:MAX_HOPS]
    if not hops:
        return [[*head, *tail, 0, "", [], 0, 0]]
    return [
        [*head, *tail, min(h.ttl, 255), h.address, list(h.rtt_ms), min(h.sent, 255), min(h.lost, 255)]
        for h in hops
    ]


def load_traces_sql() -> str:
    return (
        f"SELECT {', '.join(TRACE_COLUMNS)} FROM path_traces WHERE event_id = {{event:String}} "
        "ORDER BY region, agent_id, started_at, hop"
    )


def traces_from_rows(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The traces of an event, one per (agent, start), each with its hops."""
    traces: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        r = dict(zip(TRACE_COLUMNS, row, strict=True))
        key = (r["agent_id"], r["started_at"])
        trace = traces.get(key)
        if trace is None:
            started = r["started_at"]
            trace = traces[key] = {
                "agent": r["agent_id"],
                "region": r["region"],
                "host": r["host"],
                "address": r["address"],
                "started_at": started.isoformat() if hasattr(started, "isoformat") else str(started),
                "method": r["method"],
                "reached": bool(r["reached"]),
                "error": r["error"],
                "hops": [],
            }
        if r["hop"]:
            trace["hops"].append(
                {
                    "ttl": r["hop"],
                    "address": r["hop_address"],
                    "rtt_ms": [round(float(x), 3) for x in r["rtt_ms"]],
                    "sent": r["sent"],
                    "lost": r["lost"],
                }
            )
    return list(traces.values())
