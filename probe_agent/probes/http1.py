"""A lean HTTP/1.1 client that times every phase of one fresh-connection exchange.

Why not httpx: it hides the phases (dns/connect/tls/ttfb) and costs about twice the CPU per
fresh connection. One request per connection ("Connection: close", `exchange`) is what a
probe measuring a fresh connection wants anyway.

The page probe loads sub-resources the way a browser does, over keep-alive connections
(`open_connection`, then `request(..., keep_alive=True)` as often as `Connection.reusable`
allows). A connection is reusable only after a response read exactly to the end of its
framing (Content-Length, or chunked up to the final CRLF) from an HTTP/1.1 server that did
not say "Connection: close"; any error, a partly read body, a body delimited by EOF, or bytes
already waiting past the end of the response make it unusable (the last two are
`http_protocol` for that response: its framing was wrong). A reused connection that turns out
closed before the first response byte raises `StaleConnection` so the caller can retry the
(idempotent) request on a fresh connection, as browsers do.

Hostile servers are bounded here: response headers are capped (`MAX_HEADER_BYTES`), the body
is streamed in chunks and counted, never buffered beyond `Request.keep_body_bytes`, and
exceeding `Request.max_body_bytes` ends the exchange with `body_too_large`. The deadline is
the caller's (run_probe's `asyncio.timeout`); `set_phase` tells it what a timeout interrupted.

TLS: the handshake accepts any chain (one shared context), then the presented chain is judged
by `ProbeContext.inspector`; on a verification failure nothing is sent to the server and the
exchange ends with the specific class, the chain still recorded in `Exchange.tls`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from probe_agent.probes.base import set_phase
from probe_agent.probes.context import HTTP1_ALPN, ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure, classify
from probe_agent.probes.tlsinspect import ChainReport, presented_chain_der
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, TlsInfo

MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
USER_AGENT = "probenet/0.1"


@dataclass
class Exchange:
    """What one request/response saw. `phase` tells where it stopped if it did not finish."""

    url: str
    host: str = ""
    phase: str = "dns"
    addresses: list[str] = field(default_factory=list)
    status: int = 0
    version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_bytes: int = 0
    remote_addr: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tls: TlsInfo | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def enter(self, phase: str) -> None:
        self.phase = phase
        set_phase(phase)


@dataclass(frozen=True)
class Request:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    max_body_bytes: int = 10 * 1024 * 1024
    keep_body_bytes: int = 0  # how much of the body to keep for assertions or parsing
    server_name: str = ""  # SNI and the name verified; default: the URL host
    ca_pem: str = ""
    insecure: bool = False
    alpn: tuple[str, ...] = HTTP1_ALPN


def split_url(url: str) -> tuple[SplitResult, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"bad URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"not an http(s) URL: {url!r}")
    return parts, parts.hostname, port


class StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before the response began."""


@dataclass(eq=False)
class Connection:
    """An open connection to one origin. `reusable` is true only between complete responses."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    origin: tuple[str, str, int]  # scheme, host, port
    addresses: list[str]
    remote_addr: str
    tls: TlsInfo | None
    requests: int = 0
    reusable: bool = False

    def idle_usable(self) -> bool:
        """Still worth sending a request on: reusable, not closed by the server, nothing unasked waiting."""
        return (
            self.reusable
            and not self.reader.at_eof()
            and not self.writer.transport.is_closing()
            and not _buffered(self.reader)
        )

    def close(self) -> None:
        self.reusable = False
        self.writer.transport.abort()


async def exchange(req: Request, ctx: ProbeContext, spec: CheckSpec, ex: Exchange) -> Exchange:
    """Run one exchange, filling `ex` as it goes (so a caller that times out still sees the phases)."""
    start = time.perf_counter()
    conn = await open_connection(req, ctx, spec, ex)
    try:
        await request(conn, req, ex, keep_alive=False)
    finally:
        conn.close()
    ex.timings["total_ms"] = elapsed_ms(start)
    return ex


async def open_connection(req: Request, ctx: ProbeContext, spec: CheckSpec, ex: Exchange) -> Connection:
    """Resolve, connect and (for https) handshake and judge the chain, timing each phase in `ex`.

    A chain that fails verification raises its class (unless insecure) and the connection is
    closed: nothing is ever sent over it.
    """
    parts, host, port = split_url(req.url)
    ex.host = host
    start = time.perf_counter()
    ex.enter("dns")
    ex.addresses = await ctx.resolve(host, port, spec)
    ex.timings["dns_ms"] = elapsed_ms(start)
    ex.enter("connect")
    t = time.perf_counter()
    sock = await connect_any(ex.addresses, port)
    ex.timings["connect_ms"] = elapsed_ms(t)
    peer = sock.getpeername()
    ex.remote_addr = f"[{peer[0]}]:{peer[1]}" if sock.family == socket.AF_INET6 else f"{peer[0]}:{peer[1]}"
    try:
        if parts.scheme == "https":
            ex.enter("tls")
            t = time.perf_counter()
            reader, writer = await asyncio.open_connection(
                sock=sock,
                ssl=ctx.handshake_context(req.alpn),
                server_hostname=req.server_name or host,
                limit=MAX_HEADER_BYTES,
            )
            ex.timings["tls_ms"] = elapsed_ms(t)
        else:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_HEADER_BYTES)
    except BaseException:
        sock.close()
        raise
    try:
        if parts.scheme == "https":
            check_tls(writer.get_extra_info("ssl_object"), req, ex, ctx)
    except BaseException:
        writer.transport.abort()
        raise
    return Connection(reader, writer, (parts.scheme, host, port), ex.addresses, ex.remote_addr, ex.tls)


async def request(conn: Connection, req: Request, ex: Exchange, *, keep_alive: bool) -> Exchange:
    """Send `req` on `conn` and read the whole response into `ex`.

    With keep_alive, `conn.reusable` says afterwards whether the next request may use it; on a
    reused connection closed before the first response byte, raises StaleConnection.
    """
    parts, host, port = split_url(req.url)
    ex.host, ex.addresses, ex.remote_addr, ex.tls = host, conn.addresses, conn.remote_addr, conn.tls
    reused = conn.requests > 0
    conn.requests += 1
    conn.reusable = False  # until this response has been read exactly to its end
    ex.enter("ttfb")
    t = time.perf_counter()
    try:
        conn.writer.write(_request_bytes(req, parts, host, port, keep_alive=keep_alive))
        first = await conn.reader.readexactly(1)
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
        if reused:
            raise StaleConnection(f"keep-alive connection to {host} closed before the response") from exc
        raise
    ex.timings["ttfb_ms"] = elapsed_ms(t)
    ex.enter("transfer")
    t = time.perf_counter()
    framed = await _read_response(conn.reader, req, ex, first, keep_alive=keep_alive)
    ex.timings["transfer_ms"] = elapsed_ms(t)
    ex.enter("done")
    if keep_alive and framed:
        if extra := _buffered(conn.reader):
            raise ProbeFailure(
                FailureClass.HTTP_PROTOCOL,
                f"{extra} unexpected bytes after the end of the response from {host} (wrong Content-Length?)",
                host,
            )
        conn.reusable = _server_keeps_alive(ex)
    return ex


def _server_keeps_alive(ex: Exchange) -> bool:
    tokens = {t.strip().lower() for t in (ex.header("connection") or "").split(",")}
    if "close" in tokens:
        return False
    return ex.version == "HTTP/1.1" or (ex.version == "HTTP/1.0" and "keep-alive" in tokens)


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes received but not yet read. StreamReader has no public accessor; `_buffer` has been
    its bytearray since Python 3.4 (and uvloop uses the same StreamReader)."""
    buffer = getattr(reader, "_buffer", b"")
    return len(buffer)


def check_tls(ssl_object: ssl.SSLObject | None, req: Request, ex: Exchange, ctx: ProbeContext) -> None:
    """Record the handshake and the presented chain in `ex.tls`; raise the verify class unless insecure."""
    if ssl_object is None:
        raise ProbeFailure(FailureClass.TLS_HANDSHAKE, "no TLS session after the handshake", ex.host)
    server_name = req.server_name or ex.host
    report = ctx.inspector.inspect(presented_chain_der(ssl_object), server_name, req.ca_pem)
    ex.tls = tls_info(ssl_object, server_name, report)
    if not report.verified and not req.insecure:
        raise ProbeFailure(report.verify_class, report.verify_error, ex.host)


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


async def connect_any(addrs: list[str], port: int) -> socket.socket:
    """Connect to the first address that accepts; the error of the last one otherwise."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for addr in addrs:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, (addr, port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if last is None:
        raise ProbeFailure(FailureClass.DNS_ERROR, "no address to connect to")
    raise last


def _request_bytes(
    req: Request, parts: SplitResult, host: str, port: int, *, keep_alive: bool = False
) -> bytes:
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    host_literal = f"[{host}]" if ":" in host else host
    host_header = host_literal if port == default_port else f"{host_literal}:{port}"
    headers = {
        "Host": host_header,
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Connection": "keep-alive" if keep_alive else "close",
    }
    for name, value in req.headers:
        headers[name] = value
    if req.body or req.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(req.body))
    lines = [f"{req.method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body


async def _read_response(
    reader: asyncio.StreamReader, req: Request, ex: Exchange, first: bytes, *, keep_alive: bool = False
) -> bool:
    """Read status, headers and body into `ex`; True when the body ended by its framing (not EOF)."""
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProbeFailure(
            FailureClass.HEADERS_TOO_LARGE, f"response headers over {MAX_HEADER_BYTES} bytes", ex.host
        ) from exc
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"bad status line {lines[0][:80]!r}", ex.host)
    ex.version = status_line[0]
    ex.status = int(status_line[1])
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            ex.headers.append((name.strip(), value.strip()))
    if 100 <= ex.status < 200:
        return False  # an interim response: what follows is not read here, so never reuse
    if req.method == "HEAD" or ex.status in (204, 304):
        return True
    framing = _framing(ex)
    kept = bytearray()
    async for chunk in _body_chunks(reader, ex, framing, keep_alive=keep_alive):
        ex.body_bytes += len(chunk)
        if ex.body_bytes > req.max_body_bytes:
            raise ProbeFailure(FailureClass.BODY_TOO_LARGE, f"body over {req.max_body_bytes} bytes", ex.host)
        room = req.keep_body_bytes - len(kept)
        if room > 0:
            kept += chunk[:room]
    ex.body = bytes(kept)
    return framing in ("chunked", "length")


def _framing(ex: Exchange) -> str:
    """How the body ends: "chunked", "length", "eof", or "ambiguous" (both headers: read as chunked
    but never reuse the connection, RFC 9112 6.3)."""
    chunked = (ex.header("transfer-encoding") or "").lower().endswith("chunked")
    has_length = ex.header("content-length") is not None
    if chunked:
        return "ambiguous" if has_length else "chunked"
    return "length" if has_length else "eof"


async def _body_chunks(
    reader: asyncio.StreamReader, ex: Exchange, framing: str, *, keep_alive: bool
) -> AsyncIterator[bytes]:
    if framing in ("chunked", "ambiguous"):
        async for chunk in _chunked(reader, ex, keep_alive=keep_alive):
            yield chunk
        return
    length = ex.header("content-length")
    if length is None:
        while chunk := await reader.read(READ_CHUNK):
            yield chunk
        return
    if not length.isdigit():
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"bad Content-Length {length[:40]!r}", ex.host)
    async for chunk in _exactly(reader, int(length)):
        yield chunk


async def _chunked(reader: asyncio.StreamReader, ex: Exchange, *, keep_alive: bool) -> AsyncIterator[bytes]:
    """Chunk data. On a connection to be reused the framing must be exact, so chunk terminators
    are checked and the trailer section is read through its final CRLF; a fresh connection is
    closed after the last chunk and stays as lenient as it always was."""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise ProbeFailure(FailureClass.HTTP_PROTOCOL, "bad chunk size", ex.host) from exc
        if size < 0:
            raise ProbeFailure(FailureClass.HTTP_PROTOCOL, "bad chunk size", ex.host)
        if size == 0:
            if keep_alive:
                await _skip_trailers(reader, ex)
            return
        async for chunk in _exactly(reader, size):
            yield chunk
        end = await reader.readexactly(2)
        if keep_alive and end != b"\r\n":
            raise ProbeFailure(FailureClass.HTTP_PROTOCOL, "chunk data not followed by CRLF", ex.host)


async def _skip_trailers(reader: asyncio.StreamReader, ex: Exchange) -> None:
    total = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise ProbeFailure(
                FailureClass.HEADERS_TOO_LARGE, f"chunked trailers over {MAX_HEADER_BYTES} bytes", ex.host
            )


async def _exactly(reader: asyncio.StreamReader, remaining: int) -> AsyncIterator[bytes]:
    while remaining:
        chunk = await reader.read(min(remaining, READ_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)
        yield chunk


async def exchange_or_fail(pending: Awaitable[object], ex: Exchange) -> None:
    """Await one exchange; any error ends as a ProbeFailure naming the host it concerns."""
    try:
        await pending
    except ProbeFailure as exc:
        exc.host = exc.host or ex.host
        raise
    except Exception as exc:
        failure_class, message = classify(exc, ex.phase)
        raise ProbeFailure(failure_class, f"{message} ({ex.host})", ex.host) from exc
