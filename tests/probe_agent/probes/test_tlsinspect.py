"""Chain judgement without a network: host name rules, trust anchors, odd chains, the cache."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probe_agent.probes.tlsinspect import ChainInspector, judge_chain
from probenet.v1.probe_pb2 import FailureClass
from tests.probe_agent.probes.certs import Issued, make_ca, make_leaf
from tests.probe_agent.probes.conftest import Pki


def _der(*certs: x509.Certificate) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _presented(leaf: Issued) -> list[bytes]:
    return _der(leaf.cert, *leaf.chain)


def _judge(chain: list[bytes], name: str, ca_pem: str) -> FailureClass.ValueType:
    return judge_chain(chain, name, ca_pem.encode(), dt.datetime.now(dt.UTC)).verify_class


@pytest.mark.parametrize(
    ("sans", "name", "matches"),
    [
        (["*.shop.test"], "www.shop.test", True),
        (["*.shop.test"], "shop.test", False),
        (["*.shop.test"], "a.b.shop.test", False),
        (["Shop.Test"], "shop.test.", True),
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["localhost"], "127.0.0.1", False),
    ],
)
def test_hostname_rules(sans: list[str], name: str, matches: bool) -> None:
    leaf = make_leaf(sans, None)
    expected = FailureClass.NONE if matches else FailureClass.TLS_HOSTNAME_MISMATCH
    assert _judge(_presented(leaf), name, leaf.pem) == expected


def test_pinned_self_signed_leaf_is_trusted_when_given_as_ca() -> None:
    leaf = make_leaf(["pinned.test"], None)
    assert _judge(_presented(leaf), "pinned.test", leaf.pem) == FailureClass.NONE
    assert _judge(_presented(leaf), "pinned.test", "") == FailureClass.TLS_SELF_SIGNED


def test_trusted_intermediate_anchors_the_chain(pki: Pki) -> None:
    leaf = pki.leaf("a.test", send_chain=False)
    assert _judge(_presented(leaf), "a.test", pki.intermediate.pem) == FailureClass.NONE


def test_unrelated_intermediate_sent_is_an_incomplete_chain(pki: Pki) -> None:
    leaf = pki.leaf("a.test", send_chain=False)
    stranger = make_ca("stranger intermediate", make_ca("stranger root"))
    assert _judge(_der(leaf.cert, stranger.cert), "a.test", pki.ca_pem) == FailureClass.TLS_INCOMPLETE_CHAIN


def test_same_name_different_key_is_not_trusted(pki: Pki) -> None:
    impostor_root = make_ca("probenet test root")  # same subject as the trusted root, other key
    leaf = make_leaf(["a.test"], impostor_root)
    assert _judge(_presented(leaf), "a.test", pki.ca_pem) == FailureClass.TLS_UNTRUSTED


def test_leaf_used_as_issuer_is_rejected(pki: Pki) -> None:
    not_a_ca = pki.leaf("a.test")
    child = make_leaf(["b.test"], not_a_ca)
    chain = _der(child.cert, not_a_ca.cert, pki.intermediate.cert)
    assert _judge(chain, "b.test", pki.ca_pem) == FailureClass.TLS_UNTRUSTED


def test_untrusted_root_sent_by_the_server() -> None:
    root = make_ca("stranger root")
    leaf = make_leaf(["a.test"], make_ca("stranger intermediate", root))
    assert _judge([*_presented(leaf), *_der(root.cert)], "a.test", "") == FailureClass.TLS_UNTRUSTED


def test_empty_chain_is_a_handshake_failure() -> None:
    assert _judge([], "a.test", "") == FailureClass.TLS_HANDSHAKE


def test_inspector_caches_per_chain_name_and_trust(pki: Pki) -> None:
    inspector = ChainInspector()
    chain = _presented(pki.leaf("a.test"))
    first = inspector.inspect(chain, "a.test", pki.ca_pem)
    assert inspector.inspect(chain, "A.test", pki.ca_pem) is first
    assert inspector.inspect(chain, "a.test", "").verify_class == FailureClass.TLS_UNTRUSTED
    assert inspector.inspect(chain, "b.test", pki.ca_pem).verify_class == FailureClass.TLS_HOSTNAME_MISMATCH
