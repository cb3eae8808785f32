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
