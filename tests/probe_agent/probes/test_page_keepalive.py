"""page probe connection reuse: assets load over a few keep-alive connections per host, as in a
browser, and a server that breaks keep-alive (closes, lies about lengths, sends garbage) costs at
most the assets concerned, classified, never a hang."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from probe_agent.probes.context import ProbeContext
from probe_agent.probes.page import load_page
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.probe_agent.probes.conftest import Pki, run_check, spec_for
from tests.probe_agent.probes.servers import Routes, TcpServer, http_handler, serving

ASSETS = 30
MAX_REQUESTS_PER_CONNECTION = 1000
RESOLVE = {"shop.test": "127.0.0.1", "static.test": "127.0.0.1"}


@dataclass
class KeepAliveAssets:
    """Serves /a{i}.png over keep-alive connections and counts the connections it accepts.

    framing: "length" or "chunked"; close_after: close each connection after that many
    responses (announce_close: saying "Connection: close", else silently); extra: bytes sent
    right after each body (a Content-Length too short for what is sent); garbage_from: from that
    request on a connection (1-based), answer with garbage instead of a response.
    """

    framing: str = "length"
    close_after: int = 0
    announce_close: bool = True
    extra: bytes = b""
    garbage_from: int = 0
    accepted: int = 0
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, conn: socket.socket) -> None:
        with self.lock:
            self.accepted += 1
        buffer = b""
        for n in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            if self.garbage_from and n >= self.garbage_from:
                conn.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")
                return
            last = n == self.close_after
            conn.sendall(self._response(path, closing=last))
            with self.lock:
                self.served += 1
            if last:
                return

    def _response(self, path: str, *, closing: bool) -> bytes:
        body = f"asset {path} ".encode() * 20
        headers = ["HTTP/1.1 200 OK", "Content-Type: image/png"]
        if closing and self.announce_close:
            headers.append("Connection: close")
        if self.framing == "chunked":
            headers.append("Transfer-Encoding: chunked")
            payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
            payload += b"0\r\nX-Trailer: yes\r\n\r\n"
        else:
            headers.append(f"Content-Length: {len(body)}")
            payload = body
        return "\r\n".join(headers).encode() + b"\r\n\r\n" + payload + self.extra


@contextmanager
def page_with_assets(
    assets: KeepAliveAssets, pki: Pki | None = None, tmp_path: Path | None = None
) -> Iterator[tuple[str, Routes]]:
    """The asset host static.test (https when a PKI is given) and a page on shop.test naming its assets."""
    tls = pki.leaf("static.test").server_context(tmp_path, "static.test") if pki and tmp_path else None
    scheme = "https" if tls else "http"
    asset_server = TcpServer(assets, tls)
    try:
        tags = "".join(
            f'<img src="{scheme}://static.test:{asset_server.port}/a{i}.png">' for i in range(ASSETS)
        )
        page = Routes().add("/", f"<html><body>{tags}</body></html>", Content_Type="text/html")
        with serving(http_handler(page)) as shop:
            yield f"http://shop.test:{shop.port}/", page
    finally:
        asset_server.close()


def check_page(url: str, pki: Pki | None = None, loop: str = "asyncio", **page: object) -> ProbeResult:
    tls = {"ca_pem": pki.ca_pem} if pki else {}
    return run_check("page", url, timeout_s=8.0, loop=loop, resolve=RESOLVE, tls=tls, page=page)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_thirty_https_assets_on_one_host_share_at_most_six_connections(
    pki: Pki, tmp_path: Path, loop: str
) -> None:
    assets = KeepAliveAssets()
    with page_with_assets(assets, pki, tmp_path) as (url, _):
        result = check_page(url, pki, loop)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert (result.page.resources_total, result.page.resources_failed) == (ASSETS, 0)
    assert assets.served == ASSETS
    assert 1 <= assets.accepted <= 6


def test_connections_per_host_follow_a_lower_concurrency(pki: Pki, tmp_path: Path) -> None:
    assets = KeepAliveAssets()
    with page_with_assets(assets, pki, tmp_path) as (url, _):
        result = check_page(url, pki, concurrency=2)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert assets.served == ASSETS
    assert 1 <= assets.accepted <= 2


def test_chunked_responses_are_reused_correctly() -> None:
    assets = KeepAliveAssets(framing="chunked")
    with page_with_assets(assets) as (url, _):
        result = check_page(url)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert (result.page.resources_total, result.page.resources_failed) == (ASSETS, 0)
    assert result.page.bytes_total > ASSETS * 200
    assert assets.served == ASSETS and assets.accepted <= 6


def test_a_server_announcing_close_gets_a_fresh_connection_per_asset() -> None:
    assets = KeepAliveAssets(close_after=1)
    with page_with_assets(assets) as (url, _):
        result = check_page(url)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert assets.served == ASSETS
    assert assets.accepted == ASSETS


def test_a_server_closing_silently_after_each_response_still_works() -> None:
    # No "Connection: close": reused connections turn out closed and the request goes to a new one.
    assets = KeepAliveAssets(close_after=1, announce_close=False)
    with page_with_assets(assets) as (url, _):
        result = check_page(url)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert (result.page.resources_total, result.page.resources_failed) == (ASSETS, 0)
    assert assets.served == ASSETS
    assert assets.accepted == ASSETS


def test_a_server_closing_after_a_few_responses_mixes_reuse_and_fresh_connections() -> None:
    assets = KeepAliveAssets(close_after=4, announce_close=False)
    with page_with_assets(assets) as (url, _):
        result = check_page(url)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert assets.served == ASSETS
    assert ASSETS // 4 <= assets.accepted < ASSETS


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_too_short_content_length_is_http_protocol_not_a_hang(loop: str) -> None:
    assets = KeepAliveAssets(extra=b"the tail of a body longer than its Content-Length")
    with page_with_assets(assets) as (url, _):
        result = check_page(url, loop=loop)
    assert result.outcome == Outcome.OUTCOME_PARTIAL, result.error
    assert not result.page.truncated
    assert result.page.resources_total == ASSETS
    assert result.page.resources_failed >= 1
    assert {(g.host, g.failure_class) for g in result.page.failed_hosts} == {
        ("static.test", FailureClass.HTTP_PROTOCOL)
    }
    assert result.failure_class == FailureClass.HTTP_PROTOCOL


def test_garbage_instead_of_a_second_response_fails_those_assets_only() -> None:
    assets = KeepAliveAssets(garbage_from=2)
    with page_with_assets(assets) as (url, _):
        result = check_page(url)
    assert result.outcome == Outcome.OUTCOME_PARTIAL, result.error
    assert not result.page.truncated
    assert result.page.resources_total == ASSETS
    # Each connection serves one good response; every request reusing it gets garbage.
    ok = ASSETS - result.page.resources_failed
    assert ok == assets.served == assets.accepted
    assert 1 <= result.page.resources_failed < ASSETS
    [group] = result.page.failed_hosts
    assert (group.host, group.failure_class) == ("static.test", FailureClass.HTTP_PROTOCOL)
    assert "status line" in group.sample_error


def test_expired_certificate_host_fails_every_asset_on_fresh_connections(pki: Pki, tmp_path: Path) -> None:
    from tests.probe_agent.probes.certs import DAY, NOW

    assets = KeepAliveAssets()
    leaf = pki.leaf("static.test", not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    server = TcpServer(assets, leaf.server_context(tmp_path, "static.test"))
    try:
        tags = "".join(f'<img src="https://static.test:{server.port}/a{i}.png">' for i in range(10))
        with serving(http_handler(Routes().add("/", tags))) as shop:
            result = check_page(f"http://shop.test:{shop.port}/", pki)
    finally:
        server.close()
    assert result.outcome == Outcome.OUTCOME_PARTIAL
    [group] = result.page.failed_hosts
    assert (group.host, group.failure_class, group.count) == (
        "static.test",
        FailureClass.TLS_CERT_EXPIRED,
        10,
    )
    assert assets.served == 0  # nothing is ever sent over a connection whose chain failed
    assert assets.accepted <= 6  # once a chain is judged, the host's other assets need no handshake


def test_connection_counts_of_a_page_load(pki: Pki, tmp_path: Path) -> None:
    assets = KeepAliveAssets()
    with page_with_assets(assets, pki, tmp_path) as (url, _):
        spec = spec_for("page", url, 8.0, resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
        result = ProbeResult()
        opened, reused = asyncio.run(load_page(spec, ProbeContext(), result))
        fresh = ProbeResult()
        fresh_opened, fresh_reused = asyncio.run(
            load_page(spec, ProbeContext(), fresh, reuse_connections=False)
        )
    assert result.page.resources_failed == fresh.page.resources_failed == 0
    assert opened == assets.accepted - ASSETS and opened <= 6
    assert opened + reused == ASSETS
    assert (fresh_opened, fresh_reused) == (ASSETS, 0)
