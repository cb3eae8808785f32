"""`probe-collector lab --notify TYPE=URL` (repeatable): the lab's collector sends its events to
real sinks, here a real Alertmanager and a plain webhook; a bad flag exits 2 before anything starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.alerting import alertmanager, post_receiver
from tests.e2e.test_lab import run_lab

pytestmark = pytest.mark.e2e
WAIT_S = 30.0


def test_lab_sends_its_events_to_alertmanager_and_a_webhook(tmp_path: Path) -> None:
    with (
        post_receiver() as (port, bodies),
        alertmanager(tmp_path / "am", f"http://127.0.0.1:{port}/am") as am,
    ):
        done = run_lab(
            "global-outage",
            "--json",
            "--speed",
            "4",
            "--notify",
            f"alertmanager={am}",
            "--notify",
            f"webhook=http://127.0.0.1:{port}/hook",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        deadline = time.monotonic() + WAIT_S
        while [n["status"] for n in bodies.get("/am", [])][-1:] != ["resolved"]:
            assert time.monotonic() < deadline, f"no resolved notification: {bodies.get('/am')}"
            time.sleep(0.2)
    versions = [b["event"] for b in bodies["/hook"] if b["event"]["check"] == "api-http"]
    assert versions[0]["status"] == "outage" and versions[-1]["closed_at"] is not None
    firing = [n for n in bodies["/am"] if n["status"] == "firing"]
    assert {a["labels"]["check"] for n in firing for a in n["alerts"]} == {"api-http"}
    assert firing[0]["alerts"][0]["labels"]["alertname"] == "ProbenetOutage"


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        ("pager=http://127.0.0.1:1/", "expected TYPE=URL"),
        ("alertmanager", "expected TYPE=URL"),
        ("webhook=ftp://x", "--notify: notify[0].url: expected an http(s):// URL"),
        ("pagerduty=http://127.0.0.1:1/", "PROBENET_PAGERDUTY_KEY is not set"),
    ],
)
def test_bad_notify_flag_exits_2(
    tmp_path: Path, flag: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBENET_PAGERDUTY_KEY", raising=False)
    done = run_lab("global-outage", "--notify", flag, cwd=tmp_path)
    assert done.returncode == 2
    assert reason in done.stderr
