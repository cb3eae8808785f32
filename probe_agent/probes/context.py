"""Resources shared by every probe of one agent: TLS contexts, chain verification, name resolution.

SSL contexts are built once per distinct TLS configuration and reused: building one costs
tens of milliseconds of CPU and about a megabyte that is never returned. Probes handshake with
verification off (see tlsinspect) so one context per ALPN list serves every check, whatever
its CA bundle; the check's CAs live in the chain inspector's trust stores instead.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass, field

from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tlsinspect import ChainInspector
from probenet.v1.probe_pb2 import CheckSpec, FailureClass

HTTP1_ALPN = ("http/1.1",)


@dataclass
class ProbeContext:
    dns_server: str = ""
    resolve_overrides: dict[str, str] = field(default_factory=dict)
    inspector: ChainInspector = field(default_factory=ChainInspector)
    _handshake_contexts: dict[tuple[str, ...], ssl.SSLContext] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read the system trust store now (~40 ms, once per process), not inside the first probe's timings.
        self.inspector.anchors("")

    def handshake_context(self, alpn: tuple[str, ...] = HTTP1_ALPN) -> ssl.SSLContext:
        """A client context that accepts any chain: verification is done afterwards, by tlsinspect."""
        ctx = self._handshake_contexts.get(alpn)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            # What browsers and curl still accept; an older-only server fails as tls_handshake.
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self._handshake_contexts[alpn] = ctx
        return ctx

    def dns_server_for(self, spec: CheckSpec) -> str:
        return spec.dns_server or self.dns_server

    def resolver_label(self, host: str, spec: CheckSpec) -> str:
        """Where `resolve` gets host's addresses from, for DnsInfo.resolver."""
        if spec.resolve.get(host) or self.resolve_overrides.get(host):
            return "override"
        if is_ip(host):
            return "literal"
        return self.dns_server_for(spec) or "system"

    async def resolve(self, host: str, port: int, spec: CheckSpec) -> list[str]:
        """Addresses for host, honouring --resolve overrides, the check's resolver and IP preference."""
        override = spec.resolve.get(host) or self.resolve_overrides.get(host)
        if override:
            return [override]
        if is_ip(host):
            return [host.strip("[]")]
        server = self.dns_server_for(spec)
        if server:
            from probe_agent.probes.dns_client import query_addresses

            return await query_addresses(host, server, spec.ip_version)
        return await system_resolve(host, port, spec.ip_version)


async def system_resolve(host: str, port: int, ip_version: str = "") -> list[str]:
    family = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(ip_version, socket.AF_UNSPEC)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addrs:
        raise ProbeFailure(FailureClass.DNS_NXDOMAIN, f"no address for {host}", host)
    return addrs


def is_ip(host: str) -> bool:
    host = host.strip("[]")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
