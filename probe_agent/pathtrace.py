"""One-shot path traces for the collector: UDP or TCP traceroute without root (Linux IP_RECVERR).

Each probe is a UDP datagram, or a TCP SYN to the check's port (the path its own traffic
takes, through firewalls that drop UDP), with a small TTL on its own socket; with IP_RECVERR
the kernel queues the ICMP error a router (time exceeded) or the destination (port
unreachable) sends back on that socket's error queue, with the offender's address, so no raw
socket and no capability are needed. Over TCP the destination answers with a SYN-ACK or RST. TTLs are probed in windows of `WINDOW` at once, 3
probes each, until the destination answers or `MAX_HOPS`; the whole trace is bounded by
`BUDGET_S`, and a host is traced at most once per `MIN_INTERVAL_S` (the collector may ask
again on every widening of an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from probe_agent.probes.context import ProbeContext
from probenet.v1.probe_pb2 import CheckSpec
from probenet.v1.stream_pb2 import PathHop, PathTrace, PathTraceRequest

log = logging.getLogger(__name__)

MAX_HOPS = 30
PROBES_PER_HOP = 3
WINDOW = 6  # TTLs in flight at once
WINDOW_WAIT_S = 1.0
BUDGET_S = 10.0
MIN_INTERVAL_S = 300.0
BASE_PORT = 33434  # traceroute's: nothing listens there, so the destination answers port unreachable
# Linux <linux/in.h>, <linux/in6.h>, <linux/errqueue.h>: not all exported by Python's socket module.
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXT_ERR = struct.Struct("=IBBBBII")  # ee_errno, origin, type, code, pad, info, data
_TIME_EXCEEDED: dict[int, int] = {socket.AF_INET: 11, socket.AF_INET6: 3}
_UNREACHABLE: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 1}


@dataclass
class _Probe:
    ttl: int
    sock: socket.socket
    sent_at: float
    answer: asyncio.Future[tuple[str, float, bool]]  # who answered, rtt ms, the path ends there


@dataclass
class PathTracer:
    """Answers PathTraceRequests, at most one trace per host per MIN_INTERVAL_S."""

    ctx: ProbeContext
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)

    async def answer(self, request: PathTraceRequest) -> PathTrace | None:
        """The trace, or None when this host was traced too recently (nothing is sent then)."""
        now = self.clock()
        last = self._last.get(request.host)
        if last is not None and now - last < MIN_INTERVAL_S:
            log.info("path trace to %s skipped: one was made %.0f s ago", request.host, now - last)
            return None
        self._last[request.host] = now
        trace = PathTrace(
            event_id=request.event_id,
            check_id=request.check_id,
            host=request.host,
            method="tcp" if request.tcp_port else "udp",
        )
        trace.started_at.GetCurrentTime()
        try:
            async with asyncio.timeout(BUDGET_S):
                spec = CheckSpec(dns_server=request.dns_server)
                trace.address = (await self.ctx.resolve(request.host, 0, spec))[0]
                hops, trace.reached = await trace_path(trace.address, tcp_port=request.tcp_port)
                trace.hops.extend(hops)
        except TimeoutError:
            trace.error = f"trace not finished within {BUDGET_S:g}s"
        except Exception as exc:  # a failing trace is data for the collector, never an agent error
            trace.error = f"{type(exc).__name__}: {exc}"
        return trace


async def trace_path(address: str, max_hops: int = MAX_HOPS, tcp_port: int = 0) -> tuple[list[PathHop], bool]:
    """Hops to `address` by TTL, up to the hop where the path ends or max_hops; True when that
    hop is the destination itself. UDP probes, or TCP SYNs to `tcp_port` when it is set."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    hops: list[PathHop] = []
    for first in range(1, max_hops + 1, WINDOW):
        ttls = range(first, min(first + WINDOW, max_hops + 1))
        window = await _probe_window(address, family, ttls, tcp_port)
        for ttl in ttls:
            hop, final = _hop(ttl, window[ttl])
            hops.append(hop)
            if final:
                return hops, hop.address == address
    return hops, False


def _hop(ttl: int, answers: list[tuple[str, float, bool] | None]) -> tuple[PathHop, bool]:
    got = [a for a in answers if a is not None]
    hop = PathHop(ttl=ttl, sent=len(answers), lost=len(answers) - len(got))
    if got:
        hop.address = got[0][0]
        hop.rtt_ms.extend(round(a[1], 3) for a in got)
    return hop, any(a[2] for a in got)


async def _probe_window(
    address: str, family: int, ttls: range, tcp_port: int
) -> dict[int, list[tuple[str, float, bool] | None]]:
    loop = asyncio.get_running_loop()
    probes: list[_Probe] = []
    try:
        for ttl in ttls:
            for n in range(PROBES_PER_HOP):
                if tcp_port:
                    probes.append(_send_tcp(loop, address, family, ttl, tcp_port))
                else:
                    probes.append(_send_udp(loop, address, family, ttl, BASE_PORT + ttl * PROBES_PER_HOP + n))
        await asyncio.wait([p.answer for p in probes], timeout=WINDOW_WAIT_S)
    finally:
        for p in probes:
            loop.remove_reader(p.sock.fileno())
            loop.remove_writer(p.sock.fileno())
            p.sock.close()
    results: dict[int, list[tuple[str, float, bool] | None]] = {ttl: [] for ttl in ttls}
    for p in probes:
        done = p.answer.done() and not p.answer.cancelled()
        results[p.ttl].append(p.answer.result() if done else None)
        p.answer.cancel()
    return results


def _socket(family: int, kind: int, ttl: int) -> socket.socket:
    """A non-blocking socket with this TTL whose ICMP errors queue up for MSG_ERRQUEUE."""
    sock = socket.socket(family, kind)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    except BaseException:
        sock.close()
        raise
    return sock


def _send_udp(loop: asyncio.AbstractEventLoop, address: str, family: int, ttl: int, port: int) -> _Probe:
    sock = _socket(family, socket.SOCK_DGRAM, ttl)
    try:
        sock.connect((address, port))
        probe = _Probe(ttl, sock, time.perf_counter(), loop.create_future())
        loop.add_reader(sock.fileno(), _on_udp_ready, probe, family)
        with contextlib.suppress(OSError):  # an immediate local error is read from the queue
            sock.send(b"probenet path trace")
    except BaseException:
        sock.close()
        raise
    return probe


def _send_tcp(loop: asyncio.AbstractEventLoop, address: str, family: int, ttl: int, port: int) -> _Probe:
    """A SYN with this TTL: a router's time exceeded aborts the connect (Linux queues the ICMP
    error of a socket in SYN_SENT), the destination's SYN-ACK or RST completes it."""
    sock = _socket(family, socket.SOCK_STREAM, ttl)
    try:
        probe = _Probe(ttl, sock, time.perf_counter(), loop.create_future())
        sock.connect_ex((address, port))  # EINPROGRESS; an immediate error shows when writable
        loop.add_writer(sock.fileno(), _on_tcp_ready, loop, probe, family, address)
    except BaseException:
        sock.close()
        raise
    return probe


def _on_udp_ready(probe: _Probe, family: int) -> None:
    """An ICMP error on the error queue (or a reply: the destination answered on that port)."""
    if probe.answer.done():
        return
    rtt = (time.perf_counter() - probe.sent_at) * 1000.0
    icmp = _icmp_error(probe.sock, family)
    if icmp is not None:
        probe.answer.set_result((icmp[0], rtt, icmp[1]))
        return
    with contextlib.suppress(OSError):
        probe.sock.recv(512)
        probe.answer.set_result((probe.sock.getpeername()[0], rtt, True))


def _on_tcp_ready(loop: asyncio.AbstractEventLoop, probe: _Probe, family: int, address: str) -> None:
    """The connect ended: a router's ICMP error, or the destination's SYN-ACK or RST."""
    loop.remove_writer(probe.sock.fileno())
    if probe.answer.done():
        return
    rtt = (time.perf_counter() - probe.sent_at) * 1000.0
    icmp = _icmp_error(probe.sock, family)
    if icmp is not None:
        probe.answer.set_result((icmp[0], rtt, icmp[1]))
        return
    if probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (0, errno.ECONNREFUSED):
        probe.answer.set_result((address, rtt, True))


def _icmp_error(sock: socket.socket, family: int) -> tuple[str, bool] | None:
    """The ICMP error queued on the socket: (who sent it, whether the path ends there)."""
    try:
        _, ancdata, _, _ = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
    except OSError:
        return None
    for _level, kind, data in ancdata:
        if kind not in (IP_RECVERR, IPV6_RECVERR) or len(data) < _EXT_ERR.size:
            continue
        _errno, origin, icmp_type, _code, _pad, _info, _data = _EXT_ERR.unpack_from(data)
        if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            continue  # a local error (e.g. no route): nothing on the path answered
        offender = _offender(data[_EXT_ERR.size :], family)
        if icmp_type == _TIME_EXCEEDED[family]:
            return offender, False
        if icmp_type == _UNREACHABLE[family]:
            # Port unreachable comes from the destination itself; other codes (no route, filtered)
            # from a router: either way the path ends at this hop.
            return offender, True
    return None


def _offender(raw: bytes, family: int) -> str:
    """The sockaddr that follows sock_extended_err (SO_EE_OFFENDER)."""
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return ""
