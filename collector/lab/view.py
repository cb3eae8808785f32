"""What the lab shows while it runs: a live `rich` view on a terminal, plain lines otherwise,
one JSON object per line with `--json`."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from collector.lab.expect import EventHistory
from collector.lab.report import describe_event, report_json, report_lines
from collector.lab.runner import Lab, LabReport
from collector.web import to_json_value

STATE_STYLES = {
    "UP": "bold white on green",
    "PARTIAL": "bold black on yellow",
    "DOWN": "bold white on red",
    "NO_DATA": "dim",
    "": "dim",
}
STATUS_STYLES = {"ok": "green", "partial": "yellow", "outage": "red", "unknown": "dim"}


def _scenario_clock(lab: Lab) -> str:
    if lab.phase == "starting":
        return f"starting ({time.monotonic() - lab.started_monotonic:.0f}s)"
    total = lab.scenario.duration * lab.scenario.speed
    return f"t={min(lab.scenario_t, total):5.1f}s / {total:g}s"


class JsonObserver:
    """--json: verdict changes and event versions as they happen, then events and expect."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def _emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(to_json_value(obj), sort_keys=True) + "\n")
        self.out.flush()

    def started(self, lab: Lab) -> None:
        self._emit(
            {
                "type": "start",
                "scenario": lab.scenario.name,
                "speed": lab.scenario.speed,
                "agents": list(lab.agent_numbers),
                "checks": [c.id for c in lab.scenario.checks],
                "clock_start": lab.clock_start_epoch,
                "workdir": str(lab.workdir),
                "port": lab.port,
                "collector_api": lab.api,
                "namespaces": lab.namespaces,
            }
        )

    def tick(self, lab: Lab) -> None:
        pass

    def verdict_changed(self, lab: Lab, change: dict[str, Any]) -> None:
        self._emit({"type": "verdict", "t": round(lab.scenario_t, 2), **change})

    def event_version(self, lab: Lab, event: EventHistory, version: dict[str, Any]) -> None:
        self._emit({"type": "event", "t": round(lab.scenario_t, 2), **version})

    def fault_changed(self, lab: Lab, message: str) -> None:
        self._emit({"type": "fault", "t": round(lab.scenario_t, 2), "message": message})

    def finished(self, lab: Lab, report: LabReport) -> None:
        for line in report_json(report):
            self._emit(line)

    def message(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class PlainObserver:
    """Not a terminal: one line per change, then the report."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.out = out

    def _line(self, lab: Lab | None, text: str) -> None:
        prefix = f"[{lab.scenario_t:6.1f}s] " if lab is not None and lab.phase != "starting" else ""
        print(prefix + text, file=self.out, flush=True)

    def started(self, lab: Lab) -> None:
        s = lab.scenario
        self._line(
            None,
            f"scenario clock starts: {s.name}, {len(lab.agent_numbers)} agents in "
            f"{len(s.regions)} regions, {len(s.checks)} checks, interval {s.interval * s.speed:g}s, "
            f"speed {s.speed:g}",
        )

    def tick(self, lab: Lab) -> None:
        pass

    def verdict_changed(self, lab: Lab, change: dict[str, Any]) -> None:
        self._line(lab, "verdict " + describe_event(change))

    def event_version(self, lab: Lab, event: EventHistory, version: dict[str, Any]) -> None:
        state = (
            "closed" if version.get("closed_at") else ("opened" if len(event.versions) == 1 else "updated")
        )
        self._line(
            lab, f"event #{event.id} v{version.get('version', '?')} {state}: {describe_event(version)}"
        )

    def fault_changed(self, lab: Lab, message: str) -> None:
        self._line(lab, message)

    def finished(self, lab: Lab, report: LabReport) -> None:
        for line in report_lines(report, lab.scenario):
            print(line, file=self.out, flush=True)

    def message(self, text: str) -> None:
        self._line(None, text)

    def close(self) -> None:
        pass


class LiveObserver(PlainObserver):
    """A terminal: grid of checks x regions, open events, clock and fault timeline, redrawn."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        super().__init__(self.console.file)
        self.live: Live | None = None
        self.log: list[str] = []
        self._last_draw = 0.0

    def _ensure_live(self, lab: Lab) -> Live:
        if self.live is None:
            self.live = Live(self.render(lab), console=self.console, auto_refresh=False, transient=False)
            self.live.start()
        return self.live

    def _line(self, lab: Lab | None, text: str) -> None:
        prefix = f"[{lab.scenario_t:5.1f}s] " if lab is not None and lab.phase != "starting" else ""
        self.log = [*self.log, prefix + text][-8:]

    def tick(self, lab: Lab) -> None:
        now = time.monotonic()
        if now - self._last_draw >= 0.25:
            self._last_draw = now
            self._ensure_live(lab).update(self.render(lab), refresh=True)

    def started(self, lab: Lab) -> None:
        super().started(lab)
        self.tick(lab)

    def finished(self, lab: Lab, report: LabReport) -> None:
        if self.live is not None:
            self.live.update(self.render(lab), refresh=True)
            self.live.stop()
            self.live = None
        for line in report_lines(report, lab.scenario):
            self.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        """Give the terminal back (also after an error or Ctrl-C)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def message(self, text: str) -> None:
        if self.live is None:
            self.console.print(text, highlight=False, markup=False)
        else:
            self._line(None, text)

    def render(self, lab: Lab) -> Group:
        s = lab.scenario
        head = Text(
            f"probenet lab  {s.name}  {_scenario_clock(lab)}  speed {s.speed:g}  "
            f"collector {lab.api or '...'}",
            style="bold",
        )
        grid = Table(title="checks x regions", title_justify="left", expand=False)
        grid.add_column("check")
        grid.add_column("verdict")
        for region in s.regions:
            grid.add_column(region, justify="center")
        for check in s.checks:
            status = lab.status.get(check.id, {})
            region_states = status.get("region_states") or {}
            cells = []
            for region in s.regions:
                raw = region_states.get(region)
                state = raw.get("state", "") if isinstance(raw, dict) else str(raw or "")
                cells.append(Text(f" {state or '…'} ", style=STATE_STYLES.get(state, "dim")))
            verdict = str(status.get("status", "…"))
            scope = status.get("scope") or ""
            grid.add_row(
                check.id,
                Text(
                    f"{verdict} {scope if verdict != 'ok' else ''}".strip(),
                    style=STATUS_STYLES.get(verdict, "dim"),
                ),
                *cells,
            )
        events = Table(title="open events", title_justify="left")
        for column in ("#", "kind", "check", "status", "scope", "regions", "cause"):
            events.add_column(column)
        for event in lab.events.values():
            v = event.latest
            if v.get("closed_at"):
                continue
            cause = v.get("cause") if isinstance(v.get("cause"), dict) else {}
            cause_text = f"{(cause or {}).get('class', '')} {(cause or {}).get('host', '')}".strip()
            events.add_row(
                event.id,
                event.kind,
                event.check or "-",
                Text(str(v.get("status")), style=STATUS_STYLES.get(str(v.get("status")), "")),
                str(v.get("scope") or ""),
                ",".join(v.get("regions") or ()),
                cause_text,
            )
        return Group(head, grid, events, self._timeline(lab), Text("\n".join(self.log), style="dim"))

    def _timeline(self, lab: Lab) -> Table:
        s = lab.scenario
        width = 40
        table = Table(title="fault timeline", title_justify="left", show_header=False, box=None)
        table.add_column("fault", no_wrap=True)
        table.add_column("bar", no_wrap=True)
        now = int(width * min(max(lab.t, 0.0) / s.duration, 1.0))
        for fault in s.faults:
            start, end = int(width * fault.at / s.duration), max(int(width * fault.until / s.duration), 1)
            bar = Text()
            for i in range(width):
                char = "█" if start <= i < end else "─"
                style = "red" if start <= i < end else "dim"
                if i == now:  # the clock, visible without colours too
                    char, style = "┃", "bold cyan"
                bar.append(char, style=style)
            who = ",".join(sorted({a.rsplit("-", 1)[0] for a in fault.agents}))
            label = f"{fault.label} {fault.target or 'all'} [{who}] {fault.at * s.speed:g}-{fault.until * s.speed:g}s"
            table.add_row(Text(label), bar)  # Text: "[fr,it]" is not rich markup
        return table
