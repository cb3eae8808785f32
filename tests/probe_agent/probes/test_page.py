"""page probe: sub-resources over several hosts, one broken in each way a real site breaks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from probe_agent.probes.context import ProbeContext
from probe_agent.probes.page import _Failure, _PageRun, _report, css_urls, extract_resources, parse_srcset
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki, run_check, spec_for
from tests.probe_agent.probes.servers import Routes, TcpServer, hang, http_handler, serving

HOSTS = ("shop.test", "static.test", "cdn.test", "img.test")
RESOLVE = dict.fromkeys(HOSTS, "127.0.0.1")


@contextlib.contextmanager
def https_site(
    pki: Pki, tmp_path: Path, host: str, routes: Routes, *, expired: bool = False
) -> Iterator[TcpServer]:
    kwargs = {"not_before": NOW - 100 * DAY, "not_after": NOW - DAY} if expired else {}
    with serving(http_handler(routes), pki.leaf(host, **kwargs).server_context(tmp_path, host)) as server:
        yield server


def _asset_routes(count: int) -> Routes:
    routes = Routes()
    for i in range(count):
        routes.add(f"/asset{i}.png", b"\x89PNG" + bytes(100))
    return routes


def test_thirty_assets_over_three_hosts_one_expired_is_partial(pki: Pki, tmp_path: Path) -> None:
    with (
        https_site(pki, tmp_path, "static.test", _asset_routes(10)) as static,
        https_site(pki, tmp_path, "cdn.test", _asset_routes(10), expired=True) as cdn,
        https_site(pki, tmp_path, "img.test", _asset_routes(10)) as img,
    ):
        tags = [
            f'<img src="https://{host}:{srv.port}/asset{i}.png">'
            for host, srv in (("static.test", static), ("cdn.test", cdn), ("img.test", img))
            for i in range(10)
        ]
        page = Routes().add("/", "<html><body>" + "".join(tags) + "</body></html>", Content_Type="text/html")
        with https_site(pki, tmp_path, "shop.test", page) as shop:
            result = run_check(
                "page",
                f"https://shop.test:{shop.port}/",
                timeout_s=5.0,
                resolve=RESOLVE,
                tls={"ca_pem": pki.ca_pem},
            )
    assert result.outcome == Outcome.OUTCOME_PARTIAL, result.error
    assert result.failure_class == FailureClass.TLS_CERT_EXPIRED
    assert result.failure_host == "cdn.test"
    assert "cdn.test" in result.error
    assert (result.page.resources_total, result.page.resources_failed) == (30, 10)
    [group] = result.page.failed_hosts
    assert (group.host, group.failure_class, group.count) == ("cdn.test", FailureClass.TLS_CERT_EXPIRED, 10)
    assert group.sample_url.startswith(f"https://cdn.test:{cdn.port}/asset")
    assert not result.page.truncated
    assert result.http.status_code == 200 and result.tls.verified


def test_missing_assets_are_http_status_failures(pki: Pki, tmp_path: Path) -> None:
    html = '<img src="/logo.png"><script src="/app.js"></script><img src="/gone.png"><img src="/gone2.png">'
    routes = Routes().add("/", html).add("/logo.png", b"png").add("/app.js", "js")
    with https_site(pki, tmp_path, "shop.test", routes) as shop:
        result = run_check(
            "page", f"https://shop.test:{shop.port}/", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem}
        )
    assert result.outcome == Outcome.OUTCOME_PARTIAL
    assert (result.failure_class, result.failure_host) == (FailureClass.HTTP_STATUS, "shop.test")
    assert (result.page.resources_total, result.page.resources_failed) == (4, 2)
    assert result.page.failed_hosts[0].count == 2
    assert "404" in result.page.failed_hosts[0].sample_error


def test_srcset_stylesheets_and_css_urls_are_followed_one_level() -> None:
    html = """<html><head>
      <link rel="stylesheet" href="/css/site.css"><link rel="icon" href="/favicon.ico">
      <link rel="preload" href="/font.woff2" as="font"><link rel="canonical" href="/elsewhere">
      <style>body { background: url('/inline-bg.png') }</style>
    </head><body>
      <img src="/small.png" srcset="/small.png 1x, /large.png 2x">
      <picture><source srcset="/hero.webp 800w, /hero-2x.webp 1600w"></picture>
      <a href="/not-a-resource">link</a><img src="data:image/png;base64,AAAA">
    </body></html>"""
    css = '@import url(/css/extra.css); .logo { background: url("../img/logo.svg") } @font-face { src: url(/f.woff) }'
    deeper = ".x { background: url(/never-fetched.png) }"
    routes = (
        Routes().add("/", html, Content_Type="text/html").add("/css/site.css", css, Content_Type="text/css")
    )
    routes.add("/css/extra.css", deeper, Content_Type="text/css")
    for path in (
        "/favicon.ico",
        "/font.woff2",
        "/inline-bg.png",
        "/small.png",
        "/large.png",
        "/hero.webp",
        "/hero-2x.webp",
        "/img/logo.svg",
        "/f.woff",
    ):
        routes.add(path, b"x")
    with serving(http_handler(routes)) as server:
        result = run_check("page", f"http://127.0.0.1:{server.port}/")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    fetched = set(routes.seen)
    expected = {
        "/",
        "/css/site.css",
        "/css/extra.css",
        "/favicon.ico",
        "/font.woff2",
        "/inline-bg.png",
        "/small.png",
        "/large.png",
        "/hero.webp",
        "/hero-2x.webp",
        "/img/logo.svg",
        "/f.woff",
    }
    assert fetched == expected
    assert result.page.resources_total == len(expected) - 1
    assert result.page.bytes_total > 0


def test_hanging_asset_host_is_cut_by_the_budget(pki: Pki, tmp_path: Path) -> None:
    hanging = TcpServer(hang)
    try:
        html = f'<img src="/ok.png"><img src="http://cdn.test:{hanging.port}/slow.png">'
        routes = Routes().add("/", html).add("/ok.png", b"x")
        with serving(http_handler(routes)) as server:
            result = run_check(
                "page",
                f"http://shop.test:{server.port}/",
                timeout_s=5.0,
                resolve=RESOLVE,
                page={"budget": "0.5s"},
            )
    finally:
        hanging.close()
    assert result.outcome == Outcome.OUTCOME_PARTIAL, result.error
    assert (result.failure_class, result.failure_host) == (FailureClass.TIMEOUT, "cdn.test")
    assert result.page.truncated
    assert (result.page.resources_total, result.page.resources_failed) == (2, 1)


def test_resource_cap_truncates_without_failing() -> None:
    routes = Routes().add("/", "".join(f'<img src="/i{i}.png">' for i in range(20)))
    for i in range(20):
        routes.add(f"/i{i}.png", b"x")
    with serving(http_handler(routes)) as server:
        result = run_check(
            "page", f"http://127.0.0.1:{server.port}/", page={"max_resources": 5, "concurrency": 2}
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS
    assert result.page.truncated and result.page.resources_total == 5
    assert len(routes.seen) == 6


def test_document_failure_fails_the_page() -> None:
    routes = Routes().add("/", "down", 500)
    with serving(http_handler(routes)) as server:
        result = run_check("page", f"http://127.0.0.1:{server.port}/")
    assert result.outcome == Outcome.OUTCOME_FAILED
    assert result.failure_class == FailureClass.HTTP_STATUS


def test_extractors() -> None:
    html = b'<base href="https://cdn.test/v2/"><img src="a.png"><script src="//other.test/x.js"></script>'
    assert extract_resources(html, "https://shop.test/") == [
        "https://cdn.test/v2/a.png",
        "https://other.test/x.js",
    ]
    assert parse_srcset(" a.png 1x,b.png  2x , c.png") == ["a.png", "b.png", "c.png"]
    assert css_urls("a{b:url( 'x.png' )} @import 'y.css'; c{d:url(data:foo)}", "http://h/s/") == [
        "http://h/s/x.png",
        "http://h/s/y.css",
    ]


def test_dominant_class_and_host_with_ties_broken_towards_lower_layers() -> None:
    run = _PageRun(
        spec=spec_for("page", "https://shop.test/"), ctx=ProbeContext(), max_resources=10, bytes_left=0
    )
    run.started = 5
    run.failures = [
        _Failure("https://a.test/1", "a.test", FailureClass.HTTP_STATUS, "status 404"),
        _Failure("https://b.test/1", "b.test", FailureClass.TLS_CERT_EXPIRED, "expired"),
        _Failure("https://c.test/1", "c.test", FailureClass.TLS_CERT_EXPIRED, "expired"),
        _Failure("https://a.test/2", "a.test", FailureClass.HTTP_STATUS, "status 404"),
    ]
    result = ProbeResult()
    _report(run, result)
    assert result.outcome == Outcome.OUTCOME_PARTIAL
    assert (result.failure_class, result.failure_host) == (FailureClass.TLS_CERT_EXPIRED, "b.test")
    assert [(g.host, g.count) for g in result.page.failed_hosts] == [
        ("a.test", 2),
        ("b.test", 1),
        ("c.test", 1),
    ]
    assert (result.page.resources_total, result.page.resources_failed) == (5, 4)


def test_byte_cap_truncates_without_failing() -> None:
    routes = Routes().add("/", "".join(f'<img src="/big{i}.png">' for i in range(6)))
    for i in range(6):
        routes.add(f"/big{i}.png", bytes(40_000))
    with serving(http_handler(routes)) as server:
        result = run_check(
            "page", f"http://127.0.0.1:{server.port}/", page={"max_total_bytes": 100_000, "concurrency": 1}
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.page.truncated
    # What was really received: the cap stops reading within one 64 KiB chunk of the limit.
    assert 100_000 < result.page.bytes_total <= 100_000 + 64 * 1024
    assert result.page.resources_total == 3
    assert result.page.resources_failed == 0
