"""probe-collector events show ID [--json] — one event: its versions and the path traces of its agents."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from collector.commands.query import add_api_arguments, api_call


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("events", help="look at one event")
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="an event's versions and the path traces of its agents")
    show.add_argument("event_id")
    show.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_api_arguments(show)
    show.set_defaults(handler=run)


def render(doc: dict[str, Any]) -> str:
    event = doc["event"]
    cause = event.get("cause") or {}
    lines = [
        f"event {event['id']} ({event['kind']}) check {event['check']}: {event['status']} {event['scope']} "
        f"regions {','.join(event['regions']) or '-'} cause {cause.get('class', '-')} {cause.get('host', '')}".rstrip()
    ]
    for v in doc.get("versions", []):
        lines.append(f"  v{v['version']}: {v['status']} {v['scope']} {','.join(v['regions'])}")
    traces = doc.get("path_traces", [])
    lines.append(f"path traces: {len(traces)}")
    lines.extend(render_traces(traces))
    return "\n".join(lines)


def render_traces(traces: list[dict[str, Any]]) -> list[str]:
    """Hops side by side, one column per agent; a hop where the agents' paths diverge is marked."""
    if not traces:
        return []
    depth = max((len(t["hops"]) for t in traces), default=0)
    columns = [[f"{t['agent']} ({t['region']})"] for t in traces]
    marks = []
    for i in range(depth):
        addresses = set()
        for column, trace in zip(columns, traces, strict=True):
            hop = trace["hops"][i] if i < len(trace["hops"]) else None
            address = (hop["address"] or "*") if hop else ""
            column.append(address + (f" {hop['lost']}/{hop['sent']} lost" if hop and hop["lost"] else ""))
            if hop:
                addresses.add(hop["address"] or "*")
        marks.append("<- paths diverge" if len(addresses) > 1 else "")
    widths = [max(len(c) for c in column) for column in columns]
    lines = ["  hop  " + "  ".join(c[0].ljust(w) for c, w in zip(columns, widths, strict=True))]
    for i in range(depth):
        row = "  ".join(c[i + 1].ljust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(f"  {i + 1:3d}  {row}  {marks[i]}".rstrip())
    for t in traces:
        end = "reached" if t["reached"] else "not reached"
        lines.append(
            f"  {t['agent']}: to {t['host']} ({t['address'] or '-'}) {end}{'; ' + t['error'] if t['error'] else ''}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    doc = api_call(args, f"/api/v1/events/{args.event_id}")
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render(doc))
    sys.stdout.flush()
    return 0
