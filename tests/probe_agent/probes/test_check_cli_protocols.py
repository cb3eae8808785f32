"""`probe-agent check tcp|grpc|icmp|dns --dnssec` as real subprocesses: the one-shot contract forms."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import dns.name
import pytest

from tests.probe_agent.probes.conftest import Pki
from tests.probe_agent.probes.dnssec_zones import SignedDnsServer, make_zones
from tests.probe_agent.probes.grpc_servers import NOT_SERVING, SERVING, grpc_server
from tests.probe_agent.probes.servers import closed_port, serving
from tests.probe_agent.probes.test_check_cli import _agent
from tests.probe_agent.probes.test_tcp import smtp_like


def test_tcp_send_expect_exits_0_with_json() -> None:
    with serving(smtp_like) as server:
        proc = _agent(
            "check", "tcp", f"127.0.0.1:{server.port}", "--send", r"PING\r\n", "--expect", r"\+PONG", "--json"
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "OUTCOME_SUCCESS"
    assert "+PONG" in result["tcp"]["banner"]


def test_tcp_tls_mismatch_exits_1_and_prints_the_banner(pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(pki.ca_pem)
    context = pki.leaf("tcp.test").server_context(tmp_path, "ok")
    with serving(smtp_like, context) as server:
        proc = _agent(
            "check", "tcp", f"tcp.test:{server.port}", "--tls", "--expect", "^SSH", "--ca", str(ca),
            "--resolve", "tcp.test:127.0.0.1", "--timeout", "2",
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "tcp_expect_failed" in proc.stdout
    assert "received: '220 banner.test" in proc.stdout
    assert "tls: TLS" in proc.stdout and "verified" in proc.stdout


def test_tcp_refused_exits_1() -> None:
    proc = _agent("check", "tcp", f"127.0.0.1:{closed_port()}")
    assert proc.returncode == 1
    assert "tcp_refused" in proc.stdout


def test_grpc_service_not_serving_exits_1_and_serving_exits_0() -> None:
    with grpc_server({"": SERVING, "shop.Cart": NOT_SERVING}) as port:
        bad = _agent("check", "grpc", f"127.0.0.1:{port}", "--plaintext", "--service", "shop.Cart")
        good = _agent("check", "grpc", f"127.0.0.1:{port}", "--plaintext", "--json")
    assert bad.returncode == 1, bad.stderr
    assert "grpc_not_serving" in bad.stdout
    assert "health of shop.Cart: NOT_SERVING" in bad.stdout
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["grpc"]["serving_status"] == "SERVING"


def test_grpc_tls_with_ca_file_exits_0(pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(pki.ca_pem)
    with grpc_server(tls=pki.leaf("grpc.test")) as port:
        proc = _agent(
            "check", "grpc", f"grpc.test:{port}", "--ca", str(ca), "--resolve", "grpc.test:127.0.0.1"
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout and "SERVING" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "tcp", "127.0.0.1"], "a tcp check needs host:port"),
        (["check", "grpc", "localhost"], "a grpc check needs host:port"),
        (["check", "icmp", "127.0.0.1", "--count", "0"], "--count 0: must be 1..100"),
        (["check", "dns", "x.test", "--dnssec", "--trust-anchor", "/nonexistent"], "cannot read"),
    ],
)
def test_protocol_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = _agent(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_trust_anchor_that_is_not_ds_or_dnskey_exits_2(tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.txt"
    anchor.write_text("example. 60 IN A 127.0.0.1\n")
    proc = _agent("check", "dns", "example", "--dnssec", "--trust-anchor", str(anchor))
    assert proc.returncode == 2
    assert "only DS and DNSKEY records anchor trust" in proc.stderr


@contextlib.contextmanager
def _signed_dns(tmp_path: Path) -> Iterator[tuple[SignedDnsServer, list[str]]]:
    """The test's signed zones served on loopback, and the check flags that validate against them."""
    zones = make_zones()
    anchor = tmp_path / "anchor.txt"
    anchor.write_text(zones.trust_anchor())
    server = SignedDnsServer(zones.zones)
    try:
        yield (
            server,
            ["--dnssec", "--trust-anchor", str(anchor), "--dns-server", server.address, "--ip-version", "4"],
        )
    finally:
        server.close()


def test_dnssec_secure_exits_0_and_bogus_exits_1(tmp_path: Path) -> None:
    with _signed_dns(tmp_path) as (_, args):
        good = _agent("check", "dns", "www.secure.test", *args)
        bad = _agent("check", "dns", "bogus.secure.test", *args, "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "dnssec: secure (chain test. -> secure.test.; resolver AD bit set)" in good.stdout
    assert bad.returncode == 1
    result = json.loads(bad.stdout)
    assert result["failure_class"] == "DNS_BOGUS"
    assert result["dns"]["dnssec"] == "bogus"


def test_dnssec_nxdomain_proven_exits_1_with_dnssec_secure_in_the_json(tmp_path: Path) -> None:
    with _signed_dns(tmp_path) as (server, args):
        proven = _agent("check", "dns", "missing.secure.test", *args, "--json")
        server.lies[dns.name.from_text("www.secure.test")] = "nxdomain"
        forged = _agent("check", "dns", "www.secure.test", *args, "--json")
    assert proven.returncode == 1, proven.stdout + proven.stderr
    result = json.loads(proven.stdout)
    assert result["failure_class"] == "DNS_NXDOMAIN"
    assert result["dns"]["dnssec"] == "secure"
    assert result["dns"]["dnssec_chain"] == ["test.", "secure.test."]
    assert forged.returncode == 1
    result = json.loads(forged.stdout)
    assert result["failure_class"] == "DNS_BOGUS"
    assert "NXDOMAIN not proven" in result["error"]


@pytest.mark.parametrize(
    ("check", "key", "reason"),
    [
        ({"probe": "tcp", "target": "db.internal"}, "checks[0].target", "a tcp check needs host:port"),
        ({"probe": "grpc", "target": "api"}, "checks[0].target", "a grpc check needs host:port"),
        ({"probe": "tcp", "target": "a:1", "tcp": {"expect": "(["}}, "checks[0].tcp.expect", "bad regex"),
        ({"probe": "icmp", "target": "h", "icmp": {"count": 1000}}, "checks[0].icmp.count", "at most 100"),
        (
            {"probe": "dns", "target": "h", "dns": {"dnssec": True, "trust_anchor": "x. 1 IN A 1.2.3.4"}},
            "checks[0].dns.trust_anchor",
            "only DS and DNSKEY",
        ),
    ],
)
def test_bad_protocol_options_in_a_config_name_the_key(
    check: dict[str, object], key: str, reason: str
) -> None:
    from probe_agent.config import config_from_mapping
    from probe_agent.errors import ConfigError

    raw = {"agent_id": "a", "region": "r", "insecure": True, "checks": [{"id": "c", **check}]}
    with pytest.raises(ConfigError) as info:
        config_from_mapping(raw, "agent.yaml")
    assert info.value.key == key
    assert reason in info.value.reason
