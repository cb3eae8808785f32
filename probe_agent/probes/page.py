"""page probe: load an HTML page and every sub-resource a browser would fetch for it.

1. The document is fetched like the http probe (redirects, TLS chain, status check); if that
   fails the probe fails with the document's class.
2. The HTML is parsed with selectolax: img src/srcset, picture source srcset, script src,
   link rel=stylesheet/icon/preload (and apple-touch-icon), inline <style> url(); same- and
   cross-origin alike, <base href> honoured. Fetched stylesheets are scanned for url() and
   @import one level deep (resources found there are not parsed further).
3. Sub-resources are fetched as a browser fetches them, over the page load's own connection
   pool (the engine's session, shared with the document): one multiplexed HTTP/2 connection
   per origin where the server offers h2, otherwise keep-alive HTTP/1.1 connections, at most
   `PER_HOST_CONNECTIONS` (6, as browsers) requests and so connections per origin, and `page.
   concurrency` requests in flight overall (see `_ConnectionPool`). A fresh TCP+TLS handshake
   per asset would cost a 30-asset page 31 handshakes per run, which no user's browser pays.
   The document opens the first connection with full phase timings, like the http probe. Every
   new connection's TLS chain is judged, so an asset host with an expired certificate fails each
   of its assets with `tls_cert_expired` (one per asset, as counted before). All of it runs
   under a total time budget (`page.budget`, default and upper bound: the check timeout minus
   a margin so the verdict is written before the deadline), a cap on the resource count and
   on total bytes. A resource still loading when the budget ends fails with `timeout`;
   resources never started because of a cap or the budget are not failures but set
   `page.truncated`.

Verdict: document OK and every sub-resource OK -> success. Document OK and some
sub-resources failing -> OUTCOME_PARTIAL, and for the verdict engine's `cause`:
`failure_class` is the dominant sub-resource failure class (e.g. tls_cert_expired, not a
generic subresource_failed), `failure_host` the host with the most failures of that class,
`error` a sample message naming the URL; on a tie in counts the lower class number wins (DNS,
then TCP, then TLS, before HTTP-level classes: the more basic breakage is the likelier cause).
`page.failed_hosts` has one entry per (host, failure class), most failures first, each with a
count, a sample URL and a sample error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from probe_agent.probes import engine, http
from probe_agent.probes.base import set_phase, timeout_s
from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

DEFAULT_MAX_RESOURCES = 200
DEFAULT_MAX_TOTAL_BYTES = 20 * 1024 * 1024
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
PER_HOST_CONNECTIONS = 6  # what browsers open per origin for HTTP/1.1
DOCUMENT_KEEP_BYTES = 2 * 1024 * 1024
CSS_KEEP_BYTES = 512 * 1024
SUBRESOURCE_MAX_REDIRECTS = 5
_LINK_RELS = {"stylesheet", "icon", "shortcut", "preload", "apple-touch-icon", "modulepreload"}
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+?)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)


class _ConnectionPool:
    """Request slots of one page load over the engine session's connections.

    A request first takes its origin's slot (at most `per_host` in flight, hence at most that
    many HTTP/1.1 connections: the pool opens one only when none is idle; over h2 they share
    one), then a global slot (at most `concurrency` requests in flight). Slots are held for one
    exchange, never while waiting for another slot, so there is no deadlock whatever the
    redirects. A chain that failed verification fails the origin's later requests with the same
    class without another handshake (each asset still counts as one failure). With `reuse` off every request gets a session and so a connection of its own,
    which is how the probe worked before (kept as the benchmark's baseline).
    """

    def __init__(self, session: engine.Session, *, concurrency: int, per_host: int, reuse: bool) -> None:
        self.session = session
        self.per_host = per_host
        self.reuse = reuse
        self.requests = asyncio.Semaphore(concurrency)
        self.opened = 0
        self.reused = 0
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._chain_failures: dict[tuple[str, str, int], ProbeFailure] = {}

    def slot(self, url: str) -> asyncio.Semaphore:
        key = _origin(url)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.per_host)
        return slots

    async def exchange(self, req: engine.Request, ex: engine.Exchange) -> engine.Exchange:
        """One request/response on an idle connection of the origin, else on a new one."""
        if not self.reuse:
            own = engine.Session(self.session.ctx, self.session.spec, max_keepalive=0)
            self.opened += 1
            try:
                return await engine.exchange(own, req, ex)
            finally:
                await own.aclose()
        origin = _origin(req.url)
        known = self._chain_failures.get(origin)
        if known is not None:
            ex.host = origin[1]
            raise ProbeFailure(known.failure_class, known.message, known.host)
        try:
            await engine.exchange(self.session, req, ex)
        except ProbeFailure as exc:
            tls = ex.tls
            if tls is not None and not tls.verified and exc.failure_class == tls.verify_class:
                self._chain_failures[origin] = exc  # the same chain fails the next connection too
            raise
        if ex.reused:
            self.reused += 1
        else:
            self.opened += 1
        return ex


@dataclass
class _Failure:
    url: str
    host: str
    failure_class: FailureClass.ValueType
    message: str


@dataclass
class _PageRun:
    """State of one page's sub-resource fetches."""

    spec: CheckSpec
    ctx: ProbeContext
    max_resources: int
    bytes_left: int
    pool: _ConnectionPool | None = None
    seen: set[str] = field(default_factory=set)
    started: int = 0
    in_flight: dict[str, str] = field(default_factory=dict)  # url -> host
    failures: list[_Failure] = field(default_factory=list)
    bytes_total: int = 0
    truncated: bool = False


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    await load_page(spec, ctx, result)


async def load_page(
    spec: CheckSpec, ctx: ProbeContext, result: ProbeResult, *, reuse_connections: bool = True
) -> tuple[int, int]:
    """The page probe; returns (connections opened, connections reused) for the sub-resources."""
    start = time.monotonic()
    opts = spec.page
    concurrency = min(opts.concurrency or DEFAULT_CONCURRENCY, MAX_CONCURRENCY)
    session = engine.Session(ctx, spec, max_keepalive=2 * concurrency)
    try:
        return await _load_with(session, start, concurrency, result, reuse_connections)
    finally:
        await session.aclose()


async def _load_with(
    session: engine.Session, start: float, concurrency: int, result: ProbeResult, reuse_connections: bool
) -> tuple[int, int]:
    spec, ctx, opts = session.spec, session.ctx, session.spec.page
    document = await http.fetch_document(spec, ctx, result, DOCUMENT_KEEP_BYTES, session)
    if document is None:
        return 0, 0
    run = _PageRun(
        spec=spec,
        ctx=ctx,
        max_resources=opts.max_resources or DEFAULT_MAX_RESOURCES,
        bytes_left=(opts.max_total_bytes or DEFAULT_MAX_TOTAL_BYTES) - document.body_bytes,
    )
    run.bytes_total = document.body_bytes
    urls = extract_resources(document.body, document.url)
    set_phase("subresources")
    deadline = start + _budget_s(spec)
    pool = run.pool = _ConnectionPool(
        session,
        concurrency=concurrency,
        per_host=min(concurrency, PER_HOST_CONNECTIONS) if reuse_connections else concurrency,
        reuse=reuse_connections,
    )
    await _fetch_all(run, urls, deadline)
    _report(run, result)
    return pool.opened, pool.reused


def _budget_s(spec: CheckSpec) -> float:
    timeout = timeout_s(spec)
    # Finish early enough to write the verdict ourselves rather than be cut by run_probe.
    usable = timeout - min(0.25, timeout * 0.1)
    budget = spec.page.budget.ToMilliseconds() / 1000.0
    return min(budget, usable) if budget > 0 else usable


async def _fetch_all(run: _PageRun, urls: Iterable[str], deadline: float) -> None:
    remaining = deadline - time.monotonic()
    try:
        async with asyncio.timeout(max(remaining, 0.0)), asyncio.TaskGroup() as group:
            _spawn(run, group, urls, parse_css=True)
    except TimeoutError:
        run.truncated = True
        for url, host in run.in_flight.items():
            run.failures.append(
                _Failure(url, host, FailureClass.TIMEOUT, f"still loading when the page budget ended: {url}")
            )


def _spawn(run: _PageRun, group: asyncio.TaskGroup, urls: Iterable[str], *, parse_css: bool) -> None:
    for url in urls:
        if url in run.seen:
            continue
        if len(run.seen) >= run.max_resources:
            run.truncated = True
            return
        run.seen.add(url)
        group.create_task(_fetch_one(run, group, url, parse_css))


async def _fetch_one(run: _PageRun, group: asyncio.TaskGroup, url: str, parse_css: bool) -> None:
    host = _host(url)
    keep = CSS_KEEP_BYTES if parse_css and _maybe_css(url) else 0
    hops: list[engine.Exchange] = []
    try:
        final = await _load(run, url, keep, hops)
    except ProbeFailure as exc:
        run.in_flight.pop(url, None)
        if exc.failure_class == FailureClass.BODY_TOO_LARGE:
            run.truncated = True  # our byte cap, not the site's fault
        else:
            run.failures.append(_Failure(url, exc.host or host, exc.failure_class, exc.message))
        return
    finally:
        # Not in_flight here: a resource cut by the budget must stay listed as in flight.
        received = sum(ex.body_bytes for ex in hops)
        run.bytes_total += received
        run.bytes_left -= received
    if final is None:
        return
    run.in_flight.pop(url, None)
    if final.status >= 400:
        run.failures.append(
            _Failure(url, final.host, FailureClass.HTTP_STATUS, f"status {final.status} for {url}")
        )
        return
    if keep and final.body and _is_css(final):
        _spawn(run, group, css_urls(final.body.decode("utf-8", "replace"), final.url), parse_css=False)


async def _load(run: _PageRun, url: str, keep: int, hops: list[engine.Exchange]) -> engine.Exchange | None:
    """GET url and its redirects, each hop appended to `hops`; None when the byte cap left no room
    to start. Raises ProbeFailure (with the host concerned) for every way the fetch can fail."""
    assert run.pool is not None
    pool = run.pool
    req: engine.Request | None = None
    for hop in range(SUBRESOURCE_MAX_REDIRECTS + 1):
        async with pool.slot(req.url if req else url), pool.requests:
            if req is None:
                if run.bytes_left <= 0:
                    run.truncated = True
                    return None
                run.started += 1
                run.in_flight[url] = _host(url)
                req = engine.Request(
                    url=url,
                    max_body_bytes=run.bytes_left,
                    keep_body_bytes=keep,
                    ca_pem=run.spec.tls.ca_pem,
                    insecure=run.spec.tls.insecure_skip_verify,
                )
            ex = engine.Exchange(url=req.url)
            hops.append(ex)
            await engine.exchange_or_fail(pool.exchange(req, ex), ex)
        location = ex.header("location")
        if ex.status not in _REDIRECTS or not location:
            return ex
        if hop == SUBRESOURCE_MAX_REDIRECTS:
            raise ProbeFailure(
                FailureClass.HTTP_TOO_MANY_REDIRECTS,
                f"more than {SUBRESOURCE_MAX_REDIRECTS} redirects, last {req.url}",
                ex.host,
            )
        req = dataclasses.replace(req, url=urljoin(req.url, location))
    raise AssertionError("unreachable: the loop returns or raises")


def _report(run: _PageRun, result: ProbeResult) -> None:
    page = result.page
    page.resources_total = run.started
    page.resources_failed = len(run.failures)
    page.bytes_total = run.bytes_total
    page.truncated = run.truncated
    if not run.failures:
        return
    # Ties go to the lower class number: DNS, then TCP, then TLS, before HTTP-level classes.
    groups = sorted(
        Counter((f.host, f.failure_class) for f in run.failures).items(),
        key=lambda item: (-item[1], item[0][1], item[0][0]),
    )
    for (host, failure_class), count in groups:
        sample = next(f for f in run.failures if f.host == host and f.failure_class == failure_class)
        page.failed_hosts.add(
            host=host,
            failure_class=failure_class,
            count=count,
            sample_url=sample.url,
            sample_error=sample.message[:500],
        )
    by_class = Counter(f.failure_class for f in run.failures)
    dominant_class = min(by_class, key=lambda cls: (-by_class[cls], cls))
    host = next(h for (h, cls), _ in groups if cls == dominant_class)
    sample = next(f for f in run.failures if f.host == host and f.failure_class == dominant_class)
    result.outcome = Outcome.OUTCOME_PARTIAL
    result.failure_class = dominant_class
    result.failure_host = host
    result.error = (
        f"{len(run.failures)} of {run.started} sub-resources failed; {sample.message} ({sample.url})"[:1000]
    )


def extract_resources(html: bytes, base_url: str) -> list[str]:
    """Absolute http(s) URLs of the sub-resources a browser would load, in document order, unique."""
    tree = LexborHTMLParser(html)
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = urljoin(base_url, base.attributes.get("href") or "")
    found: list[str] = []
    for node in tree.css("img, source, script[src], link[href], style"):
        attrs = node.attributes
        if node.tag == "style":
            found.extend(css_urls(node.text() or "", base_url))
            continue
        if node.tag == "link":
            rels = set((attrs.get("rel") or "").lower().split())
            if rels & _LINK_RELS:
                found.append(urljoin(base_url, (attrs.get("href") or "").strip()))
            continue
        if attrs.get("src"):
            found.append(urljoin(base_url, (attrs.get("src") or "").strip()))
        if attrs.get("srcset"):
            found.extend(urljoin(base_url, u) for u in parse_srcset(attrs.get("srcset") or ""))
    return _unique_http(found)


def parse_srcset(srcset: str) -> list[str]:
    urls = []
    for candidate in srcset.split(","):
        parts = candidate.strip().split()
        if parts:
            urls.append(parts[0])
    return urls


def css_urls(css: str, base_url: str) -> list[str]:
    found = [urljoin(base_url, (m.group(2) or m.group(4) or "").strip()) for m in _CSS_URL.finditer(css)]
    return _unique_http(found)


def _unique_http(urls: Iterable[str]) -> list[str]:
    out: dict[str, None] = {}
    for raw in urls:
        url = raw.split("#", 1)[0]
        if url.startswith(("http://", "https://")):
            out[url] = None
    return list(out)


def _maybe_css(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith(".css") or "." not in path.rsplit("/", 1)[-1]


def _is_css(ex: engine.Exchange) -> bool:
    ctype = (ex.header("content-type") or "").lower()
    return "text/css" in ctype or (not ctype and urlsplit(ex.url).path.lower().endswith(".css"))


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port); a URL too broken to parse gets an origin of its own and fails later."""
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "", url, 0


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
