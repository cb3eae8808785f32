"""tcp probe against real servers on loopback: banners, send/expect, TLS judged, connect failures."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from probe_agent.probes import netio
from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki, run_check
from tests.probe_agent.probes.servers import blackhole, closed_port, hang, serving

HOST = "tcp.test"
RESOLVE = {HOST: "127.0.0.1"}


def smtp_like(conn: socket.socket) -> None:
    """Speaks first with a banner, then answers PING with PONG, as many line protocols do."""
    conn.sendall(b"220 banner.test ESMTP ready\r\n")
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            return
        data += chunk
    if data.startswith(b"PING"):
        conn.sendall(b"+PONG\r\n")


def test_connect_only_succeeds_and_times_dns_and_connect() -> None:
    with serving(hang) as server:
        result = run_check("tcp", f"{HOST}:{server.port}", resolve=RESOLVE)
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.tcp.remote_addr == f"127.0.0.1:{server.port}"
    assert result.dns.addresses == ["127.0.0.1"]
    assert result.timings.connect_ms > 0
    assert result.timings.tls_ms == 0


def test_banner_matches_expect() -> None:
    with serving(smtp_like) as server:
        result = run_check("tcp", f"127.0.0.1:{server.port}", tcp={"expect": "^220 .*ESMTP"})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.tcp.banner.startswith("220 banner.test")
    assert result.timings.ttfb_ms > 0


def test_send_then_expect_answer() -> None:
    with serving(smtp_like) as server:
        result = run_check("tcp", f"127.0.0.1:{server.port}", tcp={"send": "PING\\r\\n", "expect": r"\+PONG"})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert "+PONG" in result.tcp.banner


def test_banner_mismatch_is_tcp_expect_failed_with_banner_kept() -> None:
    with serving(smtp_like) as server:
        result = run_check("tcp", f"127.0.0.1:{server.port}", tcp={"send": "QUIT\r\n", "expect": "^SSH-2.0"})
    assert result.outcome == Outcome.OUTCOME_FAILED
    assert result.failure_class == FailureClass.TCP_EXPECT_FAILED
    assert result.failure_host == "127.0.0.1"
    assert result.tcp.banner.startswith("220 ")
    assert "SSH-2.0" in result.error


def test_banner_cap_ends_the_read() -> None:
    def chatty(conn: socket.socket) -> None:
        conn.sendall(b"x" * 100_000)
        hang(conn)

    with serving(chatty) as server:
        result = run_check(
            "tcp", f"127.0.0.1:{server.port}", tcp={"expect": "never", "max_banner_bytes": 1000}
        )
    assert result.failure_class == FailureClass.TCP_EXPECT_FAILED
    assert len(result.tcp.banner) == 1000
    assert "1000 bytes read" in result.error


def test_no_match_by_the_deadline_is_tcp_expect_failed() -> None:
    with serving(hang) as server:
        silent = run_check("tcp", f"127.0.0.1:{server.port}", timeout_s=1.0, tcp={"expect": "220"})
    assert silent.failure_class == FailureClass.TCP_EXPECT_FAILED
    assert "deadline of 1s exceeded during expect" in silent.error
    with serving(smtp_like) as server:  # says its banner, then waits for a line that never comes
        wrong = run_check("tcp", f"127.0.0.1:{server.port}", timeout_s=1.0, tcp={"expect": "^SSH-"})
    assert wrong.failure_class == FailureClass.TCP_EXPECT_FAILED
    assert wrong.tcp.banner.startswith("220 "), "what was received before the deadline is kept"


def test_refused_and_blackholed() -> None:
    refused = run_check("tcp", f"127.0.0.1:{closed_port()}")
    assert refused.failure_class == FailureClass.TCP_REFUSED
    with blackhole() as port:
        silent = run_check("tcp", f"127.0.0.1:{port}", timeout_s=1.0)
    assert silent.failure_class == FailureClass.TCP_TIMEOUT


def test_happy_eyeballs_races_past_an_address_that_never_answers() -> None:
    """The first address drops SYNs (a full accept queue); the second, started 250 ms later, wins."""
    with blackhole() as port, socket.socket() as live:
        live.bind(("127.0.0.2", port))
        live.listen(8)
        sock = asyncio.run(netio.connect_happy(["127.0.0.1", "127.0.0.2"], port))
        try:
            assert sock.getpeername() == ("127.0.0.2", port)
            assert netio.format_peer(sock) == f"127.0.0.2:{port}"
        finally:
            sock.close()


def test_every_address_refused_is_tcp_refused() -> None:
    port = closed_port()
    result = run_check("tcp", f"{HOST}:{port}", resolve=RESOLVE)
    assert result.failure_class == FailureClass.TCP_REFUSED
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(netio.connect_happy(["127.0.0.1", "127.0.0.3"], port))


def test_tls_banner_with_chain_judged(pki: Pki, tmp_path: Path) -> None:
    context = pki.leaf(HOST).server_context(tmp_path, "ok")
    with serving(smtp_like, context) as server:
        result = run_check(
            "tcp", f"{HOST}:{server.port}", resolve=RESOLVE,
            tcp={"tls": True, "expect": "^220"}, tls={"ca_pem": pki.ca_pem},
        )  # fmt: skip
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.tcp.tls and result.tls.verified
    assert len(result.tls.chain) == 2
    assert result.timings.tls_ms > 0


def test_tls_expired_certificate_fails_before_sending(pki: Pki, tmp_path: Path) -> None:
    seen: list[bytes] = []

    def record(conn: socket.socket) -> None:
        conn.settimeout(1.0)
        try:
            seen.append(conn.recv(100))
        except OSError:
            seen.append(b"")

    expired = pki.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    with serving(record, expired.server_context(tmp_path, "expired")) as server:
        result = run_check(
            "tcp", f"{HOST}:{server.port}", resolve=RESOLVE,
            tcp={"tls": True, "send": "SECRET\r\n"}, tls={"ca_pem": pki.ca_pem},
        )  # fmt: skip
    assert result.failure_class == FailureClass.TLS_CERT_EXPIRED
    assert result.tls.chain, "the chain is recorded even when it fails"
    assert b"SECRET" not in b"".join(seen)


def test_bad_target_and_regex_are_results() -> None:
    no_port = run_check("tcp", "127.0.0.1")
    assert no_port.failure_class == FailureClass.INTERNAL
    assert "host:port" in no_port.error
    bad = run_check("tcp", "127.0.0.1:1", tcp={"expect": "("})
    assert bad.failure_class == FailureClass.INTERNAL
    assert "bad regex" in bad.error
