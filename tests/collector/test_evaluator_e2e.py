"""A real `probe-collector serve` process: results fed over the agents' gRPC stream become events
(stored, served by /api/v1/events and `probe-collector status`, posted to a webhook), and a
restarted collector continues the same events without repeating a version or a notification."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.collector.feed import feed, regional_outage
from tests.e2e.procs import BIN, Collector, stopped_on_exit

WAIT_S = 45.0
CHECKS = [
    {"id": "shop", "probe": "http", "target": "https://shop.test/", "interval": "10s"},
    {"id": "api", "probe": "tls", "target": "api.test:443", "interval": "10s"},
    {"id": "assets", "probe": "page", "target": "https://assets.test/", "interval": "10s"},
]


class Hook(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Hook.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _cli(collector: Collector, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "probe-collector"), *args, "--api", collector.api],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _events(collector: Collector) -> list[dict[str, Any]]:
    return collector.query(
        "SELECT event_id, version, check_id, status, scope, regions, cause_class, cause_host "
        "FROM outage_events ORDER BY check_id, version"
    )


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_collector_opens_serves_notifies_and_resumes(tmp_path: Path, webhook: str) -> None:
    collector = Collector(tmp_path)
    collector.extra = {
        "checks": CHECKS,
        "evaluate_every": "1s",
        "webhooks": [{"url": webhook, "format": "json"}],
    }
    collector.start()
    with stopped_on_exit(collector):
        # Results up to 90 s ahead (within limits.max_future_s): the outage goes on while a busy
        # machine runs the test, as a live agent's would, instead of going stale mid-test.
        feed(collector.address, *regional_outage(time.time() + 90, minutes=2.5, step=10.0))
        _wait(lambda: {e["check_id"] for e in _events(collector)} == {"shop", "assets"}, "two events")
        events = {e["check_id"]: e for e in _events(collector)}
        assert (events["shop"]["status"], events["shop"]["scope"], events["shop"]["regions"]) == (
            "outage",
            "regional",
            ["it"],
        )
        assert (events["shop"]["cause_class"], events["shop"]["cause_host"]) == ("tcp_refused", "shop.test")
        assert (events["assets"]["status"], events["assets"]["scope"]) == ("partial", "global")
        assert (events["assets"]["cause_class"], events["assets"]["cause_host"]) == (
            "tls_cert_expired",
            "cdn.test",
        )

        status = _cli(collector, "status", "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        by_check = {c["check"]: c for c in doc["checks"]}
        assert by_check["api"]["status"] == "ok"
        assert by_check["shop"]["region_states"]["it"] == "DOWN"
        assert {e["check"] for e in doc["open_events"]} == {"shop", "assets"}
        table = _cli(collector, "status")
        assert "shop" in table.stdout and "DOWN" in table.stdout

        _wait(lambda: len(Hook.bodies) >= 2, "two webhook calls")
        assert collector.stop() == 0

        # Restart on the same store: the same open events, no new version, nothing sent again.
        collector.start()
        ticks: set[str] = set()

        def ticked_three_times() -> bool:
            with urllib.request.urlopen(f"{collector.api}/api/v1/status", timeout=10) as response:
                ticks.add(json.load(response).get("evaluated_at") or "")
            return len(ticks - {""}) >= 3

        _wait(ticked_three_times, "three evaluations after the restart")
        again = _events(collector)
        assert [(e["event_id"], e["version"]) for e in again] == [
            (events[c]["event_id"], 1) for c in ("assets", "shop")
        ]
        sent = [(b["event"]["id"], b["event"]["version"]) for b in Hook.bodies]
        assert sorted(sent) == sorted((e["event_id"], 1) for e in again)
        answer = json.loads(_cli(collector, "query", "SELECT 1 AS one", "--format", "json").stdout or "{}")
        assert answer == {"one": 1}
        assert collector.stop() == 0
