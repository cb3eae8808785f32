"""tls probe: handshake with SNI to host:port and report the presented chain and its verdict.

The chain is recorded even when verification fails (see tlsinspect for how, and for the
order in which the specific failure class is chosen). ALPN offers h2 and http/1.1 so the
server's choice is visible. `tls.insecure_skip_verify` records the verdict without failing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

from probe_agent.probes import netio
from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tlsinspect import ChainReport, presented_chain_der
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

TLS_PROBE_ALPN = ("h2", "http/1.1")
DEFAULT_PORT = 443


def parse_target(target: str, default_port: int | None = DEFAULT_PORT) -> tuple[str, int]:
    """host:port, [v6]:port, a bare host (port `default_port`; None: the port is required) or a URL."""
    text = target.strip()
    try:
        parts = urlsplit(text if "://" in text else "//" + text)
        host, port = parts.hostname or "", parts.port or default_port
    except ValueError as exc:
        raise ProbeFailure(FailureClass.INTERNAL, f"bad target {target!r}: {exc}") from exc
    if not host or port is None:
        raise ProbeFailure(FailureClass.INTERNAL, f"bad target {target!r}: expected host:port")
    return host, port


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host, port = parse_target(spec.target)
    server_name = spec.tls.server_name or host
    result.failure_host = host  # cleared below on success; kept if the deadline interrupts
    sock = await open_socket(host, port, spec, ctx, result)
    _, writer, report = await start_tls(sock, ctx, spec, result, server_name=server_name, alpn=TLS_PROBE_ALPN)
    writer.transport.abort()
    result.failure_host = ""
    fail_unless_trusted(result, report, spec, host)


async def resolve_timed(
    host: str, port: int, spec: CheckSpec, ctx: ProbeContext, result: ProbeResult
) -> list[str]:
    """The `dns` phase of a probe: host's addresses through the check's resolver, recorded in result."""
    set_phase("dns")
    start = time.perf_counter()
    addresses = await ctx.resolve(host, port, spec)
    result.dns.addresses[:] = addresses
    result.dns.resolver = ctx.resolver_label(host, spec)
    result.timings.dns_ms = elapsed_ms(start)
    return addresses


async def open_socket(
    host: str, port: int, spec: CheckSpec, ctx: ProbeContext, result: ProbeResult
) -> socket.socket:
    """Resolve host through the check's resolver, then connect (happy eyeballs); both phases timed."""
    addresses = await resolve_timed(host, port, spec, ctx, result)
    set_phase("connect")
    start = time.perf_counter()
    sock = await netio.connect_happy(addresses, port)
    result.timings.connect_ms = elapsed_ms(start)
    return sock


async def start_tls(
    sock: socket.socket,
    ctx: ProbeContext,
    spec: CheckSpec,
    result: ProbeResult,
    *,
    server_name: str,
    alpn: tuple[str, ...],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ChainReport]:
    """Handshake on a connected socket (any chain accepted), then judge the presented chain into result.tls."""
    set_phase("tls")
    t = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=ctx.handshake_context(alpn), server_hostname=server_name
        )
    except BaseException:
        sock.close()
        raise
    try:
        result.timings.tls_ms = elapsed_ms(t)
        ssl_object = writer.get_extra_info("ssl_object")
        report = ctx.inspector.inspect(presented_chain_der(ssl_object), server_name, spec.tls.ca_pem)
        result.tls.CopyFrom(netio.tls_info(ssl_object, server_name, report))
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer, report


def fail_unless_trusted(result: ProbeResult, report: ChainReport, spec: CheckSpec, host: str) -> bool:
    """Fail the result with the chain's class unless it verified (or the check skips verification)."""
    if report.verified or spec.tls.insecure_skip_verify:
        return True
    fail(result, report.verify_class, report.verify_error, host)
    return False
