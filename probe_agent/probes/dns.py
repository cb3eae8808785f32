"""dns probe: resolve the target host through the check's resolver (or the system's).

The target may be a bare host, host:port or a URL. The rcode is reported when a DNS server
is configured (dnspython talks to it directly); the system resolver only says found or not.
"""

from __future__ import annotations

import functools
import time
from urllib.parse import urlsplit

import dns.flags
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
    parse_trust_anchor,
)
from probe_agent.probes.failures import ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_SEVERITY = {SECURE: 0, INSECURE: 1, BOGUS: 2}
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
    responses = [await query(name, dns.rdatatype.from_text(rdtype)) for rdtype in rdtypes]
    result.timings.dns_ms = elapsed_ms(start)
    rcodes = {dns.rcode.to_text(r.rcode()) for r in responses}
    result.dns.rcode = "NOERROR" if "NOERROR" in rcodes else sorted(rcodes)[0]
    if result.dns.rcode == "NXDOMAIN":
        fail(result, FailureClass.DNS_NXDOMAIN, f"{host}: NXDOMAIN from {server}", host)
        return
    answered = [r for r in responses if r.answer]
    result.dns.addresses[:] = [
        rdata.to_text()
        for r in answered
        for rrset in r.answer
        if rrset.rdtype in _ADDRESS_TYPES
        for rdata in rrset
    ]
    result.dns.authenticated_data = bool(answered) and all(r.flags & dns.flags.AD for r in answered)
    if not result.dns.addresses:
        fail(
            result,
            FailureClass.DNS_ERROR,
            f"{host}: no address records from {server} ({result.dns.rcode})",
            host,
        )
        return
    validator = Validator(query, anchors, cache_scope=(server, spec.dns.trust_anchor))
    verdicts = [await validator.validate(r) for r in answered]
    verdict = max(verdicts, key=lambda v: _SEVERITY[v.state])
    result.dns.dnssec = verdict.state
    result.dns.dnssec_chain[:] = verdict.chain
    if verdict.state == BOGUS:
        fail(result, FailureClass.DNS_BOGUS, f"{host}: DNSSEC bogus: {verdict.reason}", host)
    elif verdict.state == INSECURE:
        fail(result, FailureClass.DNS_INSECURE, f"{host}: DNSSEC required but {verdict.reason}", host)
    else:
        result.failure_host = ""
