"""Real processes: a check fails in one region, its event opens, the collector asks that region's
agent (not the other's) for a path trace, and `probe-collector events show` prints the hops."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.collector.test_statuspage import browser, page
from tests.e2e.procs import BIN, Collector, start_agent, stopped_on_exit, wait_until
from tests.probe_agent.probes.servers import closed_port

__all__ = ["browser", "page"]  # the status page test's chromium fixtures


@pytest.mark.e2e
def test_an_opened_event_brings_path_traces_from_its_region(tmp_path: Path, page: Page) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        common = {"probe": "tcp", "interval": "1s", "timeout": "500ms"}
        checks = [
            {"id": "gone", "target": f"127.0.0.1:{closed_port()}", "regions": ["it"], **common},
            {"id": "fine", "target": f"127.0.0.1:{listener.getsockname()[1]}", **common},
        ]
        collector = Collector(tmp_path, extra={"checks": checks, "evaluate_every": "1s"}).start()
        agents = [start_agent(tmp_path, f"{r}-1", r, collector.address, []) for r in ("it", "fr")]
        with stopped_on_exit(collector, *agents):
            rows = wait_until(
                lambda: collector.query(
                    "SELECT event_id, agent_id, hop, hop_address, reached FROM path_traces ORDER BY hop"
                ),
                90,
                "a path trace stored for the opened event",
            )
            events = collector.query("SELECT event_id, check_id FROM outage_events_latest")
            shown = subprocess.run(
                [str(BIN / "probe-collector"), "events", "show", rows[0]["event_id"], "--api", collector.api],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            page.goto(f"{collector.api}/status/#/check/gone")
            page.wait_for_selector("#check-paths table.paths", timeout=20_000)
            header = page.locator("#check-paths thead").inner_text()
            first_hop = page.locator('#check-paths tr[data-hop="1"]')
            hop_text, hop_class = first_hop.inner_text(), first_hop.get_attribute("class")
            ends = page.locator("#check-paths p.when").inner_text()
    assert {e["check_id"] for e in events if e["event_id"] == rows[0]["event_id"]} == {"gone"}
    assert {r["agent_id"] for r in rows} == {"it-1"}, "fr is not affected: its agent is not asked"
    assert [(r["hop"], r["hop_address"], r["reached"]) for r in rows] == [(1, "127.0.0.1", 1)]
    assert shown.returncode == 0, shown.stderr
    assert "check gone" in shown.stdout and "path traces: 1" in shown.stdout
    assert "it-1: to 127.0.0.1 (127.0.0.1) reached" in shown.stdout
    assert "it-1 (it)" in header and "fr-1" not in header
    assert "127.0.0.1" in hop_text and " ms" in hop_text
    assert hop_class == "", "one agent: nothing diverges"
    assert ends == "it-1: reached 127.0.0.1"
