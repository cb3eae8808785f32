"""dns probe through a local DNS server and the system resolver."""

from __future__ import annotations

from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.conftest import run_check
from tests.probe_agent.probes.servers import DnsServer


def test_answer_from_configured_server(dns_server: DnsServer) -> None:
    result = run_check("dns", "ok.test", dns_server=dns_server.address, ip_version="4")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert list(result.dns.addresses) == ["127.0.0.1"]
    assert (result.dns.rcode, result.dns.resolver) == ("NOERROR", dns_server.address)
    assert result.timings.dns_ms > 0 and not result.failure_host


def test_nxdomain(dns_server: DnsServer) -> None:
    result = run_check("dns", "https://missing.test:8443/x", dns_server=dns_server.address)
    assert result.failure_class == FailureClass.DNS_NXDOMAIN
    assert (result.dns.rcode, result.failure_host) == ("NXDOMAIN", "missing.test")


def test_silent_server_times_out() -> None:
    server = DnsServer({}, silent=True)
    try:
        result = run_check("dns", "ok.test", timeout_s=0.5, dns_server=server.address)
    finally:
        server.close()
    assert result.failure_class == FailureClass.DNS_TIMEOUT
    assert result.failure_host == "ok.test"


def test_system_resolver() -> None:
    result = run_check("dns", "localhost", ip_version="4")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert "127.0.0.1" in result.dns.addresses and result.dns.resolver == "system"
