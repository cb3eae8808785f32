"""Conversion between the wire ProbeResult and probe_results rows (the only place it happens)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

RESULT_COLUMNS: tuple[str, ...] = (
    "started_at",
    "received_at",
    "check_id",
    "probe",
    "target",
    "agent_id",
    "region",
    "seq",
    "outcome",
    "failure_class",
    "error",
    "failure_host",
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "transfer_ms",
    "total_ms",
    "http_status",
    "http_version",
    "body_bytes",
    "remote_addr",
    "redirects",
    "final_url",
    "tls_version",
    "tls_cipher",
    "tls_verified",
    "cert_subject",
    "cert_issuer",
    "cert_sans",
    "cert_fingerprint",
    "cert_not_after",
    "tls_days_left",
    "page_resources_total",
    "page_resources_failed",
    "page_failed_hosts",
    "page_failed_classes",
    "raw",
)

OUTCOME_NAMES: dict[int, str] = {
    v: Outcome.Name(v).removeprefix("OUTCOME_").lower() for v in Outcome.values()
}
OUTCOME_NAMES[Outcome.OUTCOME_UNSPECIFIED] = "failed"
FAILURE_NAMES: dict[int, str] = {
    v: ("" if v == FailureClass.NONE else FailureClass.Name(v).lower()) for v in FailureClass.values()
}


def failure_name(value: int) -> str:
    """Lower-case class name; an enum value this collector does not know yet stays visible."""
    return FAILURE_NAMES.get(value, f"unknown_{value}")


def _ts(seconds: int, nanos: int) -> datetime:
    return datetime.fromtimestamp(seconds + nanos / 1e9, tz=UTC)


def result_row(r: ProbeResult, received_at: datetime) -> list[Any]:
    t = r.timings
    http = r.http
    tls = r.tls
    leaf = tls.chain[0] if tls.chain else None
    has_expiry = tls.HasField("earliest_expiry")
    page = r.page
    return [
        _ts(r.started_at.seconds, r.started_at.nanos),
        received_at,
        r.check_id,
        r.probe,
        r.target,
        r.agent_id,
        r.region,
        r.seq,
        OUTCOME_NAMES.get(r.outcome, "failed"),
        failure_name(r.failure_class),
        r.error,
        r.failure_host,
        t.dns_ms,
        t.connect_ms,
        t.tls_ms,
        t.ttfb_ms,
        t.transfer_ms,
        t.total_ms,
        http.status_code,
        http.http_version,
        http.body_bytes,
        http.remote_addr,
        min(len(http.redirects), 255),
        http.final_url,
        tls.version,
        tls.cipher,
        int(tls.verified),
        leaf.subject if leaf else "",
        leaf.issuer if leaf else "",
        list(leaf.sans) if leaf else [],
        leaf.sha256_fingerprint if leaf else "",
        _ts(tls.earliest_expiry.seconds, tls.earliest_expiry.nanos) if has_expiry else None,
        tls.days_left if has_expiry else None,
        page.resources_total,
        page.resources_failed,
        [h.host for h in page.failed_hosts],
        [failure_name(h.failure_class) for h in page.failed_hosts],
        r.SerializeToString(),
    ]
