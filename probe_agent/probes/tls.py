"""tls probe: handshake with SNI to host:port and report the presented chain and its verdict.

The chain is recorded even when verification fails (see tlsinspect for how, and for the
order in which the specific failure class is chosen). ALPN offers h2 and http/1.1 so the
server's choice is visible. `tls.insecure_skip_verify` records the verdict without failing.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from probe_agent.probes import netio
from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tlsinspect import presented_chain_der
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

TLS_PROBE_ALPN = ("h2", "http/1.1")
DEFAULT_PORT = 443


def parse_target(target: str) -> tuple[str, int]:
    """host:port, [v6]:port, a bare host (port 443) or an https URL."""
    text = target.strip()
    if "://" in text:
        parts = urlsplit(text)
        try:
            return parts.hostname or "", parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ProbeFailure(FailureClass.INTERNAL, f"bad target {target!r}: {exc}") from exc
    try:
        parts = urlsplit("//" + text)
        host, port = parts.hostname or "", parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ProbeFailure(FailureClass.INTERNAL, f"bad target {target!r}: expected host:port") from exc
    if not host:
        raise ProbeFailure(FailureClass.INTERNAL, f"bad target {target!r}: expected host:port")
    return host, port


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host, port = parse_target(spec.target)
    server_name = spec.tls.server_name or host
    timings = result.timings
    start = time.perf_counter()
    set_phase("dns")
    result.failure_host = host  # cleared below on success; kept if the deadline interrupts
    addresses = await ctx.resolve(host, port, spec)
    result.dns.addresses[:] = addresses
    result.dns.resolver = ctx.resolver_label(host, spec)
    timings.dns_ms = elapsed_ms(start)
    set_phase("connect")
    t = time.perf_counter()
    sock = await netio.connect_happy(addresses, port)
    timings.connect_ms = elapsed_ms(t)
    set_phase("tls")
    t = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(
            sock=sock, ssl=ctx.handshake_context(TLS_PROBE_ALPN), server_hostname=server_name
        )
    except BaseException:
        sock.close()
        raise
    try:
        timings.tls_ms = elapsed_ms(t)
        ssl_object = writer.get_extra_info("ssl_object")
        report = ctx.inspector.inspect(presented_chain_der(ssl_object), server_name, spec.tls.ca_pem)
        result.tls.CopyFrom(netio.tls_info(ssl_object, server_name, report))
    finally:
        writer.transport.abort()
    result.failure_host = ""
    if not report.verified and not spec.tls.insecure_skip_verify:
        fail(result, report.verify_class, report.verify_error, host)
