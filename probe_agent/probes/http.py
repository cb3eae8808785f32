"""http probe: one request (following redirects) with phase timings and status check."""

from __future__ import annotations

from urllib.parse import urljoin

from probe_agent.probes import http1
from probe_agent.probes.base import fail
from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, ProbeResult

DEFAULT_MAX_REDIRECTS = 10
DEFAULT_MAX_BODY = 10 * 1024 * 1024


def _status_ok(spec: CheckSpec, status: int) -> bool:
    codes = spec.http.valid_status_codes
    return status in codes if codes else 200 <= status < 400


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    opts = spec.http
    url = spec.target
    max_redirects = opts.max_redirects or DEFAULT_MAX_REDIRECTS
    sslctx = ctx.ssl_context(spec.tls.ca_pem, spec.tls.insecure_skip_verify)
    request = http1.Request(
        url=url,
        method=opts.method or "GET",
        headers=tuple(opts.headers.items()),
        body=opts.body.encode(),
        max_body_bytes=opts.max_body_bytes or DEFAULT_MAX_BODY,
        ssl_context=sslctx,
    )
    for hop in range(max_redirects + 1):
        ex = http1.Exchange(url=url)
        try:
            await http1.exchange(request, ctx, spec, ex)
        except ProbeFailure as exc:
            _record(result, ex)
            fail(result, exc.failure_class, exc.message, exc.host or ex.host)
            return
        except Exception as exc:
            _record(result, ex)
            failure_class, message = classify(exc, ex.phase)
            fail(result, failure_class, message, ex.host)
            if isinstance(exc, TimeoutError):
                raise
            return
        _record(result, ex)
        location = ex.header("location")
        if 300 <= ex.status < 400 and location and not opts.no_follow_redirects:
            if hop == max_redirects:
                fail(result, FailureClass.HTTP_TOO_MANY_REDIRECTS, f"more than {max_redirects} redirects", ex.host)
                return
            url = urljoin(url, location)
            result.http.redirects.add(url=url, status_code=ex.status, duration_ms=ex.timings.get("total_ms", 0.0))
            request = http1.Request(**{**request.__dict__, "url": url})
            continue
        break
    if not _status_ok(spec, result.http.status_code):
        fail(result, FailureClass.HTTP_STATUS, f"unexpected status {result.http.status_code}", ex.host)


def _record(result: ProbeResult, ex: http1.Exchange) -> None:
    """Copy what the exchange saw into the result; timings accumulate over redirect hops."""
    t = result.timings
    t.dns_ms += ex.timings.get("dns_ms", 0.0)
    t.connect_ms += ex.timings.get("connect_ms", 0.0)
    t.tls_ms += ex.timings.get("tls_ms", 0.0)
    t.ttfb_ms += ex.timings.get("ttfb_ms", 0.0)
    t.transfer_ms += ex.timings.get("transfer_ms", 0.0)
    result.http.status_code = ex.status
    result.http.http_version = ex.version
    result.http.body_bytes = ex.body_bytes
    result.http.remote_addr = ex.remote_addr
    result.http.final_url = ex.url
