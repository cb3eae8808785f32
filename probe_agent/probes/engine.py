"""The HTTP engine of the http and page probes: httpx with HTTP/2, on a network made to measure.

    probe ──▶ exchange(session, Request, Exchange)
                 │  httpx.Request with the process's one client's default headers (User-Agent,
                 │  Accept-Encoding for every decoder httpx has); httpx.Response decodes the body
                 ▼
              _SessionTransport ──▶ the session's httpcore pool (HTTP/1.1 and h2 by ALPN)
                                         │
                                         ▼
                                     netio.ProbeBackend (resolver, happy eyeballs, TLS + chain)

A `Session` owns the connections of one probe (or one page load) and nothing else: the
first request of an http probe always opens a fresh connection, so its `dns, connect, tls`
phases mean what they say, and the redirects that follow to the same origin reuse it as curl
and browsers do (their hops show no handshake). Sessions are cheap (a pool object); the client,
its transport, the backend and the SSL contexts are built once per process, never per probe.

What httpx and httpcore bring: ALPN h2 preferred, interim 1xx responses (103 Early Hints, an
unsolicited 100) skipped, bare-LF responses accepted, Content-Encoding decoded (gzip, deflate,
br and zstd when their packages are installed, advertised in Accept-Encoding as browsers do);
response headers up to h11's 100 KiB (curl takes 80 KB; over h2, httpcore advertises 64 KiB).

Hostile servers stay bounded: the body is streamed in slices of `SLICE_BYTES` (so one
decompression step is bounded too), counted on the wire against `Request.max_body_bytes` and
decoded against `DECODED_FACTOR` times that (a compression bomb ends as `body_too_large`), and
kept only up to `Request.keep_body_bytes`. The deadline is the caller's; the phase names what it
interrupted. Errors are mapped once, here, to a failure class naming the host (`exchange_or_fail`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure, classify
from probe_agent.probes.netio import Dial, Exchange, ProbeBackend, ProbeStream, dialing
from probenet.v1.probe_pb2 import CheckSpec, FailureClass

__all__ = ["Exchange", "Request", "Session", "client", "exchange", "exchange_or_fail"]

USER_AGENT = "probenet/0.1"
SLICE_BYTES = 16 * 1024
DECODED_FACTOR = 8
MAX_STALE_RETRIES = 6  # as many as the idle connections a browser keeps per host
# httpcore sets its ALPN list on the context it is given; this one is only ever given that list.
_HTTPCORE_ALPN = ("http/1.1", "h2")


@dataclass(frozen=True)
class Request:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    max_body_bytes: int = 10 * 1024 * 1024
    keep_body_bytes: int = 0  # how much of the decoded body to keep for assertions or parsing
    server_name: str = ""  # SNI and the name verified; default: the URL host
    ca_pem: str = ""
    insecure: bool = False


class StaleConnection(Exception):
    """A reused connection was closed by the server before the response began (sent again)."""


class Session:
    """The connections of one probe or one page load, closed with it."""

    def __init__(self, ctx: ProbeContext, spec: CheckSpec, *, max_keepalive: int = 8) -> None:
        self.ctx = ctx
        self.spec = spec
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ctx.handshake_context(_HTTPCORE_ALPN),
            max_connections=None,
            max_keepalive_connections=max_keepalive,
            http1=True,
            http2=True,
            network_backend=_BACKEND,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            for i in range(0, len(part), SLICE_BYTES):
                yield part[i : i + SLICE_BYTES]

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SessionTransport(httpx.AsyncBaseTransport):
    """Hands each request to the pool of the session it belongs to (see netio.current_dial)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from probe_agent.probes.netio import current_dial

        dial = current_dial.get()
        if dial is None:
            raise RuntimeError("an engine request outside exchange()")
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = await dial.pool.handle_async_request(core)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )


_BACKEND = ProbeBackend()
_TRANSPORT = _SessionTransport()
_client: httpx.AsyncClient | None = None


def client() -> httpx.AsyncClient:
    """The process's one client: its default headers (User-Agent, Accept-Encoding for every
    decoder httpx has) go on every request. Requests are sent through its transport, never its
    `send`, so no cookie or other state is carried from one probe to the next."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            transport=_TRANSPORT,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
            timeout=None,
            follow_redirects=False,
            trust_env=False,
        )
    return _client


async def exchange(session: Session, req: Request, ex: Exchange) -> Exchange:
    """Run one request on the session, filling `ex` as it goes (a caller that times out still sees
    the phases). A new connection's phases are timed; a reused one shows none.

    A request sent on a kept-alive connection that the server had closed meanwhile is sent again
    (httpcore drops the dead connection), as browsers do.
    """
    for _ in range(MAX_STALE_RETRIES):
        try:
            return await _exchange_once(session, req, ex)
        except StaleConnection:
            ex.timings.clear()
    try:
        return await _exchange_once(session, req, ex)
    except StaleConnection as exc:
        raise ProbeFailure(FailureClass.HTTP_PROTOCOL, str(exc), ex.host) from exc


async def _exchange_once(session: Session, req: Request, ex: Exchange) -> Exchange:
    start = time.perf_counter()
    ex.enter("ttfb")  # the backend names dns, connect and tls while it opens a connection
    extensions: dict[str, Any] = {}
    if req.server_name:
        extensions["sni_hostname"] = req.server_name
    dial = Dial(session.spec, session.ctx, ex, session.pool, req.ca_pem, req.insecure)
    try:
        headers = client().headers.copy()  # the client's defaults (User-Agent, Accept-Encoding...)
        headers.update(req.headers)
        # httpx.Request itself, not client.build_request: no cookies, params or timeouts to merge.
        request = httpx.Request(
            req.method, req.url, headers=headers, content=req.body or None, extensions=extensions
        )
        ex.host = request.url.host
        if request.url.scheme not in ("http", "https") or not ex.host:
            raise ProbeFailure(FailureClass.HTTP_PROTOCOL, f"not an http(s) URL: {req.url!r}")
        with dialing(dial):
            # Straight to the transport: the client's send adds auth, redirect, cookie and hook
            # machinery a probe does not use (~5 % of a fresh HTTPS probe's CPU).
            response = await _TRANSPORT.handle_async_request(request)
        response.request = request
    except Exception as exc:
        if not dial.opened and _closed_before_response(exc):
            raise StaleConnection(f"keep-alive connection to {ex.host} closed before the response") from exc
        raise
    try:
        # From the request's start to its response headers, less this request's connection set-up.
        setup = sum(ex.timings.get(k, 0.0) for k in ("dns_ms", "connect_ms", "tls_ms"))
        ex.timings["ttfb_ms"] = max(elapsed_ms(start) - setup, 0.0)
        _absorb(response, ex, reused=not dial.opened)
        ex.enter("transfer")
        t = time.perf_counter()
        await _read_body(response, req, ex)
        ex.timings["transfer_ms"] = elapsed_ms(t)
    finally:
        await response.aclose()
    ex.enter("done")
    ex.timings["total_ms"] = elapsed_ms(start)
    return ex


def _absorb(response: httpx.Response, ex: Exchange, *, reused: bool) -> None:
    ex.status = response.status_code
    ex.version = response.http_version
    ex.headers = response.headers
    ex.reused = reused
    stream = response.extensions.get("network_stream")
    if reused and isinstance(stream, ProbeStream):
        ex.addresses, ex.remote_addr, ex.tls = stream.peer.addresses, stream.peer.remote_addr, stream.peer.tls


async def _read_body(response: httpx.Response, req: Request, ex: Exchange) -> None:
    kept = bytearray()
    decoded_cap = req.max_body_bytes * DECODED_FACTOR
    async for chunk in response.aiter_bytes():
        ex.body_bytes = response.num_bytes_downloaded
        ex.decoded_bytes += len(chunk)
        if ex.body_bytes > req.max_body_bytes:
            raise ProbeFailure(FailureClass.BODY_TOO_LARGE, f"body over {req.max_body_bytes} bytes", ex.host)
        if ex.decoded_bytes > decoded_cap:
            raise ProbeFailure(FailureClass.BODY_TOO_LARGE, f"decoded body over {decoded_cap} bytes", ex.host)
        room = req.keep_body_bytes - len(kept)
        if room > 0:
            kept += chunk[:room]
    ex.body_bytes = response.num_bytes_downloaded
    ex.body = bytes(kept)


def _closed_before_response(exc: BaseException) -> bool:
    if isinstance(exc, httpcore.RemoteProtocolError):
        return "without sending a response" in str(exc)
    return isinstance(exc, httpcore.ReadError | httpcore.WriteError)


def classify_http(exc: BaseException, phase: str) -> tuple[FailureClass.ValueType, str]:
    """A failure class for what httpx, httpcore or the network raised."""
    if isinstance(exc, httpcore.RemoteProtocolError | httpx.RemoteProtocolError):
        message = str(exc)
        if "buffer too long" in message or "header list" in message.lower():
            return FailureClass.HEADERS_TOO_LARGE, f"response headers too large: {message}"
        return FailureClass.HTTP_PROTOCOL, f"bad response: {message}"
    if isinstance(exc, httpx.DecodingError):
        return FailureClass.HTTP_PROTOCOL, f"body cannot be decoded: {exc}"
    if isinstance(
        exc,
        httpcore.LocalProtocolError | httpx.LocalProtocolError | httpx.InvalidURL | httpx.UnsupportedProtocol,
    ):
        return FailureClass.HTTP_PROTOCOL, f"request cannot be sent: {exc}"
    cause = _os_cause(exc)
    if cause is not None:
        return classify(cause, phase)
    if isinstance(exc, httpcore.ReadError | httpcore.WriteError | httpcore.NetworkError):
        return FailureClass.TCP_RESET, f"connection lost: {exc}"
    return classify(exc, phase)


def _os_cause(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def exchange_or_fail(pending: Awaitable[object], ex: Exchange) -> None:
    """Await one exchange; any error ends as a ProbeFailure naming the host it concerns."""
    try:
        await pending
    except ProbeFailure as exc:
        exc.host = exc.host or ex.host
        raise
    except Exception as exc:
        failure_class, message = classify_http(exc, ex.phase)
        raise ProbeFailure(failure_class, f"{message} ({ex.host})", ex.host) from exc
