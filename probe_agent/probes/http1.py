"""A lean HTTP/1.1 client that times every phase of one fresh-connection exchange.

Why not httpx: it hides the phases (dns/connect/tls/ttfb) and costs about twice the CPU per
fresh connection. One request per connection ("Connection: close") is what a probe measuring
a fresh connection wants anyway.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import CheckSpec, FailureClass

MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class Exchange:
    """What one request/response saw. `phase` tells where it stopped if it did not finish."""

    url: str
    host: str = ""
    phase: str = "dns"
    status: int = 0
    version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_bytes: int = 0
    remote_addr: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    ssl_object: ssl.SSLObject | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


@dataclass(frozen=True)
class Request:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    max_body_bytes: int = 10 * 1024 * 1024
    keep_body: bool = False
    ssl_context: ssl.SSLContext | None = None


def split_url(url: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts, parts.hostname, port


async def exchange(req: Request, ctx: ProbeContext, spec: CheckSpec, ex: Exchange) -> Exchange:
    """Run one exchange, filling `ex` as it goes (so a caller that times out still sees the phases)."""
    parts, host, port = split_url(req.url)
    ex.host = host
    start = time.perf_counter()
    ex.phase = "dns"
    addrs = await ctx.resolve(host, port, spec)
    ex.timings["dns_ms"] = elapsed_ms(start)
    ex.phase = "connect"
    t = time.perf_counter()
    reader, writer = await _connect_any(addrs, port)
    try:
        ex.timings["connect_ms"] = elapsed_ms(t)
        peer = writer.get_extra_info("peername")
        ex.remote_addr = f"{peer[0]}:{peer[1]}" if peer else ""
        if parts.scheme == "https":
            ex.phase = "tls"
            t = time.perf_counter()
            sslctx = req.ssl_context or ctx.ssl_context()
            await writer.start_tls(sslctx, server_hostname=spec.tls.server_name or host)
            ex.timings["tls_ms"] = elapsed_ms(t)
            ex.ssl_object = writer.get_extra_info("ssl_object")
        ex.phase = "ttfb"
        t = time.perf_counter()
        writer.write(_request_bytes(req, parts, host, port))
        first = await reader.readexactly(1)
        ex.timings["ttfb_ms"] = elapsed_ms(t)
        ex.phase = "transfer"
        t = time.perf_counter()
        await _read_response(reader, req, ex, first)
        ex.timings["transfer_ms"] = elapsed_ms(t)
        ex.phase = "done"
    finally:
        writer.transport.abort()
    ex.timings["total_ms"] = elapsed_ms(start)
    return ex


async def _connect_any(addrs: list[str], port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    last: OSError | None = None
    for addr in addrs:
        try:
            return await asyncio.open_connection(addr, port, limit=MAX_HEADER_BYTES)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def _request_bytes(req: Request, parts: SplitResult, host: str, port: int) -> bytes:
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and port == default_port:
        host_header = f"[{host}]"
    headers = {"Host": host_header, "User-Agent": "probenet/0.1", "Accept": "*/*", "Connection": "close"}
    for name, value in req.headers:
        headers[name] = value
    if req.body:
        headers["Content-Length"] = str(len(req.body))
    lines = [f"{req.method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body


async def _read_response(reader: asyncio.StreamReader, req: Request, ex: Exchange, first: bytes) -> None:
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProbeFailure(FailureClass.HEADERS_TOO_LARGE, f"response headers over {MAX_HEADER_BYTES} bytes") from exc
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"bad status line {lines[0][:80]!r}")
    ex.version = status_line[0]
    ex.status = int(status_line[1])
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            ex.headers.append((name.strip(), value.strip()))
    if req.method == "HEAD" or ex.status in (204, 304) or 100 <= ex.status < 200:
        return
    chunks = _body_chunks(reader, ex)
    kept = bytearray()
    async for chunk in chunks:
        ex.body_bytes += len(chunk)
        if ex.body_bytes > req.max_body_bytes:
            raise ProbeFailure(FailureClass.BODY_TOO_LARGE, f"body over {req.max_body_bytes} bytes")
        if req.keep_body:
            kept += chunk
    ex.body = bytes(kept)


async def _body_chunks(reader: asyncio.StreamReader, ex: Exchange) -> AsyncIterator[bytes]:
    if (ex.header("transfer-encoding") or "").lower().endswith("chunked"):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise ProbeFailure(FailureClass.HTTP_PROTOCOL, "bad chunk size") from exc
            if size == 0:
                return
            while size:
                chunk = await reader.read(min(size, READ_CHUNK))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", size)
                size -= len(chunk)
                yield chunk
            await reader.readexactly(2)
    length = ex.header("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"bad Content-Length {length!r}")
        remaining = int(length)
        while remaining:
            chunk = await reader.read(min(remaining, READ_CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
            yield chunk
        return
    while chunk := await reader.read(READ_CHUNK):
        yield chunk
