"""DNSSEC: zones signed by the test, served on loopback; the agent validates from its trust anchor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.conftest import run_check
from tests.probe_agent.probes.dnssec_zones import SignedDnsServer, Zones, make_zones


@pytest.fixture(scope="module")
def zones() -> Zones:
    return make_zones()


@pytest.fixture
def server(zones: Zones) -> Iterator[SignedDnsServer]:
    srv = SignedDnsServer(zones.zones)
    yield srv
    srv.close()


def _check(server: SignedDnsServer, name: str, anchor: str = "", **dns_opts: object) -> object:
    return run_check(
        "dns", name, dns_server=server.address, ip_version="4",
        dns={"dnssec": True, "trust_anchor": anchor, **dns_opts},
    )  # fmt: skip


def test_signed_delegated_zone_is_secure_with_the_chain_walked(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "www.secure.test", zones.trust_anchor())
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.dns.dnssec == "secure"
    assert list(result.dns.dnssec_chain) == ["test.", "secure.test."]
    assert result.dns.addresses == ["127.0.0.1"]
    assert result.dns.authenticated_data
    assert ("secure.test.", "DS") in server.queries


def test_a_dnskey_anchor_works_like_a_ds_anchor(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "www.test", zones.dnskey_anchor())
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert list(result.dns.dnssec_chain) == ["test."]


def test_tampered_signature_is_dns_bogus(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "bogus.secure.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert result.dns.dnssec == "bogus"
    assert "does not validate" in result.error
    assert result.dns.authenticated_data, "the resolver's AD bit is recorded, not believed"
    assert result.dns.addresses == ["127.0.0.2"]


def test_unsigned_zone_proven_by_nsec_is_dns_insecure(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "www.plain.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_INSECURE
    assert result.dns.dnssec == "insecure"
    assert "plain.test. is an unsigned zone" in result.error
    assert not result.dns.authenticated_data


def test_wrong_anchor_is_bogus(server: SignedDnsServer) -> None:
    other = make_zones()
    result = _check(server, "www.secure.test", other.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert "no DNSKEY of test. matches the trust anchor" in result.error


def test_default_root_anchor_cannot_reach_a_private_tree(server: SignedDnsServer) -> None:
    result = _check(server, "www.secure.test")
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert result.dns.dnssec == "bogus"


def test_nxdomain_stays_dns_nxdomain(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "missing.secure.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN
    assert result.dns.rcode == "NXDOMAIN"


def test_without_dnssec_the_probe_is_unchanged(server: SignedDnsServer) -> None:
    result = run_check("dns", "www.plain.test", dns_server=server.address, ip_version="4")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.dns.dnssec == ""
    assert result.dns.addresses == ["127.0.0.3"]


def test_bad_trust_anchor_in_a_spec_is_a_result(server: SignedDnsServer) -> None:
    result = _check(server, "www.test", "not a record")
    assert result.failure_class == FailureClass.INTERNAL
    assert "dns.trust_anchor" in result.error


def test_validated_keys_are_reused_by_the_next_probe_answers_are_not(
    server: SignedDnsServer, zones: Zones
) -> None:
    first = _check(server, "www.secure.test", zones.trust_anchor())
    walked = [q for q in server.queries if q[1] in ("DNSKEY", "DS")]
    server.queries.clear()
    second = _check(server, "www.secure.test", zones.trust_anchor())
    assert first.dns.dnssec == second.dns.dnssec == "secure"
    assert list(second.dns.dnssec_chain) == ["test.", "secure.test."]
    assert walked and not [q for q in server.queries if q[1] in ("DNSKEY", "DS")]
    bogus = _check(server, "bogus.secure.test", zones.trust_anchor())
    assert bogus.failure_class == FailureClass.DNS_BOGUS, "cached keys, but the answer's signature is checked"
