"""The network under the HTTP engine: httpcore's network backend, made to measure.

httpcore asks its backend for a TCP stream (`connect_tcp`) and then to upgrade it
(`start_tls`); this backend does both the way a probe must:

- resolution goes through the check's resolver (`ProbeContext.resolve`: overrides, the
  check's DNS server, the system) and is timed on its own (`dns`), not hidden in connect;
- connection set-up follows RFC 8305 happy eyeballs (aiohappyeyeballs: the next address is
  tried 250 ms after the previous one, families interleaved), so a name whose first address is
  dead still works, as in curl and browsers (`connect`);
- TLS uses the one shared handshake context (verification off, ALPN h2 first as browsers
  offer it), then the presented chain is read and judged by `ProbeContext.inspector`; a chain
  that fails verification raises its specific class before httpcore sends a byte (`tls`).

The per-request inputs (check, context, trust) and what the connection saw (timings,
addresses, TLS record) travel in a ContextVar set by the engine around each request: httpcore
connects in the requesting task, so the backend always sees the request that opened it.

Streams are a plain asyncio Protocol with a bounded buffer (reading pauses past
`BUFFER_HIGH`), so a fast server cannot make the agent hold more than that per connection.
Transport errors are raised as httpcore's own exceptions (`ReadError`, `WriteError`) chained
to the OSError, which the engine maps to a failure class.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import aiohappyeyeballs
import httpcore
import httpx

from probe_agent.probes.base import set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tlsinspect import ChainReport, presented_chain_der
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, TlsInfo

# ALPN as browsers offer it: HTTP/2 first.
BROWSER_ALPN = ("h2", "http/1.1")
HAPPY_EYEBALLS_DELAY_S = 0.25  # RFC 8305's recommended connection attempt delay
BUFFER_HIGH = 256 * 1024


@dataclass
class Exchange:
    """What one request/response saw. `phase` tells where it stopped if it did not finish."""

    url: str
    host: str = ""
    phase: str = "dns"
    addresses: list[str] = field(default_factory=list)
    status: int = 0
    version: str = ""
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    body_bytes: int = 0  # as received (wire)
    decoded_bytes: int = 0  # after Content-Encoding
    remote_addr: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tls: TlsInfo | None = None
    reused: bool = False  # sent on a connection opened before it

    def header(self, name: str) -> str | None:
        """The first value of a response header (any case)."""
        values = self.headers.get_list(name)
        return values[0] if values else None

    def enter(self, phase: str) -> None:
        self.phase = phase
        set_phase(phase)


@dataclass
class Peer:
    """What a connection was opened with, for the requests that reuse it."""

    addresses: list[str]
    remote_addr: str
    tls: TlsInfo | None = None


@dataclass
class Dial:
    """One request's inputs to the backend (and the pool it goes to) and the exchange it fills."""

    spec: CheckSpec
    ctx: ProbeContext
    ex: Exchange
    pool: Any  # the httpcore pool of the probe's session
    ca_pem: str = ""
    insecure: bool = False
    opened: bool = False  # this request opened a new connection


current_dial: ContextVar[Dial | None] = ContextVar("current_dial", default=None)


class ProbeBackend(httpcore.AsyncNetworkBackend):
    """One per ProbeContext; stateless apart from the context it serves."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        dial = current_dial.get()
        if dial is None:
            raise RuntimeError("connect_tcp outside a probe request")
        ex = dial.ex
        ex.host, dial.opened = host, True
        start = time.perf_counter()
        ex.enter("dns")
        ex.addresses = await dial.ctx.resolve(host, port, dial.spec)
        ex.timings["dns_ms"] = elapsed_ms(start)
        ex.enter("connect")
        start = time.perf_counter()
        sock = await connect_happy(ex.addresses, port)
        ex.timings["connect_ms"] = elapsed_ms(start)
        ex.remote_addr = format_peer(sock)
        stream = await ProbeStream.wrap(sock, dial, Peer(ex.addresses, ex.remote_addr))
        ex.enter("ttfb")  # unless start_tls follows, what comes next is the request
        return stream

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("probes do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def connect_happy(addresses: list[str], port: int) -> socket.socket:
    """A connected non-blocking socket to the first address that answers (RFC 8305)."""
    if not addresses:
        raise ProbeFailure(FailureClass.DNS_ERROR, "no address to connect to")
    infos = [
        (
            socket.AF_INET6 if ":" in a else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
            "",
            (a, port),
        )
        for a in addresses
    ]
    sock = await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S, interleave=1
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def format_peer(sock: socket.socket) -> str:
    peer = sock.getpeername()
    return f"[{peer[0]}]:{peer[1]}" if sock.family == socket.AF_INET6 else f"{peer[0]}:{peer[1]}"


class _Pipe(asyncio.Protocol):
    """Received bytes, bounded: the socket is not read while more than BUFFER_HIGH is waiting.

    Flow control pauses the TCP transport, never the TLS one above it: uvloop 0.23 drops TLS
    data it holds for a paused reader when the peer then closes (MagicStack/uvloop#661; HTTPS
    bodies from servers closing after the response arrived short), while ciphertext left in
    the kernel's socket buffer is safe on any loop. The TLS layer may resume the socket for its
    own needs, so every arrival over the mark pauses it again.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None  # what the peer's bytes arrive through
        self.socket_transport: asyncio.Transport | None = None  # the TCP transport, paused for flow control
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = self.socket_transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > BUFFER_HIGH and self.socket_transport is not None:
            self.paused = True
            self.socket_transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def wait_readable(self) -> None:
        self._readable = asyncio.get_running_loop().create_future()
        try:
            await self._readable
        finally:
            self._readable = None

    async def wait_writable(self) -> None:
        if self._writable is not None:
            await self._writable

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self.paused and len(self.buffer) <= BUFFER_HIGH // 2 and self.socket_transport is not None:
            self.paused = False
            self.socket_transport.resume_reading()
        return data


class ProbeStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, pipe: _Pipe, dial: Dial, peer: Peer) -> None:
        self._transport = transport
        self._pipe = pipe
        self._dial = dial
        self.peer = peer

    @classmethod
    async def wrap(cls, sock: socket.socket, dial: Dial, peer: Peer) -> ProbeStream:
        try:
            transport, pipe = await asyncio.get_running_loop().create_connection(_Pipe, sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(transport, pipe, dial, peer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        pipe = self._pipe
        while not pipe.buffer and not pipe.eof:
            await pipe.wait_readable()
        if pipe.buffer:
            return pipe.take(max_bytes)
        if pipe.error is not None:
            raise httpcore.ReadError(str(pipe.error) or type(pipe.error).__name__) from pipe.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            error = self._pipe.error or ConnectionResetError("connection closed")
            raise httpcore.WriteError(str(error)) from error
        self._transport.write(buffer)
        await self._pipe.wait_writable()

    async def aclose(self) -> None:
        self._transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Handshake with the shared context, then judge the chain; a bad chain ends it here."""
        dial, ex = self._dial, self._dial.ex
        name = server_hostname or ex.host
        ex.enter("tls")
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport, self._pipe, dial.ctx.handshake_context(BROWSER_ALPN), server_hostname=name
            )
        except BaseException:
            self._transport.abort()
            raise
        if transport is None:  # only when the connection closed during the handshake
            self._transport.abort()
            raise ProbeFailure(FailureClass.TLS_HANDSHAKE, "connection closed during the TLS handshake")
        ex.timings["tls_ms"] = elapsed_ms(start)
        self._transport = self._pipe.transport = transport
        try:
            self.peer.tls = judge(transport.get_extra_info("ssl_object"), name, dial)
        except BaseException:
            transport.abort()
            raise
        ex.enter("ttfb")
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "is_readable":
            # httpcore asks before reusing an idle connection: data or EOF waiting means it is dead.
            return bool(self._pipe.buffer) or self._pipe.eof
        if info in ("client_addr", "server_addr"):
            return self._transport.get_extra_info("sockname" if info == "client_addr" else "peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


def judge(ssl_object: ssl.SSLObject | None, server_name: str, dial: Dial) -> TlsInfo:
    """Record the handshake and the presented chain in the exchange; raise the verify class unless insecure."""
    ex = dial.ex
    if ssl_object is None:
        raise ProbeFailure(FailureClass.TLS_HANDSHAKE, "no TLS session after the handshake", ex.host)
    report = dial.ctx.inspector.inspect(presented_chain_der(ssl_object), server_name, dial.ca_pem)
    ex.tls = _tls_info_cached(ssl_object, server_name, report)
    if not report.verified and not dial.insecure:
        raise ProbeFailure(report.verify_class, report.verify_error, ex.host)
    return ex.tls


_TLS_INFO_TTL_S = 30.0  # days_left is kept to 1/1000 day (86 s)
_TLS_INFO_MAX = 1024
_tls_infos: dict[tuple[int, str, str, str, str], tuple[ChainReport, float, TlsInfo]] = {}


def _tls_info_cached(ssl_object: ssl.SSLObject, server_name: str, report: ChainReport) -> TlsInfo:
    """tls_info, built once per verdict and handshake parameters: a server presents the same
    chain probe after probe (the inspector caches its report) and copying the chain into a new
    message each time is a measurable share of a probe's CPU. Never mutated by its users."""
    cipher = ssl_object.cipher()
    key = (
        id(report),
        ssl_object.version() or "",
        cipher[0] if cipher else "",
        ssl_object.selected_alpn_protocol() or "",
        server_name,
    )
    now = time.monotonic()
    hit = _tls_infos.get(key)
    if hit is not None and hit[0] is report and hit[1] > now:
        return hit[2]
    info = tls_info(ssl_object, server_name, report)
    if len(_tls_infos) >= _TLS_INFO_MAX:
        _tls_infos.pop(next(iter(_tls_infos)))
    _tls_infos[key] = (report, now + _TLS_INFO_TTL_S, info)
    return info


def tls_info(ssl_object: ssl.SSLObject, server_name: str, report: ChainReport) -> TlsInfo:
    cipher = ssl_object.cipher()
    info = TlsInfo(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        alpn=ssl_object.selected_alpn_protocol() or "",
        server_name=server_name,
        verified=report.verified,
        verify_class=report.verify_class,
        verify_error=report.verify_error,
    )
    info.chain.extend(report.chain)
    if report.earliest_expiry is not None:
        info.earliest_expiry.FromDatetime(report.earliest_expiry)
        info.days_left = round((report.earliest_expiry.timestamp() - time.time()) / 86400.0, 3)
    return info


@contextlib.contextmanager
def dialing(dial: Dial) -> Iterator[Dial]:
    token = current_dial.set(dial)
    try:
        yield dial
    finally:
        current_dial.reset(token)
