"""http probe against real loopback servers: phases, assertions, redirects and hostile targets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki, run_check
from tests.probe_agent.probes.servers import (
    DnsServer,
    HttpRequest,
    Routes,
    blackhole,
    closed_port,
    http_handler,
    huge_body,
    huge_headers,
    reset_after_request,
    respond,
    serving,
    slow_drip,
    tls_garbage,
)

HOST = "web.test"
RESOLVE = {HOST: "127.0.0.1"}


def _site() -> Routes:
    return (
        Routes()
        .add("/", "hello probenet", Server="unit", X_Build="2026.11")
        .add("/a", b"", 302, Location="/b")
        .add("/b", b"", 301, Location="/c")
        .add("/c", "arrived")
        .add("/loop", b"", 302, Location="/loop")
        .add("/missing", "nope", 404)
        .add("/broken", "oops", 503)
        .add("/moved", b"", 302, Location="/")
    )


@pytest.fixture
def site() -> Routes:
    return _site()


def test_https_success_records_phases_and_tls(pki: Pki, tmp_path: Path, site: Routes) -> None:
    ctx = pki.leaf(HOST).server_context(tmp_path, "web")
    with serving(http_handler(site), ctx) as server:
        result = run_check(
            "http", f"https://{HOST}:{server.port}/", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem}
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    http, t = result.http, result.timings
    assert (http.status_code, http.http_version, http.body_bytes) == (200, "HTTP/1.1", len(b"hello probenet"))
    assert http.remote_addr == f"127.0.0.1:{server.port}"
    assert http.final_url == f"https://{HOST}:{server.port}/"
    assert t.connect_ms > 0 and t.tls_ms > 0 and t.ttfb_ms > 0 and t.total_ms >= t.tls_ms
    assert result.tls.verified and result.tls.version == "TLSv1.3" and len(result.tls.chain) == 2
    assert result.tls.days_left > 80


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_https_expired_fails_with_chain_and_sends_nothing(
    pki: Pki, tmp_path: Path, site: Routes, loop: str
) -> None:
    leaf = pki.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    with serving(http_handler(site), leaf.server_context(tmp_path, "expired")) as server:
        result = run_check(
            "http", f"https://{HOST}:{server.port}/", loop=loop, resolve=RESOLVE, tls={"ca_pem": pki.ca_pem}
        )
    assert result.failure_class == FailureClass.TLS_CERT_EXPIRED
    assert result.failure_host == HOST
    assert result.tls.verify_class == FailureClass.TLS_CERT_EXPIRED
    assert len(result.tls.chain) == 2 and result.tls.days_left < 0
    assert site.seen == []  # nothing was sent over the unverified connection


@pytest.mark.parametrize(
    ("options", "path", "expected"),
    [
        ({"valid_status_codes": [200]}, "/", FailureClass.NONE),
        ({"valid_status_codes": [201, 204]}, "/", FailureClass.HTTP_STATUS),
        ({"valid_status_codes": [404]}, "/missing", FailureClass.NONE),
        ({"body_contains": "probenet"}, "/", FailureClass.NONE),
        ({"body_contains": "goodbye"}, "/", FailureClass.HTTP_ASSERTION),
        ({"body_regex": r"^hello \w+$"}, "/", FailureClass.NONE),
        ({"body_regex": r"^bye"}, "/", FailureClass.HTTP_ASSERTION),
        ({"header_regex": [{"name": "X-Build", "regex": r"^2026\."}]}, "/", FailureClass.NONE),
        ({"header_regex": [{"name": "x-build", "regex": r"^1999"}]}, "/", FailureClass.HTTP_ASSERTION),
        ({"header_regex": [{"name": "X-Absent", "regex": "."}]}, "/", FailureClass.HTTP_ASSERTION),
        ({"max_latency_ms": 60_000}, "/", FailureClass.NONE),
        ({"body_regex": "("}, "/", FailureClass.HTTP_ASSERTION),
    ],
)
def test_assertions(
    options: dict[str, object], path: str, expected: FailureClass.ValueType, site: Routes
) -> None:
    with serving(http_handler(site)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}{path}", http=options)
    assert result.failure_class == expected, result.error
    if expected != FailureClass.NONE:
        assert result.outcome == Outcome.OUTCOME_FAILED and result.error


def test_max_latency_assertion_fails_on_a_slow_answer() -> None:
    def slow(conn: socket.socket, req: HttpRequest) -> None:
        time.sleep(0.05)
        respond(conn, 200, b"late")

    with serving(http_handler(slow)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", http={"max_latency_ms": 1})
    assert result.failure_class == FailureClass.HTTP_ASSERTION
    assert "latency" in result.error


def test_status_4xx_and_5xx(site: Routes) -> None:
    with serving(http_handler(site)) as server:
        missing = run_check("http", f"http://127.0.0.1:{server.port}/missing")
        broken = run_check("http", f"http://127.0.0.1:{server.port}/broken")
    assert (missing.failure_class, missing.http.status_code) == (FailureClass.HTTP_STATUS, 404)
    assert (broken.failure_class, broken.http.status_code) == (FailureClass.HTTP_STATUS, 503)
    assert broken.failure_host == "127.0.0.1"


def test_redirect_chain_is_recorded_hop_by_hop() -> None:
    site = _site()
    with serving(http_handler(site)) as server:
        site.add("/b", b"", 301, Location=f"http://{HOST}:{server.port}/c")
        result = run_check("http", f"http://{HOST}:{server.port}/a", resolve=RESOLVE)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    hops = [(h.url, h.status_code) for h in result.http.redirects]
    base = f"http://{HOST}:{server.port}"
    assert hops == [(f"{base}/a", 302), (f"{base}/b", 301)]
    assert result.http.final_url == f"{base}/c"
    assert all(h.duration_ms > 0 for h in result.http.redirects)
    assert site.seen == ["/a", "/b", "/c"]


def test_redirect_loop_is_capped(site: Routes) -> None:
    with serving(http_handler(site)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/loop", http={"max_redirects": 3})
    assert result.failure_class == FailureClass.HTTP_TOO_MANY_REDIRECTS
    assert len(result.http.redirects) == 3
    assert len(site.seen) == 4


def test_no_follow_redirects_reports_the_redirect(site: Routes) -> None:
    with serving(http_handler(site)) as server:
        result = run_check(
            "http", f"http://127.0.0.1:{server.port}/moved", http={"no_follow_redirects": True}
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS
    assert result.http.status_code == 302
    assert site.seen == ["/moved"]


def test_method_headers_and_body_are_sent() -> None:
    seen: list[HttpRequest] = []

    def echo(conn: socket.socket, req: HttpRequest) -> None:
        seen.append(req)
        respond(conn, 201, b"created")

    with serving(http_handler(echo)) as server:
        result = run_check(
            "http",
            f"http://127.0.0.1:{server.port}/items?x=1",
            http={"method": "post", "headers": {"X-Token": "abc"}, "body": "{}", "valid_status_codes": [201]},
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert (seen[0].method, seen[0].path) == ("POST", "/items?x=1")
    assert seen[0].headers["x-token"] == "abc" and seen[0].headers["content-length"] == "2"


def test_ipv4_preference_with_the_system_resolver(site: Routes) -> None:
    with serving(http_handler(site)) as server:
        result = run_check("http", f"http://localhost:{server.port}/", ip_version="4")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.http.remote_addr == f"127.0.0.1:{server.port}"
    assert result.dns.addresses == ["127.0.0.1"]


def test_refused() -> None:
    result = run_check("http", f"http://127.0.0.1:{closed_port()}/")
    assert result.failure_class == FailureClass.TCP_REFUSED
    assert result.failure_host == "127.0.0.1"


def test_local_dns_server_resolves_and_reports_nxdomain(site: Routes, dns_server: DnsServer) -> None:
    with serving(http_handler(site)) as server:
        ok = run_check("http", f"http://ok.test:{server.port}/", dns_server=dns_server.address)
        missing = run_check("http", f"http://missing.test:{server.port}/", dns_server=dns_server.address)
    assert ok.outcome == Outcome.OUTCOME_SUCCESS, ok.error
    assert list(ok.dns.addresses) == ["127.0.0.1"] and ok.dns.resolver == dns_server.address
    assert missing.failure_class == FailureClass.DNS_NXDOMAIN
    assert missing.failure_host == "missing.test"


def test_silent_dns_server_is_a_dns_timeout() -> None:
    server = DnsServer({}, silent=True)
    try:
        result = run_check("http", "http://ok.test/", timeout_s=1.0, dns_server=server.address)
    finally:
        server.close()
    assert result.failure_class == FailureClass.DNS_TIMEOUT


# Hostile targets: each ends within the deadline with its own class. --------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_blackhole_is_a_tcp_timeout(loop: str) -> None:
    with blackhole() as port:
        result = run_check("http", f"http://127.0.0.1:{port}/", timeout_s=1.0, loop=loop)
    assert result.failure_class == FailureClass.TCP_TIMEOUT, result.error
    assert result.failure_host == "127.0.0.1"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_reset(loop: str) -> None:
    with serving(http_handler(reset_after_request)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", loop=loop)
    assert result.failure_class == FailureClass.TCP_RESET, result.error


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_slow_drip_hits_the_deadline(loop: str) -> None:
    with serving(http_handler(slow_drip)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", timeout_s=0.5, loop=loop)
    assert result.failure_class == FailureClass.TIMEOUT
    assert "transfer" in result.error
    assert result.http.status_code == 200 and result.timings.ttfb_ms > 0


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_huge_body_is_capped_not_buffered(loop: str) -> None:
    before = _rss_kib()
    with serving(http_handler(huge_body)) as server:
        result = run_check(
            "http", f"http://127.0.0.1:{server.port}/", loop=loop, http={"max_body_bytes": 50_000_000}
        )
    assert result.failure_class == FailureClass.BODY_TOO_LARGE
    assert 50_000_000 < result.http.body_bytes < 51_000_000
    assert _rss_kib() - before < 64 * 1024


def test_huge_headers_are_capped() -> None:
    with serving(http_handler(huge_headers)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/")
    assert result.failure_class == FailureClass.HEADERS_TOO_LARGE


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_garbage_on_https(loop: str) -> None:
    with serving(tls_garbage) as server:
        result = run_check("http", f"https://127.0.0.1:{server.port}/", loop=loop)
    assert result.failure_class == FailureClass.TLS_HANDSHAKE, result.error
    assert result.failure_host == "127.0.0.1"


def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    def chunked(conn: socket.socket, req: HttpRequest) -> None:
        if req.path == "/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            conn.sendall(head + b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")

    with serving(http_handler(chunked)) as server:
        first = run_check(
            "http", f"http://127.0.0.1:{server.port}/chunked", http={"body_contains": "hello, world"}
        )
        second = run_check("http", f"http://127.0.0.1:{server.port}/eof", http={"body_regex": "the end$"})
    assert first.outcome == Outcome.OUTCOME_SUCCESS, first.error
    assert first.http.body_bytes == len("hello, world")
    assert second.outcome == Outcome.OUTCOME_SUCCESS, second.error
    assert (second.http.http_version, second.http.body_bytes) == ("HTTP/1.0", len("until the end"))


@pytest.mark.parametrize(
    "response",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_malformed_responses_are_protocol_errors(response: bytes) -> None:
    def bad(conn: socket.socket, req: HttpRequest) -> None:
        conn.sendall(response)

    with serving(http_handler(bad)) as server:
        result = run_check("http", f"http://127.0.0.1:{server.port}/")
    assert result.failure_class == FailureClass.HTTP_PROTOCOL, result.error
