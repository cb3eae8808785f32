"""A failure class added to the wire enum is known wherever the collector names or checks classes."""

from __future__ import annotations

from collector.ingest import validate
from collector.lab.scenario import FAILURE_CLASSES
from collector.store.rows import FAILURE_NAMES
from collector.verdicts import model
from probenet.v1.probe_pb2 import FailureClass


def test_tls_cert_malformed_is_named_stored_accepted_and_usable_in_scenarios() -> None:
    value = FailureClass.TLS_CERT_MALFORMED
    assert FAILURE_NAMES[value] == "tls_cert_malformed"
    assert model._FAILURE_NAMES[value] == "tls_cert_malformed"
    assert value in validate._FAILURES
    assert "tls_cert_malformed" in FAILURE_CLASSES


def test_probe_type_classes_are_named_stored_accepted_and_usable_in_scenarios() -> None:
    for value in (
        FailureClass.TCP_EXPECT_FAILED,
        FailureClass.GRPC_NOT_SERVING,
        FailureClass.GRPC_SERVICE_UNKNOWN,
        FailureClass.GRPC_ERROR,
        FailureClass.DNS_BOGUS,
        FailureClass.DNS_INSECURE,
        FailureClass.ICMP_NO_REPLY,
        FailureClass.ICMP_UNREACHABLE,
    ):
        name = FailureClass.Name(value).lower()
        assert FAILURE_NAMES[value] == name
        assert model._FAILURE_NAMES[value] == name
        assert value in validate._FAILURES
        assert name in FAILURE_CLASSES
