"""probe-collector status [--json] — every check's verdict and every region's state, at a glance."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from collector.commands.query import add_api_arguments, api_call

_MARK = {"UP": "up", "DOWN": "DOWN", "PARTIAL": "part", "NO_DATA": "-"}
_ORDER = {"outage": 0, "partial": 1, "unknown": 2, "ok": 3}


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status", help="current verdict of every check and region"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_api_arguments(parser)
    parser.set_defaults(handler=run)


def render(doc: dict[str, Any]) -> str:
    regions: list[str] = doc.get("regions", [])
    checks = sorted(doc.get("checks", []), key=lambda c: (_ORDER.get(c["status"], 9), c["check"]))
    header = ["CHECK", "STATUS", "SCOPE", *regions, "CAUSE"]
    rows = [header]
    for c in checks:
        cause = c.get("cause") or {}
        cause_text = " ".join(filter(None, [cause.get("class", ""), cause.get("host", "")]))
        states = c.get("region_states", {})
        rows.append(
            [
                c["check"],
                c["status"],
                c.get("scope", "") if c["status"] != "ok" else "",
                *(_MARK.get(states.get(r, "NO_DATA"), "?") for r in regions),
                cause_text,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts: dict[str, int] = {}
    for c in checks:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: _ORDER.get(kv[0], 9)))
    lines.append("")
    lines.append(
        f"{len(checks)} checks: {summary or 'none'} (evaluated at {doc.get('evaluated_at') or 'not yet'})"
    )
    for v in doc.get("vantage", []):
        who = f"agent {v['agent']} ({v['region']})" if v.get("scope") == "agent" else f"region {v['region']}"
        cause = (v.get("cause") or {}).get("class", "")
        lines.append(f"impaired {who}: {v['failing_checks']}/{v['checks']} checks failing {cause}".rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    doc = api_call(args, "/api/v1/status")
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render(doc))
    sys.stdout.flush()
    return 0
