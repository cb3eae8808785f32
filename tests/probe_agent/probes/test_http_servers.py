"""The http and page probes against real servers: Debian's nginx, Apache, Caddy and nghttpd on
loopback (see webservers.py), and small hand-made servers for what those cannot be told to do
(interim responses, huge headers, bare LF, a blackholed first address)."""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe_agent.probes.context import ProbeContext
from probe_agent.probes.page import load_page
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.probe_agent.probes import webservers
from tests.probe_agent.probes.conftest import Pki, run_check, spec_for
from tests.probe_agent.probes.servers import (
    DnsServer,
    HttpRequest,
    Routes,
    TcpServer,
    blackhole,
    http_handler,
)

HOST = "web.test"
RESOLVE = {HOST: "127.0.0.1"}
BIG = 1024 * 1024 + 12345  # just over 1 MiB, not a multiple of any buffer size
RUNS = 20


def _big_body() -> bytes:
    return os.urandom(BIG)  # random: no layer can shrink it


@pytest.fixture(scope="module")
def site(pki: Pki) -> Iterator[webservers.Site]:
    with webservers.site(pki.leaf(HOST)) as s:
        (s.docroot / "big.bin").write_bytes(_big_body())
        (s.docroot / "index.html").write_text("<html><body>hello from a real server</body></html>")
        page = "".join(f'<img src="/a{i}.png">' for i in range(30))
        (s.docroot / "page.html").write_text(f"<html><body>{page}</body></html>")
        for i in range(30):
            (s.docroot / f"a{i}.png").write_bytes(b"\x89PNG" + bytes(500))
        (s.docroot / "always.html").write_bytes(gzip.compress(b"<p>" + b"compressed text " * 500 + b"</p>"))
        yield s


def _check(
    pki: Pki, url: str, *, loop: str = "asyncio", timeout_s: float = 10.0, **fields: object
) -> ProbeResult:
    return run_check("http", url, timeout_s, loop=loop, resolve=RESOLVE, tls={"ca_pem": pki.ca_pem}, **fields)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("server", webservers.SERVERS)
def test_a_mebibyte_over_https_arrives_whole_every_time(
    server: str, loop: str, pki: Pki, site: webservers.Site
) -> None:
    with webservers.STARTERS[server](site) as web:
        results = [_check(pki, web.url("/big.bin"), loop=loop) for _ in range(RUNS)]
    failures = [(r.failure_class, r.error) for r in results if r.outcome != Outcome.OUTCOME_SUCCESS]
    assert failures == []
    assert {r.http.body_bytes for r in results} == {BIG}
    assert {r.http.http_version for r in results} == {"HTTP/2"}  # ALPN: h2 preferred, as browsers


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_mebibyte_over_https_1_1_with_the_server_closing_after_it(
    loop: str, pki: Pki, site: webservers.Site
) -> None:
    # The uvloop 0.23 case (MagicStack/uvloop#661): the peer closes while the client is paused.
    with webservers.nginx(site, http2=False, keepalive=False) as web:
        results = [_check(pki, web.url("/big.bin"), loop=loop) for _ in range(RUNS)]
    assert [r.error for r in results if r.outcome != Outcome.OUTCOME_SUCCESS] == []
    assert {(r.http.body_bytes, r.http.http_version) for r in results} == {(BIG, "HTTP/1.1")}


def test_always_gzip_body_is_asserted_decoded(pki: Pki, site: webservers.Site) -> None:
    extra = "location = /always.html { default_type text/html; add_header Content-Encoding gzip; gzip off; }"
    with webservers.nginx(site, extra=extra) as web:
        result = _check(pki, web.url("/always.html"), http={"body_contains": "compressed text compressed"})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.http.body_bytes == (site.docroot / "always.html").stat().st_size
    assert result.http.decoded_bytes == len(b"<p>" + b"compressed text " * 500 + b"</p>")


@pytest.mark.parametrize("http2", [True, False])
def test_same_origin_redirects_reuse_the_connection(http2: bool, pki: Pki, site: webservers.Site) -> None:
    extra = "location = /r1 { return 302 /r2; } location = /r2 { return 301 /index.html; }"
    with webservers.nginx(site, http2=http2, extra=extra) as web:
        result = _check(pki, web.url("/r1"))
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    first, second = result.http.redirects
    assert (first.status_code, second.status_code) == (302, 301)
    assert not first.reused_connection and first.timings.tls_ms > 0 and first.timings.connect_ms > 0
    assert second.reused_connection
    assert (second.timings.dns_ms, second.timings.connect_ms, second.timings.tls_ms) == (0, 0, 0)
    assert second.timings.ttfb_ms > 0
    assert result.timings.tls_ms == first.timings.tls_ms  # one handshake for the three hops
    assert result.http.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def test_http2_only_server_for_http_and_page(pki: Pki, site: webservers.Site) -> None:
    with webservers.nghttpd(site) as web:
        single = _check(pki, web.url("/index.html"), http={"body_contains": "real server"})
        spec = spec_for("page", web.url("/page.html"), 10.0, resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
        page = ProbeResult()
        opened, reused = asyncio.run(load_page(spec, ProbeContext(), page))
    assert single.outcome == Outcome.OUTCOME_SUCCESS, single.error
    assert (single.http.http_version, single.tls.alpn) == ("HTTP/2", "h2")
    assert page.outcome == Outcome.OUTCOME_UNSPECIFIED, page.error  # run_probe would call it success
    assert (page.page.resources_total, page.page.resources_failed) == (30, 0)
    # The document opened the one connection; every asset was multiplexed over it.
    assert (opened, reused) == (0, 30)


def test_page_over_h2_and_http_1_1_nginx(pki: Pki, site: webservers.Site) -> None:
    for http2 in (True, False):
        with webservers.nginx(site, http2=http2) as web:
            spec = spec_for("page", web.url("/page.html"), 10.0, resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
            page = ProbeResult()
            opened, reused = asyncio.run(load_page(spec, ProbeContext(), page))
        assert (page.page.resources_total, page.page.resources_failed) == (30, 0), page.error
        assert opened + reused == 30
        assert opened == 0 if http2 else opened <= 6


# Hand-made servers ------------------------------------------------------------------------


def _raw(response: bytes) -> TcpServer:
    def send(conn: socket.socket, req: HttpRequest) -> None:
        conn.sendall(response)

    return TcpServer(http_handler(send))


@pytest.mark.parametrize(
    ("name", "response"),
    [
        ("early hints", b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
        ("unsolicited continue", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("both", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n"),
    ],
)
def test_interim_responses_are_skipped(name: str, response: bytes) -> None:
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal"
    server = _raw(response + final)
    try:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", http={"body_contains": "final"})
    finally:
        server.close()
    assert result.outcome == Outcome.OUTCOME_SUCCESS, f"{name}: {result.error}"
    assert result.http.status_code == 200


def test_eighty_kilobytes_of_headers_pass() -> None:
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(80))
    server = _raw(b"HTTP/1.1 200 OK\r\n" + pad + b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
    try:
        result = run_check("http", f"http://127.0.0.1:{server.port}/")
    finally:
        server.close()
    assert len(pad) > 80_000
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error


def test_bare_lf_response_is_accepted() -> None:
    server = _raw(b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nhello")
    try:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", http={"body_contains": "hello"})
    finally:
        server.close()
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.http.body_bytes == 5


def test_happy_eyeballs_falls_back_from_a_blackholed_first_address() -> None:
    """The name's first address drops SYNs (a listener on 127.0.0.2 whose queue is full), the
    second answers: RFC 8305 starts the second attempt 250 ms later instead of waiting out the
    first, so the probe succeeds within its deadline (trying the addresses in turn, it would
    have timed out on the first)."""
    server = TcpServer(http_handler(Routes().add("/", "second address")), host="127.0.0.1")
    with blackhole(host="127.0.0.2", port=server.port):
        dns = DnsServer({"dual.test": ["127.0.0.2", "127.0.0.1"]})
        try:
            result = run_check(
                "http", f"http://dual.test:{server.port}/", timeout_s=5.0, dns_server=dns.address
            )
        finally:
            dns.close()
            server.close()
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert list(result.dns.addresses) == ["127.0.0.2", "127.0.0.1"]
    assert result.http.remote_addr == f"127.0.0.1:{server.port}"
    # The blackholed address was tried first: the second attempt starts after the 250 ms delay.
    assert result.timings.connect_ms > 200


def test_a_gzip_bomb_is_body_too_large_not_memory(tmp_path: Path) -> None:
    bomb = gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)  # ~200 KB on the wire
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    server = _raw(head % len(bomb) + bomb)
    try:
        result = run_check("http", f"http://127.0.0.1:{server.port}/", http={"max_body_bytes": 1_000_000})
    finally:
        server.close()
    assert result.failure_class == FailureClass.BODY_TOO_LARGE, result.error
    assert "decoded" in result.error
