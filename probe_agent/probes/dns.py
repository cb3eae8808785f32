"""dns probe: resolve the target host through the check's resolver (or the system's).

The target may be a bare host, host:port or a URL. The rcode is reported when a DNS server
is configured (dnspython talks to it directly); the system resolver only says found or not.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms, is_ip, system_resolve
from probe_agent.probes.dns_client import query_addresses
from probe_agent.probes.failures import ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

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
