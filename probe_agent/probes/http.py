"""http probe: one request on a fresh connection, redirects followed, phases timed, assertions checked.

The request goes through the engine (httpx, HTTP/2 by ALPN; see engine.py) in a session of its
own, so the first hop always opens a fresh connection; a redirect to the same origin reuses it
as browsers do (its hop shows `reused_connection` and no handshake). Every redirect hop is
recorded with its own timings; the probe's timings are summed over hops. For https targets the
TLS handshake and the presented chain are recorded too (see tlsinspect), and a chain that fails
verification ends the probe with its specific class before anything is sent.

Assertions, checked on the final response in this order (the first failing one is reported):
status in the accepted set (default 200-399) -> `http_status`; each header regex, body
substring, body regex, max latency -> `http_assertion`. Body assertions see at most the first
`ASSERT_BODY_BYTES` of the decoded body, so a huge page cannot make the agent hold it in memory.
`http.body_bytes` is the body as received, `http.decoded_bytes` after Content-Encoding.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urljoin, urlsplit

from probe_agent.probes import engine
from probe_agent.probes.base import fail
from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult, Timings

DEFAULT_MAX_REDIRECTS = 10
DEFAULT_MAX_BODY = 10 * 1024 * 1024
ASSERT_BODY_BYTES = 1024 * 1024


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    opts = spec.http
    keep = ASSERT_BODY_BYTES if opts.body_contains or opts.body_regex else 0
    final = await fetch_document(spec, ctx, result, keep)
    if final is None:
        return
    problem = check_assertions(spec, final, result)
    if problem is not None:
        fail(result, problem[0], problem[1], final.host)


def request_for(spec: CheckSpec, url: str, keep_body_bytes: int = 0) -> engine.Request:
    opts = spec.http
    return engine.Request(
        url=url,
        method=(opts.method or "GET").upper(),
        headers=tuple(opts.headers.items()),
        body=opts.body.encode(),
        max_body_bytes=opts.max_body_bytes or DEFAULT_MAX_BODY,
        keep_body_bytes=keep_body_bytes,
        server_name=spec.tls.server_name,
        ca_pem=spec.tls.ca_pem,
        insecure=spec.tls.insecure_skip_verify,
    )


async def fetch_document(
    spec: CheckSpec,
    ctx: ProbeContext,
    result: ProbeResult,
    keep_body_bytes: int,
    session: engine.Session | None = None,
) -> engine.Exchange | None:
    """Fetch spec.target following redirects, recording everything in `result`.

    Returns the final exchange, or None once `result` holds the failure. Without a session the
    fetch gets one of its own, closed before returning.
    """
    if session is None:
        own = engine.Session(ctx, spec, max_keepalive=1)
        try:
            return await fetch_document(spec, ctx, result, keep_body_bytes, own)
        finally:
            await own.aclose()
    hops: list[engine.Exchange] = []
    opts = spec.http
    try:
        final = await follow(
            request_for(spec, spec.target, keep_body_bytes),
            session,
            hops,
            max_redirects=opts.max_redirects or DEFAULT_MAX_REDIRECTS,
            follow_redirects=not opts.no_follow_redirects,
        )
    except ProbeFailure as exc:
        fail(result, exc.failure_class, exc.message, exc.host or _target_host(spec.target))
        return None
    except asyncio.CancelledError:
        result.failure_host = hops[-1].host if hops else _target_host(spec.target)
        raise
    finally:
        record(result, hops, ctx.resolver_label(hops[-1].host, spec) if hops else "")
    if not status_ok(spec, final.status):
        fail(result, FailureClass.HTTP_STATUS, f"status {final.status} from {final.url}", final.host)
        return None
    return final


async def follow(
    req: engine.Request,
    session: engine.Session,
    hops: list[engine.Exchange],
    *,
    max_redirects: int,
    follow_redirects: bool = True,
) -> engine.Exchange:
    """Run `req` and its redirects; every exchange is appended to `hops` as it starts.

    Raises ProbeFailure (with the host concerned) for every way the fetch can fail.
    """
    for hop in range(max_redirects + 1):
        ex = engine.Exchange(url=req.url)
        hops.append(ex)
        await engine.exchange_or_fail(engine.exchange(session, req, ex), ex)
        location = ex.header("location")
        if not (follow_redirects and ex.status in (301, 302, 303, 307, 308) and location):
            return ex
        if hop == max_redirects:
            raise ProbeFailure(
                FailureClass.HTTP_TOO_MANY_REDIRECTS,
                f"more than {max_redirects} redirects, last {req.url}",
                ex.host,
            )
        req = _redirected(req, ex, urljoin(req.url, location))
    raise AssertionError("unreachable: the loop returns or raises")


def _redirected(req: engine.Request, ex: engine.Exchange, url: str) -> engine.Request:
    method, body = req.method, req.body
    if ex.status == 303 or (ex.status in (301, 302) and method == "POST"):
        method, body = "GET", b""
    # A configured SNI name belongs to the original host, not to wherever it redirects.
    same_host = (urlsplit(url).hostname or "") == ex.host
    return engine.Request(
        url=url,
        method=method,
        headers=req.headers,
        body=body,
        max_body_bytes=req.max_body_bytes,
        keep_body_bytes=req.keep_body_bytes,
        server_name=req.server_name if same_host else "",
        ca_pem=req.ca_pem,
        insecure=req.insecure,
    )


def status_ok(spec: CheckSpec, status: int) -> bool:
    codes = spec.http.valid_status_codes
    return status in codes if codes else 200 <= status < 400


def check_assertions(
    spec: CheckSpec, final: engine.Exchange, result: ProbeResult
) -> tuple[FailureClass.ValueType, str] | None:
    opts = spec.http
    try:
        for match in opts.header_regex:
            value = final.header(match.name)
            if value is None:
                return FailureClass.HTTP_ASSERTION, f"header {match.name} missing"
            if not re.search(match.regex, value):
                return (
                    FailureClass.HTTP_ASSERTION,
                    f"header {match.name}: {value[:200]!r} does not match /{match.regex}/",
                )
        text = final.body.decode("utf-8", "replace") if opts.body_contains or opts.body_regex else ""
        if opts.body_contains and opts.body_contains not in text:
            return FailureClass.HTTP_ASSERTION, f"body does not contain {opts.body_contains[:200]!r}"
        if opts.body_regex and not re.search(opts.body_regex, text):
            return FailureClass.HTTP_ASSERTION, f"body does not match /{opts.body_regex[:200]}/"
    except re.error as exc:
        return FailureClass.HTTP_ASSERTION, f"invalid regex: {exc}"
    latency = _hops_total_ms(result)
    if opts.max_latency_ms and latency > opts.max_latency_ms:
        return FailureClass.HTTP_ASSERTION, f"latency {latency:.0f} ms over {opts.max_latency_ms} ms"
    return None


def _hops_total_ms(result: ProbeResult) -> float:
    t = result.timings
    return t.dns_ms + t.connect_ms + t.tls_ms + t.ttfb_ms + t.transfer_ms


def record(result: ProbeResult, hops: list[engine.Exchange], resolver: str = "") -> None:
    """Copy what the exchanges saw into the result; timings are summed over redirect hops."""
    if not hops:
        return
    for ex in hops:
        _copy_timings(ex, result.timings)
    for ex in hops[:-1]:
        hop = result.http.redirects.add(
            url=ex.url,
            status_code=ex.status,
            duration_ms=ex.timings.get("total_ms", 0.0),
            reused_connection=ex.reused,
        )
        _copy_timings(ex, hop.timings)
        hop.timings.total_ms = hop.duration_ms
    last = hops[-1]
    result.http.status_code = last.status
    result.http.http_version = last.version
    result.http.body_bytes = last.body_bytes
    result.http.decoded_bytes = last.decoded_bytes
    result.http.remote_addr = last.remote_addr
    result.http.final_url = last.url
    tls = next((ex.tls for ex in reversed(hops) if ex.tls is not None), None)
    if tls is not None:
        result.tls.CopyFrom(tls)
    if last.addresses:
        result.dns.addresses[:] = last.addresses
        result.dns.resolver = resolver


def _copy_timings(ex: engine.Exchange, into: Timings) -> None:
    """Add the exchange's phases to `into` (summing over hops)."""
    into.dns_ms += ex.timings.get("dns_ms", 0.0)
    into.connect_ms += ex.timings.get("connect_ms", 0.0)
    into.tls_ms += ex.timings.get("tls_ms", 0.0)
    into.ttfb_ms += ex.timings.get("ttfb_ms", 0.0)
    into.transfer_ms += ex.timings.get("transfer_ms", 0.0)


def _target_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
