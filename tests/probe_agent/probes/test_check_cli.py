"""`probe-agent check` as a real subprocess: output and exit codes 0, 1 and 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki
from tests.probe_agent.probes.servers import (
    DnsServer,
    HttpRequest,
    Routes,
    hang,
    http_handler,
    respond,
    serving,
)

HOST = "cli.test"


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("probe-agent")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "probe_agent.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def ca_file(pki: Pki, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(pki.ca_pem)
    return path


def test_success_exits_0_with_json(pki: Pki, tmp_path: Path, ca_file: Path) -> None:
    routes = Routes().add("/", "fine")
    with serving(http_handler(routes), pki.leaf(HOST).server_context(tmp_path, "ok")) as server:
        proc = _agent(
            "check", "http", f"https://{HOST}:{server.port}/", "--json",
            "--ca", str(ca_file), "--resolve", f"{HOST}:127.0.0.1", "--timeout", "5",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "OUTCOME_SUCCESS"
    assert result["http"]["status_code"] == 200
    assert len(result["tls"]["chain"]) == 2


def test_failed_tls_exits_1_and_prints_the_chain(pki: Pki, tmp_path: Path, ca_file: Path) -> None:
    leaf = pki.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    with serving(hang, leaf.server_context(tmp_path, "expired")) as server:
        proc = _agent(
            "check", "tls", f"{HOST}:{server.port}", "--ca", str(ca_file), "--resolve", f"{HOST}:127.0.0.1"
        )
    assert proc.returncode == 1, proc.stderr
    assert f"tls {HOST}:{server.port}: failed" in proc.stdout
    assert "tls_cert_expired" in proc.stdout
    assert f"[0] CN={HOST}" in proc.stdout and "[1] CN=probenet test intermediate" in proc.stdout


def test_nxdomain_from_a_dns_server_exits_1() -> None:
    server = DnsServer({})
    try:
        proc = _agent("check", "dns", "nowhere.test", "--dns-server", server.address, "--timeout", "3")
    finally:
        server.close()
    assert proc.returncode == 1
    assert "dns_nxdomain" in proc.stdout


def _recording(seen: list[HttpRequest], body: bytes = b"hello probenet") -> Callable[..., None]:
    def app(conn: socket.socket, req: HttpRequest) -> None:
        seen.append(req)
        respond(conn, 200, body)

    return app


def test_inline_spec_runs_any_check_and_flags_override_it(pki: Pki, tmp_path: Path) -> None:
    seen: list[HttpRequest] = []
    with serving(http_handler(_recording(seen)), pki.leaf(HOST).server_context(tmp_path, "spec")) as server:
        spec = {
            "id": "central-web",
            "probe": "http",
            "target": f"https://{HOST}:{server.port}/x",
            "timeout": "5s",
            "resolve": {HOST: "127.0.0.1"},
            "tls": {"ca_pem": pki.ca_pem},
            "http": {"method": "HEAD", "headers": {"X-From": "spec"}, "body_contains": "probenet"},
        }
        ok = _agent(
            "check", "--spec", json.dumps(spec), "--json", "--method", "GET", "--header", "X-Extra: 1"
        )
        missing = _agent("check", "--spec", json.dumps(spec), "--method", "GET", "--body-contains", "absent")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result = json.loads(ok.stdout)
    assert result["check_id"] == "central-web"
    assert result["http"]["status_code"] == 200
    assert seen[0].method == "GET"
    assert seen[0].headers["x-from"] == "spec" and seen[0].headers["x-extra"] == "1"
    assert missing.returncode == 1
    assert "http_assertion" in missing.stdout


def test_spec_file_picks_a_central_check_by_id(pki: Pki, tmp_path: Path) -> None:
    seen: list[HttpRequest] = []
    big = b"x" * 5000
    with serving(http_handler(_recording(seen, big)), pki.leaf(HOST).server_context(tmp_path, "f")) as server:
        config = tmp_path / "collector.yaml"
        ca = json.dumps(pki.ca_pem)
        config.write_text(
            "checks:\n"
            f"  - {{id: web, probe: http, target: 'https://{HOST}:{server.port}/', timeout: 5s,"
            f" resolve: {{{HOST}: 127.0.0.1}}, tls: {{ca_pem: {ca}}}}}\n"
            f"  - {{id: cert, probe: tls, target: '{HOST}:{server.port}'}}\n"
        )
        whole = _agent("check", "--spec", f"@{config}#web")
        capped = _agent("check", "--spec", f"@{config}#web", "--max-body", "1000")
        ambiguous = _agent("check", "--spec", f"@{config}")
        unknown = _agent("check", "--spec", f"@{config}#nope")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "5000 bytes" in whole.stdout
    assert capped.returncode == 1
    assert "body_too_large" in capped.stdout
    assert ambiguous.returncode == 2
    assert "2 checks (web, cert)" in ambiguous.stderr
    assert unknown.returncode == 2
    assert "no check with id 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--spec", "{not json"], "--spec: invalid JSON"),
        (["check", "--spec", "@/nonexistent/checks.yaml"], "cannot read"),
        (["check", "--spec", '{"id": "x"}'], "probe: give PROBE TARGET"),
        (["check", "--spec", '{"probe": "http", "target": "http://a.test/", "timeout": "soon"}'], "timeout"),
        (
            ["check", "--spec", '{"probe": "http", "target": "http://a.test/", "http": 3}'],
            "http: expected a mapping",
        ),
        (["check", "--spec", '{"probe": "http", "target": "http://a.test/", "bogus": 1}'], "bogus"),
        (["check", "http", "http://a.test/", "--header", "no colon"], "--header"),
        (["check", "http", "http://a.test/", "--max-body", "0"], "--max-body"),
    ],
)
def test_bad_specs_and_flags_exit_2_with_the_reason(args: list[str], message: str) -> None:
    proc = _agent(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "ftp", "x"],
        ["check", "http", "not-a-url"],
        ["check", "http", "http://a.test/", "--resolve", "a.test"],
        ["check", "http", "http://a.test/", "--resolve", "a.test:not-an-ip"],
        ["check", "tls", "a.test:443", "--ca", "/nonexistent/ca.pem"],
        ["check", "http", "http://a.test/", "--timeout", "0"],
        ["check"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = _agent(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr
