"""dns probe: resolve the target host through the check's resolver (or the system's).

The target may be a bare host, host:port or a URL. The rcode is reported when a DNS server
is configured (dnspython talks to it directly); the system resolver only says found or not.

With DNSSEC the agent validates what the resolver says (probe_agent.probes.dnssec): an answer's
chain of trust, and for a negative answer its NSEC/NSEC3 proof. NXDOMAIN proven (or from a
proven unsigned zone) stays `dns_nxdomain`, with `dns.dnssec` secure or insecure; NXDOMAIN or
an empty answer whose proof fails is `dns_bogus`.
"""

from __future__ import annotations

import functools
import time
from urllib.parse import urlsplit

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms, is_ip, system_resolve
from probe_agent.probes.dns_client import dnssec_query, query_addresses, system_nameserver
from probe_agent.probes.dnssec import (
    BOGUS,
    INSECURE,
    ROOT_TRUST_ANCHOR,
    SECURE,
    Validator,
    Verdict,
    parse_trust_anchor,
)
from probe_agent.probes.failures import ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_SEVERITY = {SECURE: 0, INSECURE: 1, BOGUS: 2}
_Asked = list[tuple[dns.rdatatype.RdataType, dns.message.Message]]  # (type asked, response)
_RCODE_BY_CLASS = {FailureClass.DNS_NXDOMAIN: "NXDOMAIN", FailureClass.DNS_TIMEOUT: "TIMEOUT"}


def target_host(target: str) -> str:
    text = target.strip()
    try:
        host = urlsplit(text if "://" in text else "//" + text).hostname
    except ValueError:
        host = None
    if not host:
        raise ProbeFailure(FailureClass.INTERNAL, f"bad dns target {target!r}: expected a host name")
    return host


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host = target_host(spec.target)
    if spec.dns.dnssec:
        await _probe_dnssec(spec, ctx, result, host)
        return
    server = ctx.dns_server_for(spec)
    result.dns.resolver = server or "system"
    result.failure_host = host
    set_phase("dns")
    start = time.perf_counter()
    try:
        if is_ip(host):
            addresses = [host]
        elif server:
            addresses = await query_addresses(host, server, spec.ip_version)
        else:
            addresses = await system_resolve(host, 0, spec.ip_version)
    except (ProbeFailure, OSError) as exc:
        failure_class, message = classify(exc, "dns")
        result.timings.dns_ms = elapsed_ms(start)
        result.dns.rcode = _RCODE_BY_CLASS.get(failure_class, "ERROR")
        fail(result, failure_class, message, host)
        return
    result.timings.dns_ms = elapsed_ms(start)
    result.failure_host = ""
    result.dns.addresses[:] = addresses
    result.dns.rcode = "NOERROR"


async def _probe_dnssec(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult, host: str) -> None:
    """Ask for the addresses with signatures, then judge the chain of trust from the anchor."""
    try:
        anchors = parse_trust_anchor(spec.dns.trust_anchor or ROOT_TRUST_ANCHOR)
    except ValueError as exc:
        raise ProbeFailure(FailureClass.INTERNAL, f"dns.trust_anchor: {exc}") from exc
    server = ctx.dns_server_for(spec) or system_nameserver()
    result.dns.resolver = server
    result.failure_host = host
    set_phase("dns")
    start = time.perf_counter()
    query = functools.partial(dnssec_query, server)
    name = dns.name.from_text(host)
    rdtypes = {"4": ["A"], "6": ["AAAA"]}.get(spec.ip_version, ["A", "AAAA"])
    asked = [(rdtype, await query(name, rdtype)) for rdtype in map(dns.rdatatype.from_text, rdtypes)]
    result.timings.dns_ms = elapsed_ms(start)
    rcodes = {dns.rcode.to_text(r.rcode()) for _, r in asked}
    result.dns.rcode = "NOERROR" if "NOERROR" in rcodes else sorted(rcodes)[0]
    validator = Validator(query, anchors, cache_scope=(server, spec.dns.trust_anchor))
    if result.dns.rcode == "NXDOMAIN":
        await _judge_nxdomain(result, validator, name, asked, server)
        return
    answered = [r for _, r in asked if r.answer]
    result.dns.addresses[:] = [
        rdata.to_text()
        for r in answered
        for rrset in r.answer
        if rrset.rdtype in _ADDRESS_TYPES
        for rdata in rrset
    ]
    result.dns.authenticated_data = _authenticated(answered)
    if not result.dns.addresses:
        await _judge_no_address(result, validator, name, asked, server)
        return
    verdict = _record(result, [await validator.validate(r) for r in answered])
    if verdict.state == BOGUS:
        fail(result, FailureClass.DNS_BOGUS, f"{host}: DNSSEC bogus: {verdict.reason}", host)
    elif verdict.state == INSECURE:
        fail(result, FailureClass.DNS_INSECURE, f"{host}: DNSSEC required but {verdict.reason}", host)
    else:
        result.failure_host = ""


async def _judge_nxdomain(
    result: ProbeResult, validator: Validator, name: dns.name.Name, asked: _Asked, server: str
) -> None:
    """NXDOMAIN is believed only as far as its NSEC/NSEC3 proof validates."""
    host = result.failure_host
    denied = [(rdtype, r) for rdtype, r in asked if r.rcode() == dns.rcode.NXDOMAIN]
    result.dns.authenticated_data = _authenticated([r for _, r in denied])
    verdict = _record(result, [await validator.validate_denial(r, name, rdtype) for rdtype, r in denied])
    if verdict.state == BOGUS:
        fail(result, FailureClass.DNS_BOGUS, f"{host}: NXDOMAIN not proven: {verdict.reason}", host)
        return
    # An unsigned zone's NXDOMAIN stays dns_nxdomain rather than dns_insecure: the name's
    # absence is what the operator acts on; the insecure verdict is recorded beside it.
    fail(result, FailureClass.DNS_NXDOMAIN, f"{host}: NXDOMAIN from {server}{_note(verdict)}", host)


async def _judge_no_address(
    result: ProbeResult, validator: Validator, name: dns.name.Name, asked: _Asked, server: str
) -> None:
    """No address at all: when every answer is empty (NOERROR), its no-data proofs are judged."""
    host = result.failure_host
    verdict = None
    if all(r.rcode() == dns.rcode.NOERROR and not r.answer for _, r in asked):
        verdict = _record(result, [await validator.validate_denial(r, name, rdtype) for rdtype, r in asked])
        if verdict.state == BOGUS:
            fail(result, FailureClass.DNS_BOGUS, f"{host}: no-data not proven: {verdict.reason}", host)
            return
    message = f"{host}: no address records from {server} ({result.dns.rcode}){_note(verdict)}"
    fail(result, FailureClass.DNS_ERROR, message, host)


def _record(result: ProbeResult, verdicts: list[Verdict]) -> Verdict:
    """The worst of the verdicts, recorded in the result."""
    verdict = max(verdicts, key=lambda v: _SEVERITY[v.state])
    result.dns.dnssec = verdict.state
    result.dns.dnssec_chain[:] = verdict.chain
    return verdict


def _note(verdict: Verdict | None) -> str:
    if verdict is None:
        return ""
    if verdict.state == INSECURE:
        return f" (DNSSEC insecure: {verdict.reason})"
    return " (DNSSEC: proven)"


def _authenticated(responses: list[dns.message.Message]) -> bool:
    return bool(responses) and all(r.flags & dns.flags.AD for r in responses)
