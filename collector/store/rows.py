"""Conversion between the wire ProbeResult and probe_results rows (the only place it happens).

Two forms of the same conversion: `result_row` (one Python row, for small inserts and tests)
and `result_table` (a whole batch as an Arrow table, what ingest uses). Turning each field into
a Python row object costs more than decoding or storing it, so the table is built column-wise,
the TLS and page columns only from the results that have those sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

RESULT_COLUMNS: tuple[str, ...] = (
    "started_at", "received_at", "check_id", "probe", "target", "agent_id", "region", "seq",
    "outcome", "failure_class", "error", "failure_host",
    "dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "transfer_ms", "total_ms",
    "http_status", "http_version", "body_bytes", "remote_addr", "redirects", "final_url",
    "tls_version", "tls_cipher", "tls_verified", "cert_subject", "cert_issuer", "cert_sans",
    "cert_fingerprint", "cert_not_after", "tls_days_left",
    "page_resources_total", "page_resources_failed", "page_failed_hosts", "page_failed_classes",
    "raw",
)

OUTCOME_NAMES: dict[int, str] = {v: Outcome.Name(v).removeprefix("OUTCOME_").lower() for v in Outcome.values()}
OUTCOME_NAMES[Outcome.OUTCOME_UNSPECIFIED] = "failed"
FAILURE_NAMES: dict[int, str] = {v: ("" if v == FailureClass.NONE else FailureClass.Name(v).lower()) for v in FailureClass.values()}


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
        _ts(r.started_at.seconds, r.started_at.nanos), received_at, r.check_id, r.probe, r.target,
        r.agent_id, r.region, r.seq,
        outcome_name(r.outcome), failure_name(r.failure_class), r.error, r.failure_host,
        t.dns_ms, t.connect_ms, t.tls_ms, t.ttfb_ms, t.transfer_ms, t.total_ms,
        http.status_code, http.http_version, http.body_bytes, http.remote_addr, min(len(http.redirects), 255),
        http.final_url,
        tls.version, tls.cipher, int(tls.verified),
        leaf.subject if leaf else "", leaf.issuer if leaf else "", list(leaf.sans) if leaf else [],
        leaf.sha256_fingerprint if leaf else "",
        _ts(tls.earliest_expiry.seconds, tls.earliest_expiry.nanos) if has_expiry else None,
        tls.days_left if has_expiry else None,
        page.resources_total, page.resources_failed,
        [h.host for h in page.failed_hosts], [failure_name(h.failure_class) for h in page.failed_hosts],
        r.SerializeToString(),
    ]


# --- columnar (Arrow) form ---

_NO_TLS: tuple[Any, ...] = ("", "", 0, "", "", [], "", None, None)
_NO_PAGE: tuple[Any, ...] = (0, 0, [], [])
_schema: Any = None


def arrow_schema() -> Any:
    """The probe_results columns as an Arrow schema (pyarrow imported on first use)."""
    global _schema
    if _schema is None:
        import pyarrow as pa

        ts = pa.timestamp("ms", tz="UTC")
        s, f32, strs = pa.string(), pa.float32(), pa.list_(pa.string())
        types = [
            ts, ts, s, s, s, s, s, pa.uint64(), s, s, s, s, f32, f32, f32, f32, f32, f32,
            pa.uint16(), s, pa.uint64(), s, pa.uint8(), s,
            s, s, pa.uint8(), s, s, strs, s, ts, f32, pa.uint32(), pa.uint32(), strs, strs, pa.binary(),
        ]
        _schema = pa.schema(list(zip(RESULT_COLUMNS, types, strict=True)))
    return _schema


def _ms(ts: Any) -> int:
    return int(ts.seconds * 1000 + ts.nanos // 1_000_000)


def _tls_part(r: ProbeResult) -> tuple[Any, ...]:
    if not r.HasField("tls"):
        return _NO_TLS
    tls = r.tls
    leaf = tls.chain[0] if tls.chain else None
    expiry = _ms(tls.earliest_expiry) if tls.HasField("earliest_expiry") else None
    return (
        tls.version, tls.cipher, int(tls.verified),
        leaf.subject if leaf else "", leaf.issuer if leaf else "", list(leaf.sans) if leaf else [],
        leaf.sha256_fingerprint if leaf else "", expiry, tls.days_left if expiry is not None else None,
    )


def _page_part(r: ProbeResult) -> tuple[Any, ...]:
    if not r.HasField("page"):
        return _NO_PAGE
    p = r.page
    hosts = p.failed_hosts
    return (p.resources_total, p.resources_failed, [h.host for h in hosts],
            [failure_name(h.failure_class) for h in hosts])


def _row(r: ProbeResult, outcomes: dict[int, str] = OUTCOME_NAMES) -> tuple[Any, ...]:
    st = r.started_at
    t = r.timings
    h = r.http
    return (
        st.seconds * 1000 + st.nanos // 1_000_000, r.check_id, r.probe, r.target, r.agent_id, r.region, r.seq,
        outcomes.get(r.outcome, "failed"), failure_name(r.failure_class), r.error, r.failure_host,
        t.dns_ms, t.connect_ms, t.tls_ms, t.ttfb_ms, t.transfer_ms, t.total_ms,
        h.status_code, h.http_version, h.body_bytes, h.remote_addr, min(len(h.redirects), 255), h.final_url,
        *_tls_part(r), *_page_part(r), r.SerializeToString(),
    )


def result_table(results: Sequence[ProbeResult], received_ms: Sequence[int]) -> Any:
    """A pyarrow Table of probe_results rows; received_ms[i] is when results[i] arrived (epoch ms)."""
    import pyarrow as pa

    schema = arrow_schema()
    if not results:
        return schema.empty_table()
    columns = list(zip(*map(_row, results), strict=True))
    columns.insert(1, tuple(received_ms))
    arrays = [pa.array(col, type=fld.type) for col, fld in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
