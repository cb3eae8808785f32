"""The live view renders the lab's state; the plain and JSON observers print what happened."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from collector.lab.expect import EventHistory
from collector.lab.runner import Lab
from collector.lab.scenario import builtin_path, load_scenario
from collector.lab.view import JsonObserver, LiveObserver, PlainObserver

EVENT = {
    "id": "e1",
    "version": 1,
    "kind": "check",
    "check": "shop-page",
    "status": "partial",
    "scope": "regional",
    "regions": ["fr", "it"],
    "cause": {"class": "tls_cert_expired", "host": "static.lab.test", "error": "x"},
    "opened_at": "2026-01-01T00:00:10Z",
    "updated_at": "2026-01-01T00:00:10Z",
    "closed_at": None,
}


def lab_with_state(tmp_path: Path, observer: object) -> Lab:
    lab = Lab(load_scenario(builtin_path("shop-assets-cert-expired")), observer, workdir=tmp_path)  # type: ignore[arg-type]
    lab.phase = "running"
    lab.clock_start = 1.0
    lab.status["shop-page"] = {
        "check": "shop-page",
        "status": "partial",
        "scope": "regional",
        "regions": ["fr", "it"],
        "region_states": {"it": "PARTIAL", "fr": "PARTIAL", "de": "UP", "us": "UP"},
    }
    lab.events["e1"] = EventHistory("e1", "check", "shop-page", [EVENT])
    return lab


def test_live_view_shows_grid_events_and_timeline(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=140, force_terminal=True, color_system=None)
    observer = LiveObserver(console)
    lab = lab_with_state(tmp_path, observer)
    console.print(observer.render(lab))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "checks x regions" in text
    assert "PARTIAL" in text and "UP" in text
    assert "tls_cert_expired static.lab.test" in text
    assert "cert_expired static [fr,it] 10-40s" in text


def test_plain_and_json_observers(tmp_path: Path) -> None:
    plain_out, json_out = io.StringIO(), io.StringIO()
    plain, as_json = PlainObserver(plain_out), JsonObserver(json_out)
    lab = lab_with_state(tmp_path, plain)
    history = lab.events["e1"]
    plain.event_version(lab, history, EVENT)
    as_json.event_version(lab, history, EVENT)
    assert (
        "event #e1 v1 opened: shop-page: partial regional [fr,it] cause tls_cert_expired on static.lab.test"
        in (plain_out.getvalue())
    )
    line = json.loads(json_out.getvalue())
    assert line["type"] == "event" and line["regions"] == ["fr", "it"] and line["version"] == 1
