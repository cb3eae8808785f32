"""probe-collector report [--since 30d] [--check GLOB] [--format table|json|csv|html]

Availability per check (and region), degraded time, error budget and burn rates, MTTR and
incidents, worst regions and top causes, from the collector's API (/api/v1/report): only the
collector may open an embedded store.
"""

from __future__ import annotations

import argparse
import html
import json
import urllib.parse
from typing import Any

from collector.commands.query import add_api_arguments, api_call, render

COLUMNS = [
    "check",
    "availability",
    "down_s",
    "degraded_s",
    "excluded_s",
    "no_data_s",
    "incidents",
    "mttr_s",
    "slo_target",
    "budget_left",
    "burn_1h",
    "burn_6h",
    "alert",
    "worst_region",
    "top_cause",
]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("report", help="availability and SLO report")
    parser.add_argument("--since", default="30d", help="how far back (30d, 12h, ...)")
    parser.add_argument("--check", default="*", help="check ids by glob")
    parser.add_argument("--format", choices=["table", "json", "csv", "html"], default="table")
    add_api_arguments(parser)
    parser.set_defaults(handler=run)


def rows(answer: dict[str, Any]) -> list[list[Any]]:
    """One flat row per check (COLUMNS)."""
    out = []
    for check in answer["checks"]:
        slo = check.get("slo") or {}
        regions = check.get("regions") or []
        causes = check.get("top_causes") or []
        out.append(
            [
                check["check"],
                check["availability"],
                check["down_s"],
                check["degraded_s"],
                check["excluded_s"],
                check["no_data_s"],
                check["incidents"],
                check["mttr_s"],
                slo.get("target"),
                slo.get("budget_left"),
                slo.get("burn_1h"),
                slo.get("burn_6h"),
                slo.get("alert"),
                f"{regions[0]['region']} {regions[0]['availability']}" if regions else None,
                causes[0]["class"] if causes else None,
            ]
        )
    return out


def _summary(answer: dict[str, Any]) -> str:
    worst = ", ".join(f"{r['region']} {r['availability']}%" for r in answer["worst_regions"][:5])
    causes = ", ".join(
        f"{c['class']}{'@' + c['host'] if c['host'] else ''} ({c['events']})"
        for c in answer["top_causes"][:5]
    )
    return (
        f"{answer['since']} .. {answer['until']}: {answer['incidents']} incidents, "
        f"MTTR {answer['mttr_s']} s\nworst regions: {worst or '-'}\ntop causes: {causes or '-'}"
    )


def to_html(answer: dict[str, Any]) -> str:
    """A self-contained page: the summary and one table row per check."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in rows(answer)
    )
    summary = "<br>".join(html.escape(line) for line in _summary(answer).splitlines())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>probenet availability</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>Availability</h1><p>{summary}</p><table><tr>{head}</tr>{body}</table></body></html>"
    )


def run(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"since": args.since, "check": args.check})
    answer = api_call(args, f"/api/v1/report?{query}")
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    elif args.format == "html":
        print(to_html(answer))
    elif args.format == "csv":
        print(render(COLUMNS, rows(answer), "csv"))
    else:
        print(render(COLUMNS, rows(answer), "table"))
        print()
        print(_summary(answer))
    return 0
