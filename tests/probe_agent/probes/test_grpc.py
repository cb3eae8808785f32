"""grpc probe against a real grpc health server: statuses, RPC errors, TLS judged as by the tls probe."""

from __future__ import annotations

from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.certs import DAY, NOW
from tests.probe_agent.probes.conftest import Pki, run_check
from tests.probe_agent.probes.grpc_servers import NOT_SERVING, SERVING, grpc_server
from tests.probe_agent.probes.servers import closed_port

HOST = "grpc.test"
RESOLVE = {HOST: "127.0.0.1"}


def test_plaintext_server_health_serving() -> None:
    with grpc_server() as port:
        result = run_check("grpc", f"{HOST}:{port}", resolve=RESOLVE, grpc={"plaintext": True})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.grpc.serving_status == "SERVING"
    assert result.grpc.rpc_code == "OK"
    assert result.grpc.remote_addr == f"127.0.0.1:{port}"
    assert result.timings.connect_ms > 0 and result.timings.ttfb_ms > 0
    assert result.failure_host == ""


def test_named_service_not_serving_is_grpc_not_serving() -> None:
    with grpc_server({"": SERVING, "shop.Cart": NOT_SERVING}) as port:
        result = run_check("grpc", f"127.0.0.1:{port}", grpc={"plaintext": True, "service": "shop.Cart"})
    assert result.failure_class == FailureClass.GRPC_NOT_SERVING
    assert result.grpc.serving_status == "NOT_SERVING"
    assert result.grpc.service == "shop.Cart"
    assert result.failure_host == "127.0.0.1"


def test_unknown_service_is_grpc_service_unknown() -> None:
    with grpc_server() as port:
        result = run_check("grpc", f"127.0.0.1:{port}", grpc={"plaintext": True, "service": "nope.Svc"})
    assert result.failure_class == FailureClass.GRPC_SERVICE_UNKNOWN
    assert result.grpc.rpc_code == "NOT_FOUND"


def test_server_without_health_service_is_grpc_error_unimplemented() -> None:
    with grpc_server(with_health=False) as port:
        result = run_check("grpc", f"127.0.0.1:{port}", grpc={"plaintext": True})
    assert result.failure_class == FailureClass.GRPC_ERROR
    assert result.grpc.rpc_code == "UNIMPLEMENTED"
    assert "UNIMPLEMENTED" in result.error


def test_tls_chain_judged_then_serving(pki: Pki) -> None:
    with grpc_server(tls=pki.leaf(HOST)) as port:
        result = run_check("grpc", f"{HOST}:{port}", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.tls.verified and result.tls.alpn == "h2"
    assert len(result.tls.chain) == 2
    assert result.timings.tls_ms > 0


def test_tls_expired_and_untrusted_fail_with_the_tls_class(pki: Pki) -> None:
    expired = pki.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    with grpc_server(tls=expired) as port:
        result = run_check("grpc", f"{HOST}:{port}", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
    assert result.failure_class == FailureClass.TLS_CERT_EXPIRED
    assert result.tls.chain and not result.grpc.rpc_code, "no call is made to an untrusted server"
    with grpc_server(tls=pki.leaf(HOST)) as port:
        untrusted = run_check("grpc", f"{HOST}:{port}", resolve=RESOLVE)
        skipped = run_check("grpc", f"{HOST}:{port}", resolve=RESOLVE, tls={"insecure_skip_verify": True})
    assert untrusted.failure_class == FailureClass.TLS_UNTRUSTED
    assert skipped.outcome == Outcome.OUTCOME_SUCCESS, skipped.error
    assert not skipped.tls.verified


def test_plaintext_probe_against_a_tls_server_is_grpc_error(pki: Pki) -> None:
    with grpc_server(tls=pki.leaf(HOST)) as port:
        result = run_check("grpc", f"127.0.0.1:{port}", timeout_s=3.0, grpc={"plaintext": True})
    assert result.failure_class == FailureClass.GRPC_ERROR
    assert "closed the connection mid-call" in result.error


def test_refused_is_tcp_refused() -> None:
    result = run_check("grpc", f"127.0.0.1:{closed_port()}", grpc={"plaintext": True})
    assert result.failure_class == FailureClass.TCP_REFUSED
