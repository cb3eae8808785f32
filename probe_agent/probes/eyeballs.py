"""Connect to the first address of a host that accepts, racing them as RFC 8305 says.

aiohappyeyeballs does the racing (staggered attempts 250 ms apart, address families
interleaved); this module only turns resolved addresses into its input and tunes the socket.
When every attempt fails the error of the attempts is raised (one errno if they agree), so the
caller's classification (refused, timeout, reset) still applies.
"""

from __future__ import annotations

import socket
import time

import aiohappyeyeballs

from probe_agent.probes.base import set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

# RFC 8305's recommended "Connection Attempt Delay".
ATTEMPT_DELAY_S = 0.25


def addr_infos(addresses: list[str], port: int) -> list[aiohappyeyeballs.AddrInfoType]:
    infos: list[aiohappyeyeballs.AddrInfoType] = []
    for addr in addresses:
        if ":" in addr:
            infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (addr, port, 0, 0)))
        else:
            infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (addr, port)))
    return infos


async def connect(addresses: list[str], port: int) -> socket.socket:
    """A connected, non-blocking TCP socket to one of `addresses` (in resolver order, families interleaved)."""
    if not addresses:
        raise ProbeFailure(FailureClass.DNS_ERROR, "no address to connect to")
    sock = await aiohappyeyeballs.start_connection(
        addr_infos(addresses, port), happy_eyeballs_delay=ATTEMPT_DELAY_S, interleave=1
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def peer(sock: socket.socket) -> str:
    """ip:port of the connected peer ([v6]:port for IPv6)."""
    host, port = sock.getpeername()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def open_socket(
    host: str, port: int, spec: CheckSpec, ctx: ProbeContext, result: ProbeResult
) -> socket.socket:
    """Resolve host through the check's resolver, then connect; both phases timed into result."""
    set_phase("dns")
    start = time.perf_counter()
    addresses = await ctx.resolve(host, port, spec)
    result.dns.addresses[:] = addresses
    result.dns.resolver = ctx.resolver_label(host, spec)
    result.timings.dns_ms = elapsed_ms(start)
    set_phase("connect")
    start = time.perf_counter()
    sock = await connect(addresses, port)
    result.timings.connect_ms = elapsed_ms(start)
    return sock
