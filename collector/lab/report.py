"""The final report: events, detection latency per event, expect, and SQL with answers.

`report_lines` is plain text (what a log or a pipe gets); `report_json` is the `--json` tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.lab.expect import cause_class, describe_trace
from collector.lab.runner import LabReport
from collector.lab.scenario import Scenario
from collector.web import to_json_value

MAX_ROWS = 12


def describe_event(version: dict[str, Any]) -> str:
    cause = version.get("cause") if isinstance(version.get("cause"), dict) else {}
    cls = cause_class(version) or "-"
    host = cause.get("host") if cause else ""
    regions = ",".join(version.get("regions") or ()) or "-"
    subject = version.get("check") or version.get("kind")
    return (
        f"{subject}: {version.get('status')} {version.get('scope') or ''} [{regions}] "
        f"cause {cls}{' on ' + host if host else ''}"
    ).replace("  ", " ")


def report_lines(report: LabReport, scenario: Scenario) -> list[str]:
    lines = [
        f"== lab {report.scenario}: finished in {report.wall_s:.1f}s "
        f"(start-up {report.startup_s:.1f}s, scenario {scenario.duration * scenario.speed:g}s "
        f"at speed {scenario.speed:g})"
    ]
    lines.append(f"-- events ({len(report.events)})")
    if not report.events:
        lines.append("   none")
    for event in report.events:
        first, last = event.versions[0], event.latest
        closed = f"closed {last.get('closed_at')}" if last.get("closed_at") else "still open"
        lines.append(
            f"   #{event.id} {event.kind} opened {first.get('opened_at')}, "
            f"{len(event.versions)} version(s), {closed}"
        )
        lines.extend(f"      v{v.get('version', '?')}: {describe_event(v)}" for v in event.versions)
        lines.extend(f"      {describe_trace(t)}" for t in event.path_traces)
    lines.append("-- detection latency (fault start -> event open, in scenario seconds)")
    if not report.latencies:
        lines.append("   no event follows a fault")
    for figure in report.latencies:
        verdict = "within" if figure.intervals <= figure.budget_intervals else "OVER"
        lines.append(
            f"   #{figure.event_id} {figure.check}: opened {figure.latency_s:.2f}s "
            f"({figure.intervals:.2f} intervals) after {figure.fault} started at {figure.fault_at:g}s, "
            f"{verdict} the budget of {figure.budget_intervals:g} intervals (confirm + 1)"
        )
    if report.expect:
        met = sum(o.met for o in report.expect)
        lines.append(f"-- expect: {met}/{len(report.expect)} met")
        for outcome in report.expect:
            mark = "ok  " if outcome.met else "FAIL"
            lines.append(f"   {mark} {outcome.expectation.describe()}  ({outcome.detail})")
    lines.append('-- ask the run\'s store yourself (probe-collector query "SQL" against a running collector)')
    for title, sql, columns, rows in report.queries:
        lines.append(f"   # {title}")
        lines.append(f"   {sql}")
        lines.extend(f"     {line}" for line in table_lines(columns, rows))
    return lines


def table_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cells = [[_cell(v) for v in row] for row in rows[:MAX_ROWS]]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)
    if len(rows) > MAX_ROWS:
        out.append(f"... {len(rows) - MAX_ROWS} more rows")
    return out


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def report_json(report: LabReport) -> list[dict[str, Any]]:
    """The last lines of `--json`: every event with its versions, the expect report, the figures."""
    return [
        {"type": "events", "events": [to_json_value(e.to_dict()) for e in report.events]},
        {"type": "expect", "met": report.expect_met, "entries": [o.to_dict() for o in report.expect]},
        {
            "type": "report",
            "scenario": report.scenario,
            "wall_s": round(report.wall_s, 2),
            "startup_s": round(report.startup_s, 2),
            "detection_latency": [
                {
                    "event": f.event_id,
                    "check": f.check,
                    "fault": f.fault,
                    "fault_at": f.fault_at,
                    "latency_s": round(f.latency_s, 3),
                    "intervals": round(f.intervals, 2),
                    "budget_intervals": f.budget_intervals,
                }
                for f in report.latencies
            ],
            "queries": [
                {"title": t, "sql": s, "columns": c, "rows": to_json_value(r)}
                for t, s, c, r in report.queries
            ],
        },
    ]
