"""Conversion between the wire ProbeResult and probe_results rows (the only place it happens).

Two forms of the same conversion: `result_row` (one Python row per result: a server store, small
inserts, tests) and `frame_rows` + `protobuf_insert_sql` (the embedded store decodes the wire
bytes itself). Turning every field into a Python object costs more than decoding or storing it
(~0.25 M results/s against ~1 M/s for gRPC decoding), hence the second form.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    name = FAILURE_NAMES.get(value)
    return f"unknown_{value}" if name is None else name


def outcome_name(value: int) -> str:
    return OUTCOME_NAMES.get(value, "failed")


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
        outcome_name(r.outcome),
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


# --- protobuf form: ClickHouse parses the results itself (embedded store) ---
#
# The collector only frames each result's wire bytes; chDB decodes every field in C++ with the
# schema below (field numbers of probe.proto, only what the columns need; other fields are
# skipped). Each row carries its own bytes again for the `raw` column and its receive time.

INGEST_PROTO = """syntax = "proto3";
package probenet.ingest;
message Ts { int64 seconds = 1; int32 nanos = 2; }
message Timings {
  double dns_ms = 1; double connect_ms = 2; double tls_ms = 3; double ttfb_ms = 4; double transfer_ms = 5;
  double total_ms = 6;
}
message Hop { string url = 1; }
message HttpInfo {
  uint32 status_code = 1; string http_version = 2; uint64 body_bytes = 3; string remote_addr = 4;
  repeated Hop redirects = 5; string final_url = 6;
}
message Cert { string subject = 1; string issuer = 2; repeated string sans = 3; string sha256_fingerprint = 5; }
message TlsInfo {
  string version = 1; string cipher = 2; repeated Cert chain = 5; Ts earliest_expiry = 6; double days_left = 7;
  bool verified = 8;
}
message HostFailures { string host = 1; int32 failure_class = 2; }
message PageInfo { uint32 resources_total = 1; uint32 resources_failed = 2; repeated HostFailures failed_hosts = 4; }
message ProbeResult {
  string check_id = 1; string agent_id = 2; string region = 3; uint64 seq = 4; Ts started_at = 5;
  string probe = 6; string target = 7; int32 outcome = 8; int32 failure_class = 9; string error = 10;
  string failure_host = 11; Timings timings = 12; HttpInfo http = 13; TlsInfo tls = 14; PageInfo page = 15;
}
message IngestRow { ProbeResult result = 1; bytes raw = 2; int64 received_ms = 3; }
"""
INGEST_MESSAGE = "IngestRow"

_STRUCTURE = (
    "result_check_id String, result_agent_id String, result_region String, result_seq UInt64, "
    "result_started_at_seconds Int64, result_started_at_nanos Int32, result_probe String, result_target String, "
    "result_outcome Int32, result_failure_class Int32, result_error String, result_failure_host String, "
    "result_timings_dns_ms Float64, result_timings_connect_ms Float64, result_timings_tls_ms Float64, "
    "result_timings_ttfb_ms Float64, result_timings_transfer_ms Float64, result_timings_total_ms Float64, "
    "result_http_status_code UInt32, result_http_http_version String, result_http_body_bytes UInt64, "
    "result_http_remote_addr String, result_http_redirects_url Array(String), result_http_final_url String, "
    "result_tls_version String, result_tls_cipher String, result_tls_chain_subject Array(String), "
    "result_tls_chain_issuer Array(String), result_tls_chain_sans Array(Array(String)), "
    "result_tls_chain_sha256_fingerprint Array(String), result_tls_earliest_expiry_seconds Int64, "
    "result_tls_earliest_expiry_nanos Int32, result_tls_days_left Float64, result_tls_verified UInt8, "
    "result_page_resources_total UInt32, result_page_resources_failed UInt32, "
    "result_page_failed_hosts_host Array(String), result_page_failed_hosts_failure_class Array(Int32), "
    "raw String, received_ms Int64"
)


def _enum_sql(expr: str, names: dict[int, str], default: str) -> str:
    keys = ", ".join(str(k) for k in names)
    values = ", ".join(f"'{v}'" for v in names.values())
    return f"transform({expr}, [{keys}], [{values}], {default})"


def _failure_sql(expr: str) -> str:
    return _enum_sql(expr, FAILURE_NAMES, f"concat('unknown_', toString({expr}))")


_HAS_EXPIRY = "(result_tls_earliest_expiry_seconds != 0 OR result_tls_earliest_expiry_nanos != 0)"
_SELECT = {
    "started_at": "fromUnixTimestamp64Milli(result_started_at_seconds * 1000 "
    "+ intDiv(result_started_at_nanos, 1000000), 'UTC')",
    "received_at": "fromUnixTimestamp64Milli(received_ms, 'UTC')",
    "check_id": "result_check_id",
    "probe": "result_probe",
    "target": "result_target",
    "agent_id": "result_agent_id",
    "region": "result_region",
    "seq": "result_seq",
    "outcome": _enum_sql("result_outcome", OUTCOME_NAMES, "'failed'"),
    "failure_class": _failure_sql("result_failure_class"),
    "error": "result_error",
    "failure_host": "result_failure_host",
    "dns_ms": "result_timings_dns_ms",
    "connect_ms": "result_timings_connect_ms",
    "tls_ms": "result_timings_tls_ms",
    "ttfb_ms": "result_timings_ttfb_ms",
    "transfer_ms": "result_timings_transfer_ms",
    "total_ms": "result_timings_total_ms",
    "http_status": "least(result_http_status_code, 65535)",
    "http_version": "result_http_http_version",
    "body_bytes": "result_http_body_bytes",
    "remote_addr": "result_http_remote_addr",
    "redirects": "least(length(result_http_redirects_url), 255)",
    "final_url": "result_http_final_url",
    "tls_version": "result_tls_version",
    "tls_cipher": "result_tls_cipher",
    "tls_verified": "result_tls_verified",
    "cert_subject": "result_tls_chain_subject[1]",
    "cert_issuer": "result_tls_chain_issuer[1]",
    "cert_sans": "result_tls_chain_sans[1]",
    "cert_fingerprint": "result_tls_chain_sha256_fingerprint[1]",
    "cert_not_after": f"if({_HAS_EXPIRY}, fromUnixTimestamp64Milli(result_tls_earliest_expiry_seconds * 1000 "
    "+ intDiv(result_tls_earliest_expiry_nanos, 1000000), 'UTC'), NULL)",
    "tls_days_left": f"if({_HAS_EXPIRY}, result_tls_days_left, NULL)",
    "page_resources_total": "result_page_resources_total",
    "page_resources_failed": "result_page_resources_failed",
    "page_failed_hosts": "result_page_failed_hosts_host",
    "page_failed_classes": f"arrayMap(x -> {_failure_sql('x')}, result_page_failed_hosts_failure_class)",
    "raw": "raw",
}


def protobuf_insert_sql(
    table: str, data_file: str, schema_file: str, settings: dict[str, Any] | None = None
) -> str:
    """INSERT ... SELECT that reads a file of framed rows (see `frame_rows`) through the schema."""
    columns = ", ".join(RESULT_COLUMNS)
    select = ", ".join(_SELECT[c] for c in RESULT_COLUMNS)
    extra = "".join(f", {k} = '{v}'" for k, v in (settings or {}).items())
    return (
        f"INSERT INTO {table} ({columns}) SELECT {select} "
        f"FROM file('{data_file}', 'ProtobufList', '{_STRUCTURE}') "
        f"SETTINGS format_schema = '{schema_file}:{INGEST_MESSAGE}', max_threads = 1{extra}"
    )


_VARINTS = [bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(16384)]


def _varint(n: int) -> bytes:
    if n < 16384:
        return _VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame_rows(parts: Sequence[tuple[Sequence[ProbeResult], int]]) -> bytes:
    """The ProtobufList envelope of IngestRow messages for (results, received_ms) parts."""
    pieces: list[bytes] = []
    add = pieces.append
    varint = _varint
    for results, received_ms in parts:
        stamp = b"\x18" + varint(received_ms)
        for r in results:
            raw = r.SerializeToString()
            length = varint(len(raw))
            body_len = 2 * (1 + len(length) + len(raw)) + len(stamp)
            add(b"\x0a" + varint(body_len) + b"\x0a" + length + raw + b"\x12" + length + raw + stamp)
    body = b"".join(pieces)
    return varint(len(body)) + body
