"""`probe-collector lab` end to end: every built-in scenario meets its expect, a bad scenario
exits 2 with file, key and reason, and nothing the lab started outlives it (Ctrl-C included)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from collector.lab import netns
from collector.lab.scenario import DEFAULT_SCENARIO, builtin_names, builtin_path, load_scenario

pytestmark = pytest.mark.e2e

# The default replay runs 8 agents and a 30-asset page: at speed 2 its probes keep a 1 s
# timeout, enough on 2 busy cores. The smaller scenarios take speed 4.
DEFAULT_SPEED = 2.0
SPEED = 4.0
# A page and four other checks per agent, 8 agents, first versions asked for: speed 2 as well.
SPEEDS = {"all-regions-at-once": 2.0}
RUN_TIMEOUT_S = 240
NETNS_SKIP = netns.unavailable_reason()
PATH_BREAK = "path-break-region"


def lab_command(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from collector.cli import main; sys.exit(main())",
        "lab",
        *args,
    ]


def run_lab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab_command(*args),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the lab's work directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_cleaned_up(workdir: str, port: int | None) -> None:
    assert workdir.startswith("/tmp") or "probenet-lab-" in workdir
    deadline = time.monotonic() + 5
    while processes_mentioning(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(workdir) == []
    assert not Path(workdir).exists()
    if port:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind(("127.77.1.1", port))  # the first agent's DNS address: free again


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def builtin_cases() -> list[Any]:
    """Every built-in scenario but the default; those with path_break need network namespaces."""
    cases = []
    for name in builtin_names():
        if name == DEFAULT_SCENARIO:
            continue
        breaks = any(f.kind == "path_break" for f in load_scenario(builtin_path(name)).faults)
        skip = pytest.mark.skipif(breaks and bool(NETNS_SKIP), reason=f"path_break: {NETNS_SKIP}")
        cases.append(pytest.param(name, marks=skip))
    return cases


@pytest.mark.parametrize("name", builtin_cases())
def test_builtin_scenario_meets_its_expect(name: str, tmp_path: Path) -> None:
    done = run_lab(name, "--json", "--speed", str(SPEEDS.get(name, SPEED)), cwd=tmp_path)
    lines = json_lines(done.stdout)
    kinds = [line["type"] for line in lines]
    assert "start" in kinds, done.stderr[-3000:]
    start = next(line for line in lines if line["type"] == "start")
    expect = next((line for line in lines if line["type"] == "expect"), None)
    assert expect is not None, f"exit {done.returncode}, no expect report:\n{done.stderr[-3000:]}"
    unmet = [e for e in expect["entries"] if not e["met"]]
    assert unmet == [], json.dumps(unmet, indent=1)
    # Besides its entries (first versions, version counts): no event nobody expected.
    assert [e["kind"] for e in expect["entries"]].count("strict") == 1
    assert done.returncode == 0, done.stderr[-3000:]
    events = next(line for line in lines if line["type"] == "events")["events"]
    assert events
    for event in events:
        assert event["versions"], event
        assert [v["version"] for v in event["versions"]] == sorted(v["version"] for v in event["versions"])
    assert kinds.index("start") < kinds.index("events") < kinds.index("expect") < kinds.index("report")
    if name == "flapping-target":  # down, up, down again: the event closes and a new one opens
        assert len([e for e in events if e["check"] == "api-http"]) >= 2, events
    if name == PATH_BREAK:
        assert_broken_at_the_third_router(start, events)
    else:
        assert start["namespaces"] == []
    assert_cleaned_up(start["workdir"], start["port"])
    assert [ns for ns in start["namespaces"] if netns.existing(ns)] == []


def assert_broken_at_the_third_router(start: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """fr's agents ran behind three routers (5 namespaces each); the outage's stored traces, one
    per fr agent, answer at hops 1 and 2 and are silent from the break on."""
    assert len(start["namespaces"]) == 10
    (outage,) = events
    assert (outage["check"], outage["scope"], outage["regions"]) == ("shop-http", "regional", ["fr"])
    assert outage["cause"]["class"] == "tcp_timeout"
    traces = outage["path_traces"]
    assert sorted(t["agent"] for t in traces) == ["fr-1", "fr-2"]
    for trace in traces:
        hops = trace["hops"]
        assert len(hops) >= 3 and trace["reached"] is False, trace
        assert [(h["ttl"], h["address"]) for h in hops[:2]] == [(1, "10.78.1.2"), (2, "10.78.2.2")]
        assert all(h["address"] == "" and h["lost"] == h["sent"] for h in hops[2:]), trace


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux's setpriv")
def test_path_break_without_namespaces_exits_2_naming_file_fault_and_reason() -> None:
    """An ordinary user cannot make namespaces: the scenario is refused, nothing half-runs."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    done = subprocess.run(
        [*nobody, *lab_command(PATH_BREAK)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd="/",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{builtin_path(PATH_BREAK)}: faults[0].fault: path_break runs the agents' paths" in done.stderr
    assert "needs root to make network namespaces" in done.stderr
    assert done.stdout == ""


def test_default_scenario_meets_its_expect_and_reports(tmp_path: Path) -> None:
    """README command 1, in human mode (not a terminal: plain lines), then the report."""
    done = run_lab("--speed", str(DEFAULT_SPEED), cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "scenario clock starts: shop-assets-cert-expired, 8 agents in 4 regions" in out
    assert "fault cert_expired starts: static for it, fr" in out
    # Settled evidence: the first version already names both regions.
    assert re.search(
        r"event #\S+ v1 opened: shop-page: partial regional \[fr,it\] cause tls_cert_expired", out
    )
    assert "-- expect: 5/5 met" in out  # the four entries and the strict rule
    assert "-- detection latency (fault start -> event open" in out
    assert any("shop-page: " in line and "intervals" in line for line in out.splitlines())
    assert out.count("   # ") == 3  # three example queries, each followed by its answer
    assert "static.lab.test  tls_cert_expired" in out
    workdir = out.split("work directory ", 1)[1].split()[0]
    assert_cleaned_up(workdir, None)


def test_bad_scenario_exits_2_naming_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nregions: {it: 1}\ntargets: {shop: {kind: https}}\n"
        "checks: [{id: shop-http, probe: http, target: shop}]\n"
        "faults: [{at: 5s, target: shop, fault: cert_melted}]\n"
    )
    done = run_lab(str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{bad}: faults[0].fault: unknown fault 'cert_melted'" in done.stderr
    assert done.stdout == ""


def test_unknown_scenario_name_exits_2(tmp_path: Path) -> None:
    done = run_lab("no-such-scenario", cwd=tmp_path)
    assert done.returncode == 2
    assert "no such file or built-in scenario" in done.stderr


@pytest.mark.parametrize(
    "name",
    [
        "global-outage",
        pytest.param(
            PATH_BREAK, marks=pytest.mark.skipif(bool(NETNS_SKIP), reason=f"path_break: {NETNS_SKIP}")
        ),
    ],
)
def test_ctrl_c_stops_everything(name: str, tmp_path: Path) -> None:
    with subprocess.Popen(
        lab_command(name, "--json", "--speed", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            assert proc.stdout is not None
            start = json.loads(proc.stdout.readline())  # printed once every agent delivers
            assert start["type"] == "start"
            assert len(processes_mentioning(start["workdir"])) == 7  # collector + 6 agents
            assert bool(start["namespaces"]) == (name == PATH_BREAK)
            assert all(netns.existing(ns) for ns in start["namespaces"])
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1
    assert "interrupted; everything the lab started is stopped" in stderr
    assert_cleaned_up(start["workdir"], start["port"])
    assert [ns for ns in start["namespaces"] if netns.existing(ns)] == []


def test_unmet_expect_exits_1(tmp_path: Path) -> None:
    scenario = tmp_path / "calm.yaml"
    scenario.write_text(
        "name: calm\ninterval: 1s\nduration: 4s\nregions: {it: 1}\ntargets: {shop: {kind: https}}\n"
        "checks: [{id: shop-http, probe: http, target: shop}]\n"
        "expect: [{check: shop-http, status: outage}, {check: shop-http, status: ok}]\n"
    )
    done = run_lab(str(scenario), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    expect = next(line for line in json_lines(done.stdout) if line["type"] == "expect")
    assert expect["met"] is False
    assert [e["met"] for e in expect["entries"]] == [False, True]
    assert expect["entries"][0]["detail"] == "no event for this check"
