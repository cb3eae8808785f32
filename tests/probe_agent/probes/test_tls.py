"""The certificate matrix: each flaw served by a real TLS server gives its exact class, chain kept."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from probe_agent.probes.context import ProbeContext
from probenet.v1.probe_pb2 import FailureClass, Outcome
from tests.probe_agent.probes.certs import DAY, NOW, Issued, make_ca, make_leaf
from tests.probe_agent.probes.conftest import Pki, run_check
from tests.probe_agent.probes.servers import hang, serving, tls_garbage

HOST = "tls.test"
RESOLVE = {HOST: "127.0.0.1"}


@dataclass(frozen=True)
class Case:
    build: Callable[[Pki], Issued]
    expected: FailureClass.ValueType
    presented: int  # certificates the server sends
    max_version: ssl.TLSVersion | None = None


def _unknown_ca_with_intermediate(pki: Pki) -> Issued:
    other_root = make_ca("stranger root")
    return make_leaf([HOST], make_ca("stranger intermediate", other_root))


def _expired_intermediate(pki: Pki) -> Issued:
    old = make_ca("expired intermediate", pki.root, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    return make_leaf([HOST], old, not_before=NOW - 300 * DAY, not_after=NOW + 30 * DAY)


CASES: dict[str, Case] = {
    "valid_leaf_and_intermediate": Case(lambda p: p.leaf(HOST), FailureClass.NONE, 2),
    "valid_rsa": Case(lambda p: p.leaf(HOST, key_kind="rsa"), FailureClass.NONE, 2),
    "valid_tls12": Case(lambda p: p.leaf(HOST), FailureClass.NONE, 2, ssl.TLSVersion.TLSv1_2),
    "expiring_in_3_days": Case(lambda p: p.leaf(HOST, not_after=NOW + 3 * DAY), FailureClass.NONE, 2),
    "expired_leaf": Case(
        lambda p: p.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY),
        FailureClass.TLS_CERT_EXPIRED,
        2,
    ),
    "expired_intermediate": Case(_expired_intermediate, FailureClass.TLS_CERT_EXPIRED, 2),
    "not_yet_valid": Case(
        lambda p: p.leaf(HOST, not_before=NOW + DAY, not_after=NOW + 90 * DAY),
        FailureClass.TLS_CERT_NOT_YET_VALID,
        2,
    ),
    "wrong_host": Case(lambda p: p.leaf("other.test"), FailureClass.TLS_HOSTNAME_MISMATCH, 2),
    "self_signed": Case(lambda p: make_leaf([HOST], None), FailureClass.TLS_SELF_SIGNED, 1),
    "unknown_ca": Case(_unknown_ca_with_intermediate, FailureClass.TLS_UNTRUSTED, 2),
    "unknown_ca_root_signed_leaf": Case(
        lambda p: make_leaf([HOST], make_ca("stranger root")), FailureClass.TLS_UNTRUSTED, 1
    ),
    "missing_intermediate": Case(
        lambda p: p.leaf(HOST, send_chain=False, aia_url="http://ca.test/int.der"),
        FailureClass.TLS_INCOMPLETE_CHAIN,
        1,
    ),
    "expired_rsa_tls12": Case(
        lambda p: p.leaf(HOST, key_kind="rsa", not_before=NOW - 100 * DAY, not_after=NOW - DAY),
        FailureClass.TLS_CERT_EXPIRED,
        2,
        ssl.TLSVersion.TLSv1_2,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_certificate_matrix(name: str, pki: Pki, tmp_path: Path) -> None:
    case = CASES[name]
    leaf = case.build(pki)
    ctx = leaf.server_context(tmp_path, name, max_version=case.max_version)
    with serving(hang, ctx) as server:
        result = run_check("tls", f"{HOST}:{server.port}", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})

    assert result.failure_class == case.expected, result.error
    assert result.outcome == (
        Outcome.OUTCOME_SUCCESS if case.expected == FailureClass.NONE else Outcome.OUTCOME_FAILED
    )
    tls = result.tls
    assert tls.verify_class == case.expected
    assert tls.verified == (case.expected == FailureClass.NONE)
    # The chain is there whatever the verdict (blackbox_exporter #1119).
    assert len(tls.chain) == case.presented
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    assert tls.chain[0].sha256_fingerprint == hashlib.sha256(der).hexdigest()
    assert tls.chain[0].sans == [HOST] or case.expected == FailureClass.TLS_HOSTNAME_MISMATCH
    assert tls.chain[0].not_after.ToDatetime().timestamp() == int(leaf.cert.not_valid_after_utc.timestamp())
    assert tls.chain[0].serial == format(leaf.cert.serial_number, "x")
    assert not tls.chain[0].is_ca
    assert tls.version == ("TLSv1.2" if case.max_version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3")
    assert tls.cipher
    assert tls.alpn == "http/1.1"
    assert tls.server_name == HOST
    assert tls.earliest_expiry.seconds == min(int(c.not_after.seconds) for c in tls.chain)
    if case.expected != FailureClass.NONE:
        assert result.failure_host == HOST
        assert result.error
    assert result.timings.tls_ms > 0


def test_days_left_and_key_types(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.leaf(HOST, key_kind="rsa", not_after=NOW + 3 * DAY)
    with serving(hang, leaf.server_context(tmp_path, "soon")) as server:
        result = run_check("tls", f"{HOST}:{server.port}", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
    assert result.outcome == Outcome.OUTCOME_SUCCESS
    assert 2.9 < result.tls.days_left <= 3.0
    assert result.tls.chain[0].key_type == "RSA-2048"
    assert result.tls.chain[1].key_type == "EC-secp256r1"
    assert result.tls.chain[1].is_ca
    assert "probenet test intermediate" in result.tls.chain[1].subject
    assert "probenet test root" in result.tls.chain[1].issuer


def test_insecure_skip_verify_records_the_verdict_without_failing(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.leaf(HOST, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    with serving(hang, leaf.server_context(tmp_path, "expired")) as server:
        result = run_check(
            "tls",
            f"{HOST}:{server.port}",
            resolve=RESOLVE,
            tls={"ca_pem": pki.ca_pem, "insecure_skip_verify": True},
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS
    assert result.tls.verify_class == FailureClass.TLS_CERT_EXPIRED
    assert result.tls.days_left < 0


def test_server_name_override_is_sent_and_verified(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.leaf("api.test")
    seen: list[str | None] = []
    ctx = leaf.server_context(tmp_path, "sni")
    ctx.sni_callback = lambda sock, name, _ctx: seen.append(name)  # type: ignore[assignment,misc,func-returns-value]
    with serving(hang, ctx) as server:
        result = run_check(
            "tls", f"127.0.0.1:{server.port}", tls={"ca_pem": pki.ca_pem, "server_name": "api.test"}
        )
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert seen == ["api.test"]


def test_certificate_cryptography_cannot_parse_is_malformed_not_internal(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.leaf(HOST, ber_basic_constraints=True)  # OpenSSL serves it; cryptography cannot read it
    with serving(hang, leaf.server_context(tmp_path, "ber")) as server:
        result = run_check("tls", f"{HOST}:{server.port}", resolve=RESOLVE, tls={"ca_pem": pki.ca_pem})
    assert result.failure_class == FailureClass.TLS_CERT_MALFORMED, result.error
    assert "BasicConstraints" in result.error
    assert result.tls.verify_class == FailureClass.TLS_CERT_MALFORMED
    assert len(result.tls.chain) == 2
    first = result.tls.chain[0]
    assert first.subject == leaf.cert.subject.rfc4514_string()
    assert first.serial == format(leaf.cert.serial_number, "x")
    assert first.not_after.seconds == int(leaf.cert.not_valid_after_utc.timestamp())
    assert (
        first.sha256_fingerprint
        == hashlib.sha256(leaf.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert result.tls.chain[1].is_ca
    assert result.tls.earliest_expiry.seconds == first.not_after.seconds


def test_tls_garbage_is_a_handshake_failure() -> None:
    with serving(tls_garbage) as server:
        result = run_check("tls", f"127.0.0.1:{server.port}")
    assert result.failure_class == FailureClass.TLS_HANDSHAKE, result.error


def test_untrusted_without_check_ca(pki: Pki, tmp_path: Path) -> None:
    with serving(hang, pki.leaf(HOST).server_context(tmp_path, "no-ca")) as server:
        result = run_check("tls", f"{HOST}:{server.port}", resolve=RESOLVE)
    assert result.failure_class == FailureClass.TLS_UNTRUSTED
    assert len(result.tls.chain) == 2


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_silent_server_times_out_in_the_tls_phase(loop: str) -> None:
    with serving(hang) as server:
        result = run_check("tls", f"127.0.0.1:{server.port}", timeout_s=0.5, loop=loop)
    assert result.failure_class == FailureClass.TIMEOUT
    assert "during tls" in result.error
    assert result.failure_host == "127.0.0.1"


def test_one_handshake_context_serves_every_ca_bundle(pki: Pki, tmp_path: Path) -> None:
    ctx = ProbeContext()
    other = make_ca("other root")
    with serving(hang, pki.leaf(HOST).server_context(tmp_path, "shared")) as server:
        for ca_pem in (pki.ca_pem, other.pem, pki.ca_pem):
            run_check("tls", f"{HOST}:{server.port}", ctx=ctx, resolve=RESOLVE, tls={"ca_pem": ca_pem})
        run_check("http", f"https://{HOST}:{server.port}/", timeout_s=0.5, ctx=ctx, resolve=RESOLVE)
    assert len(ctx._handshake_contexts) == 2  # one per ALPN list (tls probe, http), none per CA bundle
