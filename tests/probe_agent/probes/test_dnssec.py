"""DNSSEC: zones signed by the test, served on loopback; the agent validates from its trust anchor.

Answers and denials of existence (NXDOMAIN, no data) alike: the server proves a denial with
NSEC or NSEC3 as an authoritative server does, and `SignedDnsServer.lies` makes it lie."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_agent.probes.dns_client import dnssec_query
from probe_agent.probes.dnssec import Validator, Verdict, parse_trust_anchor
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


# Denial of existence: NXDOMAIN and no-data, proven (or not) by NSEC and NSEC3.


def _lie(server: SignedDnsServer, name: str, how: str) -> None:
    server.lies[dns.name.from_text(name)] = how


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("missing.secure.test", ["test.", "secure.test."]),  # NSEC, delegated zone
        ("missing.test", ["test."]),  # NSEC, the anchored zone itself
        ("zzz.test", ["test."]),  # NSEC: after the last name, covered by the NSEC wrapping to the apex
        ("missing.hashed.test", ["test.", "hashed.test."]),  # NSEC3: the next closer name is the name
        ("a.b.hashed.test", ["test.", "hashed.test."]),  # NSEC3: the next closer name is b.hashed.test.
        ("a.www.hashed.test", ["test.", "hashed.test."]),  # NSEC3: the closest encloser is www
    ],
)
def test_proven_nxdomain_is_dns_nxdomain_and_secure(
    server: SignedDnsServer, zones: Zones, name: str, chain: list[str]
) -> None:
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN, result.error
    assert result.dns.rcode == "NXDOMAIN"
    assert result.dns.dnssec == "secure"
    assert list(result.dns.dnssec_chain) == chain
    assert "DNSSEC: proven" in result.error


def test_nsec3_ring_wraps_around_past_the_last_hash(server: SignedDnsServer, zones: Zones) -> None:
    hashed = next(z for z in zones.zones if z.origin == dns.name.from_text("hashed.test"))
    owners = [
        n.labels[0].decode().upper()
        for n, node in hashed.nodes.items()
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3)
    ]
    candidates = (f"n{i}.hashed.test." for i in range(10_000))
    name = next(n for n in candidates if dns.dnssec.nsec3_hash(n, b"", 0, 1) > max(owners))
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN, result.error
    assert result.dns.dnssec == "secure"


def test_nxdomain_at_the_end_of_a_cname_is_proven_for_the_target(
    server: SignedDnsServer, zones: Zones
) -> None:
    result = _check(server, "alias.secure.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN, result.error
    assert result.dns.dnssec == "secure"
    assert ("alias.secure.test.", "A") in server.queries
    _lie(server, "alias.secure.test", "strip")
    stripped = _check(server, "alias.secure.test", zones.trust_anchor())
    assert "NXDOMAIN not proven: missing.secure.test.: signed zone" in stripped.error, "the target is denied"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("www.secure.test", "no NSEC covers www.secure.test. (an NSEC owned by it says it exists)"),
        ("www.hashed.test", "an NSEC3 matching www.hashed.test. says it exists"),
    ],
)
def test_forged_nxdomain_for_a_name_that_exists_is_dns_bogus(
    server: SignedDnsServer, zones: Zones, name: str, why: str
) -> None:
    _lie(server, name, "nxdomain")
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert result.dns.dnssec == "bogus"
    assert result.dns.rcode == "NXDOMAIN"
    assert f"{name}: NXDOMAIN not proven: NXDOMAIN: {why}" in result.error


@pytest.mark.parametrize("name", ["missing.secure.test", "missing.hashed.test", "missing.test"])
def test_nxdomain_stripped_of_its_proof_in_a_signed_zone_is_dns_bogus(
    server: SignedDnsServer, zones: Zones, name: str
) -> None:
    _lie(server, name, "strip")
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert f"NXDOMAIN not proven: {name}.: signed zone, no proof of non-existence" in result.error


def test_nxdomain_with_its_proof_unsigned_is_dns_bogus(server: SignedDnsServer, zones: Zones) -> None:
    _lie(server, "missing.hashed.test", "unsign")
    result = _check(server, "missing.hashed.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert "NSEC3 is not signed (" in result.error
    assert "its zone hashed.test. has a DS" in result.error


@pytest.mark.parametrize("name", ["missing.secure.test", "missing.hashed.test"])
def test_nxdomain_with_a_tampered_proof_signature_is_dns_bogus(
    server: SignedDnsServer, zones: Zones, name: str
) -> None:
    _lie(server, name, "tamper")
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert "NXDOMAIN not proven" in result.error
    assert "does not validate" in result.error
    assert "NSEC" in result.error


def test_nxdomain_from_a_zone_whose_nsec_signatures_expired_is_dns_bogus(
    server: SignedDnsServer, zones: Zones
) -> None:
    result = _check(server, "missing.stale.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert "NXDOMAIN not proven: stale.test. NSEC: signature by stale.test. does not validate" in result.error
    assert "signature expired at" in result.error


def test_nxdomain_in_an_unsigned_zone_is_dns_nxdomain_and_insecure(
    server: SignedDnsServer, zones: Zones
) -> None:
    result = _check(server, "missing.plain.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN
    assert result.dns.dnssec == "insecure"
    assert "DNSSEC insecure: plain.test. is an unsigned zone" in result.error


def test_nsec3_over_150_iterations_is_insecure_and_says_so(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "missing.slow.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN
    assert result.dns.dnssec == "insecure"
    assert "NSEC3 of slow.test. uses 151 iterations, over 150 (RFC 9276" in result.error


def test_opt_out_nsec3_covering_the_name_is_insecure(server: SignedDnsServer, zones: Zones) -> None:
    result = _check(server, "missing.optout.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_NXDOMAIN
    assert result.dns.dnssec == "insecure"
    assert "covered by an opt-out NSEC3 of optout.test." in result.error


@pytest.mark.parametrize("name", ["text.secure.test", "text.hashed.test"])
def test_proven_no_data_stays_dns_error_with_dnssec_secure(
    server: SignedDnsServer, zones: Zones, name: str
) -> None:
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_ERROR, result.error
    assert result.dns.rcode == "NOERROR"
    assert result.dns.dnssec == "secure"
    assert "no address records" in result.error


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("www.secure.test", "the NSEC of www.secure.test. lists A: the data exists"),
        ("www.hashed.test", "the NSEC3 of www.hashed.test. lists A: the data exists"),
    ],
)
def test_forged_no_data_is_dns_bogus(server: SignedDnsServer, zones: Zones, name: str, why: str) -> None:
    _lie(server, name, "nodata")
    result = _check(server, name, zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert f"{name}: no-data not proven: {why}" in result.error


def test_no_data_stripped_of_its_proof_is_dns_bogus(server: SignedDnsServer, zones: Zones) -> None:
    _lie(server, "text.secure.test", "strip")
    result = _check(server, "text.secure.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_BOGUS
    assert "no-data not proven: text.secure.test.: signed zone, no proof of non-existence" in result.error


def test_no_data_in_an_unsigned_zone_stays_dns_error_and_insecure(
    server: SignedDnsServer, zones: Zones
) -> None:
    result = run_check(
        "dns", "www.plain.test", dns_server=server.address, ip_version="6",
        dns={"dnssec": True, "trust_anchor": zones.trust_anchor()},
    )  # fmt: skip
    assert result.failure_class == FailureClass.DNS_ERROR
    assert result.dns.dnssec == "insecure"


def _denial(server: SignedDnsServer, name: str) -> dns.message.Message:
    return dns.message.from_wire(server.answer(dns.message.make_query(name, "A", want_dnssec=True)))


def _validate(server: SignedDnsServer, zones: Zones, response: dns.message.Message, name: str) -> Verdict:
    anchors = parse_trust_anchor(zones.trust_anchor())
    validator = Validator(functools.partial(dnssec_query, server.address), anchors)
    return asyncio.run(validator.validate_denial(response, dns.name.from_text(name), dns.rdatatype.A))


@pytest.mark.parametrize(
    ("name", "dropped", "why"),
    [
        ("missing.secure.test.", "secure.test.", "NXDOMAIN: no NSEC covers the wildcard *.secure.test."),
        ("missing.secure.test.", "bogus.secure.test.", "NXDOMAIN: no NSEC covers missing.secure.test."),
        (
            "missing.hashed.test.",
            "9ebi4fqp1kamphr5lvq9t8llvfmvb84s.hashed.test.",  # matches the apex, the closest encloser
            "NXDOMAIN: no NSEC3 matches a closest encloser of missing.hashed.test.",
        ),
        (
            "missing.hashed.test.",
            "4drucmil7i1v7phuusp3sse6oo1rcb2q.hashed.test.",  # covers the name
            "NXDOMAIN: no NSEC3 covers missing.hashed.test., the next closer name",
        ),
    ],
)
def test_every_part_of_an_nxdomain_proof_is_required(
    shared_server: SignedDnsServer, zones: Zones, name: str, dropped: str, why: str
) -> None:
    response = _denial(shared_server, name)
    owners = {rrset.name.to_text() for rrset in response.authority}
    assert dropped in owners, f"the server's proof of {name} changed: {owners}"
    response.authority = [r for r in response.authority if r.name != dns.name.from_text(dropped)]
    verdict = _validate(shared_server, zones, response, name)
    assert verdict.state == "bogus"
    assert why in verdict.reason


def test_nsec3_of_an_unknown_hash_algorithm_is_insecure(shared_server: SignedDnsServer, zones: Zones) -> None:
    response = _denial(shared_server, "missing.hashed.test.")
    response.authority = [r for r in response.authority if dns.rdatatype.SOA in (r.rdtype, r.covers)]
    owner = "9ebi4fqp1kamphr5lvq9t8llvfmvb84s.hashed.test."
    response.authority += zones.signed("hashed.test.", owner, dns.rdatatype.NSEC3, "2 0 0 - 0000 A")
    verdict = _validate(shared_server, zones, response, "missing.hashed.test.")
    assert verdict.state == "insecure"
    assert "NSEC3 hash algorithm 2 is unknown" in verdict.reason


@pytest.fixture(scope="module")
def shared_server(zones: Zones) -> Iterator[SignedDnsServer]:
    srv = SignedDnsServer(zones.zones)
    yield srv
    srv.close()


_DENIALS = [
    ("missing.secure.test.", "A"),
    ("missing.hashed.test.", "A"),
    ("a.b.hashed.test.", "A"),
    ("text.secure.test.", "A"),
    ("text.hashed.test.", "AAAA"),
    ("missing.optout.test.", "A"),
]


def _damaged(wire: bytes, data: st.DataObject) -> dns.message.Message | None:
    """The denial response with some bytes flipped, or rrsets of its authority section dropped,
    swapped between sections or moved to other names; None when the bytes no longer parse."""
    if data.draw(st.booleans(), label="flip bytes"):
        damaged = bytearray(wire)
        for _ in range(data.draw(st.integers(1, 4))):
            damaged[data.draw(st.integers(12, len(wire) - 1))] ^= data.draw(st.integers(1, 255))
        try:
            return dns.message.from_wire(bytes(damaged))
        except (dns.exception.DNSException, ValueError):  # refused by the client before validation
            return None
    response = dns.message.from_wire(wire)
    rrsets = response.authority
    moves = data.draw(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20), st.integers(0, 20)), max_size=4)
    )
    for move, a, b in moves:
        i, j = a % len(rrsets), b % len(rrsets)
        if move == 0 and len(rrsets) > 1:
            del rrsets[i]
        elif move == 1:
            rrsets[i], rrsets[j] = rrsets[j], rrsets[i]
        elif move == 2:
            response.answer.append(rrsets[i])
        else:
            rrsets[i] = dns.rrset.from_rdata_list(rrsets[j].name, rrsets[i].ttl, list(rrsets[i]))
    return response


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_to_a_denial_never_raises(
    shared_server: SignedDnsServer, zones: Zones, data: st.DataObject
) -> None:
    name, rdtype = data.draw(st.sampled_from(_DENIALS), label="denial")
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    response = _damaged(shared_server.answer(query), data)
    if response is None:
        return
    validator = Validator(
        functools.partial(dnssec_query, shared_server.address), parse_trust_anchor(zones.trust_anchor())
    )
    verdict = asyncio.run(
        validator.validate_denial(response, dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    )
    assert verdict.state in ("secure", "insecure", "bogus")
    assert verdict.state == "secure" or verdict.reason


def test_an_unsigned_delegation_under_opt_out_is_insecure_not_bogus(
    server: SignedDnsServer, zones: Zones
) -> None:
    """As under .com: an unsigned child has no NSEC3 of its own, only the opt-out one covering it."""
    result = _check(server, "www.legacy.optout.test", zones.trust_anchor())
    assert result.failure_class == FailureClass.DNS_INSECURE, result.error
    assert result.dns.dnssec == "insecure"
    assert "legacy.optout.test. is an unsigned zone" in result.error and "opt-out" in result.error
    assert result.dns.addresses == ["127.0.0.9"]
