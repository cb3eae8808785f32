"""`probe-agent check` as a real subprocess: output and exit codes 0, 1 and 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki
from tests.probe_agent.probes.servers import DnsServer, Routes, hang, http_handler, serving

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
