"""icmp probe: N echo requests, loss and round-trip min/avg/max/stddev.

Two kinds of socket, the first one the kernel allows:

- `dgram`: an unprivileged ping socket (SOCK_DGRAM/IPPROTO_ICMP), allowed when the agent's group
  is inside the `net.ipv4.ping_group_range` sysctl (per network namespace; it covers ICMPv6
  too). The kernel picks the echo identifier and hands this socket only its own replies.
- `raw`: a raw ICMP socket, allowed with CAP_NET_RAW. It sees every ICMP packet of the host,
  so replies are matched by identifier and sequence, and destination-unreachable errors by the
  echo header they quote.

Neither allowed is an agent error at start (`require_icmp`), not a failed result per probe.
All packets lost is `icmp_no_reply` (`icmp_unreachable` when a router said so); some loss is
a success with the loss recorded. The replies are awaited within the check's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field

from probe_agent.errors import AgentError
from probe_agent.probes.base import set_phase, timeout_s
from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tls import resolve_timed
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

DEFAULT_COUNT = 3
MAX_COUNT = 100
DEFAULT_PACKET_INTERVAL_S = 0.2
PAYLOAD_BYTES = 56  # what ping sends
# Replies are awaited until this share of the check's deadline, so the stats are reported in time.
REPLY_BUDGET = 0.9
_ECHO: dict[int, tuple[int, int]] = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # request, reply
_UNREACHABLE: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 1}
_PROTO: dict[int, int] = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
_UNREACHABLE_ERRNOS = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.EACCES)
_kinds: dict[int, str] = {}


class IcmpNotPermitted(AgentError):
    """Neither a ping socket nor a raw socket may be opened by this process."""


def socket_kind(family: int = socket.AF_INET) -> str:
    """ "dgram" or "raw", whichever this process may open (cached); "" when neither."""
    if family not in _kinds:
        _kinds[family] = ""
        for kind, sock_type in (("dgram", socket.SOCK_DGRAM), ("raw", socket.SOCK_RAW)):
            try:
                socket.socket(family, sock_type, _PROTO[family]).close()
            except OSError:
                continue
            _kinds[family] = kind
            break
    return _kinds[family]


def require_icmp() -> str:
    """The socket kind icmp probes will use; IcmpNotPermitted (saying how to allow one) otherwise."""
    kind = socket_kind(socket.AF_INET)
    if kind:
        return kind
    raise _not_permitted()


def _not_permitted() -> IcmpNotPermitted:
    low, high = _ping_group_range()
    return IcmpNotPermitted(
        f"icmp probes cannot run: group {os.getgid()} is outside net.ipv4.ping_group_range "
        f"({low} {high}) and the agent lacks CAP_NET_RAW. Allow unprivileged ping sockets with "
        f"`sysctl -w net.ipv4.ping_group_range='0 2147483647'` (per network namespace; in Kubernetes "
        f"a pod sysctl) or grant the agent CAP_NET_RAW"
    )


def _ping_group_range() -> tuple[str, str]:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            low, high = f.read().split()
    except (OSError, ValueError):
        return "?", "?"
    return low, high


@dataclass
class _Ping:
    family: int
    address: str
    kind: str
    ident: int
    sent_at: dict[int, float] = field(default_factory=dict)
    rtts_ms: dict[int, float] = field(default_factory=dict)
    unreachable: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host = spec.target.strip().strip("[]")
    count = min(spec.icmp.count or DEFAULT_COUNT, MAX_COUNT)
    gap = spec.icmp.packet_interval.ToMilliseconds() / 1000.0 or DEFAULT_PACKET_INTERVAL_S
    budget_end = time.perf_counter() + timeout_s(spec) * REPLY_BUDGET
    result.failure_host = host
    address = (await resolve_timed(host, 0, spec, ctx, result))[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket_kind(family)
    if not kind:
        raise ProbeFailure(FailureClass.INTERNAL, str(_not_permitted()))
    ping = _Ping(family, address, kind, secrets.randbelow(0xFFFF) + 1)
    info = result.icmp
    info.remote_addr, info.socket = address, kind
    set_phase("echo")
    await _run(ping, count, gap, budget_end)
    _report(ping, result, count, host)


async def _run(ping: _Ping, count: int, gap: float, budget_end: float) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(
        ping.family, socket.SOCK_DGRAM if ping.kind == "dgram" else socket.SOCK_RAW, _PROTO[ping.family]
    )
    try:
        sock.setblocking(False)
        if ping.kind == "dgram":
            # Connected, so the kernel reports a destination-unreachable as an error on this socket.
            sock.connect((ping.address, 0))
        loop.add_reader(sock.fileno(), _on_readable, sock, ping, count)
        try:
            for seq in range(1, count + 1):
                if seq > 1:
                    await _sleep_until(min(time.perf_counter() + gap, budget_end))
                if time.perf_counter() >= budget_end or ping.done.is_set():
                    break
                ping.sent_at[seq] = time.perf_counter()
                _send(sock, ping, seq)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ping.done.wait(), max(0.0, budget_end - time.perf_counter()))
        finally:
            loop.remove_reader(sock.fileno())
    finally:
        sock.close()


def _send(sock: socket.socket, ping: _Ping, seq: int) -> None:
    packet = _echo_request(ping, seq)
    try:
        if ping.kind == "dgram":
            sock.send(packet)
        else:
            sock.sendto(packet, (ping.address, 0))
    except BlockingIOError:
        return  # the send buffer is full: this echo counts as lost
    except OSError as exc:
        if exc.errno not in _UNREACHABLE_ERRNOS:
            raise
        # No route (or an "unreachable" route): the kernel refuses before anything is sent.
        ping.unreachable = exc.strerror or "unreachable"
        ping.done.set()


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))


def _on_readable(sock: socket.socket, ping: _Ping, count: int) -> None:
    while True:
        try:
            data = sock.recv(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _UNREACHABLE_ERRNOS:
                ping.unreachable = exc.strerror or "unreachable"
                ping.done.set()
            return
        _on_packet(data, ping, count)


def _on_packet(data: bytes, ping: _Ping, count: int) -> None:
    now = time.perf_counter()
    if ping.kind == "raw" and ping.family == socket.AF_INET:
        data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets include the IP header
    if len(data) < 8:
        return
    kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", data[:8])
    if kind == _UNREACHABLE[ping.family] and ping.kind == "raw":
        if _quotes_our_echo(data[8:], ping):
            ping.unreachable = "destination unreachable"
            ping.done.set()
        return
    if kind != _ECHO[ping.family][1] or seq not in ping.sent_at or seq in ping.rtts_ms:
        return
    if ping.kind == "raw" and ident != ping.ident:
        return  # another process's (or probe's) echo: raw sockets see them all
    ping.rtts_ms[seq] = (now - ping.sent_at[seq]) * 1000.0
    if len(ping.rtts_ms) == count:
        ping.done.set()


def _quotes_our_echo(quoted: bytes, ping: _Ping) -> bool:
    """An ICMP error quotes the offending packet: its IP header, then our echo header."""
    offset = (quoted[0] & 0x0F) * 4 if ping.family == socket.AF_INET and quoted else 40
    echo = quoted[offset : offset + 8]
    return (
        len(echo) == 8
        and echo[0] == _ECHO[ping.family][0]
        and struct.unpack("!H", echo[4:6])[0] == ping.ident
    )


def _echo_request(ping: _Ping, seq: int) -> bytes:
    payload = struct.pack("!d", time.time()).ljust(PAYLOAD_BYTES, b"\x00")
    header = struct.pack("!BBHHH", _ECHO[ping.family][0], 0, 0, ping.ident, seq)
    if ping.family == socket.AF_INET6:
        return header + payload  # the kernel computes ICMPv6 checksums (pseudo-header)
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", _ECHO[ping.family][0], 0, checksum, ping.ident, seq) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _report(ping: _Ping, result: ProbeResult, count: int, host: str) -> None:
    info = result.icmp
    info.sent = len(ping.sent_at)
    info.received = len(ping.rtts_ms)
    info.loss_ratio = 1.0 - info.received / info.sent if info.sent else 1.0
    rtts = list(ping.rtts_ms.values())
    if rtts:
        info.rtt_min_ms, info.rtt_max_ms = min(rtts), max(rtts)
        info.rtt_avg_ms = statistics.fmean(rtts)
        info.rtt_stddev_ms = statistics.pstdev(rtts)
        result.failure_host = ""
        return
    if ping.unreachable:
        raise ProbeFailure(FailureClass.ICMP_UNREACHABLE, f"{ping.address}: {ping.unreachable}", host)
    raise ProbeFailure(
        FailureClass.ICMP_NO_REPLY,
        f"no echo reply from {ping.address} to {info.sent} of {count} requests",
        host,
    )
