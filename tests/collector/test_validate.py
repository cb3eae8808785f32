"""Validation refuses or clamps each kind of bad input, counts it, and never raises."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import Limits
from collector.ingest import validate
from collector.ingest.validate import Malformed, Validator, decode
from collector.store.rows import RESULT_COLUMNS, result_row
from probenet.v1 import stream_pb2
from probenet.v1.probe_pb2 import Outcome, ProbeResult

NOW = 1_800_000_000.0


def _result(seq: int, **kw: object) -> ProbeResult:
    r = ProbeResult(seq=seq, check_id="shop", probe="http", outcome=Outcome.OUTCOME_SUCCESS)
    r.started_at.FromSeconds(int(NOW) - 5)
    for key, value in kw.items():
        if key == "at":
            r.started_at.FromSeconds(int(value))  # type: ignore[call-overload]
        else:
            setattr(r, key, value)
    return r


def test_good_results_are_stamped_with_identity() -> None:
    checked = Validator().check("it-1", "it", [_result(1), _result(2, agent_id="it-1", region="it")], 0, NOW)
    assert [r.seq for r in checked.accepted] == [1, 2]
    assert {(r.agent_id, r.region) for r in checked.accepted} == {("it-1", "it")}
    assert checked.last_seq == 2 and not checked.counts


def test_each_bad_result_is_refused_with_its_own_status() -> None:
    v = Validator()
    results = [
        _result(1, check_id=""),
        _result(2, outcome=99),
        _result(3, agent_id="fr-1"),
        _result(4, region="fr"),
        _result(5, at=NOW - 31 * 86_400),
        _result(6, at=0),
        _result(7),
        _result(0),
        _result(6),
    ]
    checked = v.check("it-1", "it", results, 0, NOW)
    assert [r.seq for r in checked.accepted] == [7]
    assert checked.last_seq == 7
    assert checked.counts == {
        validate.EMPTY_CHECK_ID: 1,
        validate.UNKNOWN_OUTCOME: 1,
        validate.IDENTITY: 2,
        validate.TOO_OLD: 2,
        validate.BAD_SEQ: 2,
    }
    assert v.counts == checked.counts


def test_future_timestamps_are_clamped_and_unknown_failure_classes_kept() -> None:
    checked = Validator().check(
        "it-1", "it", [_result(1, at=NOW + 3600), _result(2, failure_class=977)], 0, NOW
    )
    assert checked.accepted[0].started_at.seconds == int(NOW)
    assert checked.counts == {validate.FUTURE: 1, validate.UNKNOWN_FAILURE: 1}
    classes = [
        result_row(r, datetime.now(UTC))[RESULT_COLUMNS.index("failure_class")] for r in checked.accepted
    ]
    assert classes == ["", "unknown_977"]


def test_replays_are_passed_on_for_the_ingestor_to_drop() -> None:
    checked = Validator().check("it-1", "it", [_result(4), _result(5), _result(6)], 5, NOW)
    assert [r.seq for r in checked.accepted] == [4, 5, 6]
    assert checked.last_seq == 6 and not checked.counts


def test_batch_size_limit() -> None:
    v = Validator(Limits(max_batch_results=10))
    assert v.batch_too_large(10) is None
    assert "exceeds max_batch_results 10" in (v.batch_too_large(11) or "")
    assert v.counts[validate.BATCH_TOO_LARGE] == 1


def test_rate_limit_pauses_only_the_flooding_agent() -> None:
    v = Validator(Limits(rate_per_agent=100.0, burst_per_agent=200.0))
    assert v.throttle("flood", 200, now=0.0) == 0.0
    assert v.throttle("flood", 100, now=0.0) == 1.0
    assert v.throttle("calm", 50, now=0.0) == 0.0
    assert v.throttle("flood", 0, now=3.0) == 0.0  # refilled by then
    assert v.counts[validate.RATE_LIMITED] == 100


def test_decoder_turns_garbage_into_malformed() -> None:
    assert isinstance(decode(b"\xff\xff\xff"), Malformed)
    assert decode(
        stream_pb2.AgentMessage(heartbeat=stream_pb2.Heartbeat(spool_depth=3)).SerializeToString()
    ) == stream_pb2.AgentMessage(heartbeat=stream_pb2.Heartbeat(spool_depth=3))


def test_decoder_refuses_a_message_over_the_current_limit_before_parsing_it() -> None:
    v = Validator(Limits(max_message_bytes=1 << 20))
    wire = stream_pb2.AgentMessage(heartbeat=stream_pb2.Heartbeat(spool_depth=3)).SerializeToString()
    assert v.decode(wire) == stream_pb2.AgentMessage(heartbeat=stream_pb2.Heartbeat(spool_depth=3))
    refused = v.decode(b"\xff" * ((1 << 20) + 1))  # not even parseable: the size decides first
    assert isinstance(refused, Malformed) and refused.counted_as == validate.MESSAGE_TOO_LARGE
    assert "1048577 bytes exceeds limits.max_message_bytes 1048576" in refused.reason
    v.limits = Limits(max_message_bytes=2 << 20)  # a reload applies to the next message
    assert v.decode(b"\xff" * ((1 << 20) + 1)).counted_as == validate.MALFORMED  # type: ignore[union-attr]


_results = st.builds(
    ProbeResult,
    check_id=st.text(max_size=8),
    agent_id=st.sampled_from(["", "it-1", "fr-1"]),
    region=st.sampled_from(["", "it", "fr"]),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    outcome=st.integers(min_value=0, max_value=2**31 - 1),
    failure_class=st.integers(min_value=0, max_value=2**31 - 1),
    error=st.text(max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash_the_decoder_and_validator(data: bytes) -> None:
    message = decode(data)
    if isinstance(message, Malformed):
        return
    _check_batch_invariants(list(message.batch.results), after=0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    results=st.lists(_results, max_size=30),
    stamps=st.lists(st.integers(-(2**40), 2**40), min_size=30, max_size=30),
    after=st.integers(0, 50),
)
def test_random_results_are_sorted_into_accepted_or_counted(
    results: list[ProbeResult], stamps: list[int], after: int
) -> None:
    for r, stamp in zip(results, stamps, strict=False):
        r.started_at.seconds = max(-62135596800, min(253402300799, stamp))
    # Through the wire and back, as the server sees them.
    wire = stream_pb2.AgentMessage(batch=stream_pb2.ResultBatch(results=results)).SerializeToString()
    decoded = decode(wire)
    assert not isinstance(decoded, Malformed)
    _check_batch_invariants(list(decoded.batch.results), after)


def _check_batch_invariants(results: list[ProbeResult], after: int) -> None:
    v = Validator()
    now = time.time()
    checked = v.check("it-1", "it", results, after, now)
    fresh = [r for r in checked.accepted if r.seq > after]
    replays = len(checked.accepted) - len(fresh)
    assert len(fresh) + replays + sum(
        n for k, n in checked.counts.items() if k.startswith("refused_")
    ) == len(results)
    seqs = [r.seq for r in fresh]
    assert seqs == sorted(set(seqs))
    assert checked.last_seq >= max(seqs, default=after)
    for r in fresh:
        assert r.check_id and r.agent_id == "it-1" and r.region == "it"
        assert r.outcome in Outcome.values()
        assert now - v.limits.max_age_s <= r.started_at.seconds <= now + v.limits.max_future_s
    # Whatever passed converts into store rows.
    assert len({tuple(map(str, result_row(r, datetime.now(UTC)))) for r in fresh}) == len(fresh)


def test_one_region_certificate_with_many_agent_ids_shares_one_rate() -> None:
    """Issue 11: ten ids behind one region certificate got ten times the per-agent rate."""
    v = Validator(
        Limits(
            rate_per_agent=100.0,
            burst_per_agent=200.0,
            rate_per_certificate=100.0,
            burst_per_certificate=200.0,
        )
    )
    pauses = [v.throttle(("fr", f"fr-{n}"), 100, certificate="region-fr-cert", now=0.0) for n in range(10)]
    assert pauses[:2] == [0.0, 0.0]
    assert all(p > 0 for p in pauses[2:])
    # Without a shared certificate (agent certificates) each id has its own bucket.
    assert all(v.throttle(("it", f"it-{n}"), 100, now=0.0) == 0.0 for n in range(10))


def test_seq_past_the_bound_or_too_far_ahead_stops_the_batch_unsettled() -> None:
    v = Validator()
    far = v.check("it-1", "it", [_result(1), _result(2**64 - 1), _result(2**64 - 1)], 0, NOW)
    assert [r.seq for r in far.accepted] == [1]
    assert far.last_seq == 1 and far.stopped is not None
    assert far.counts[validate.SEQ_TOO_FAR] == 2
    step = v.check("it-1", "it", [_result(11), _result(11 + validate.MAX_SEQ_STEP + 1)], 10, NOW)
    assert step.last_seq == 11 and step.stopped is not None
    ok = v.check("it-1", "it", [_result(10 + validate.MAX_SEQ_STEP)], 10, NOW)
    assert ok.last_seq == 10 + validate.MAX_SEQ_STEP and ok.stopped is None


def test_oversized_strings_and_repeated_fields_are_cut_and_long_ids_refused() -> None:
    big = _result(1, error="e" * 1_000_000)
    big.http.final_url = "https://x.test/" + "a" * 10_000
    for n in range(500):
        big.http.redirects.add(url=f"https://x.test/{n}", status_code=302)
    cert = big.tls.chain.add(subject="CN=x")
    cert.sans.extend(f"n{n}.test" for n in range(1_000))
    cert.sans.append("s" * 9_000)
    for n in range(40):
        big.tls.chain.add(subject=f"CN={n}")
    small = _result(2, error="refused")
    long_id = _result(3, check_id="c" * (validate.MAX_ID + 1))
    checked = Validator().check("it-1", "it", [big, small, long_id], 0, NOW)
    cut, kept = checked.accepted
    assert len(cut.error) == validate.MAX_TEXT
    assert len(cut.http.final_url) == validate.MAX_TEXT
    assert len(cut.http.redirects) == 32
    assert len(cut.tls.chain) == 16
    assert len(cut.tls.chain[0].sans) == 100
    assert kept == small and kept.error == "refused"
    assert checked.counts[validate.TRUNCATED] == 1
    assert checked.counts[validate.LONG_ID] == 1
    assert checked.last_seq == 3
    assert checked.nbytes == cut.ByteSize() + kept.ByteSize()
    assert cut.ByteSize() < 64 * 1024


def test_impossible_heartbeat_values_are_not_believed() -> None:
    v = Validator()
    assert v.gauges(2**64 - 1, 2**64 - 1) == (0, 0)
    assert v.gauges(1_000, 7) == (1_000, 7)
    assert v.counts[validate.BAD_GAUGE] == 2
    assert v.text("x" * 1_000) == "x" * validate.MAX_ID
    assert len(v.capabilities(["http"] * 100)) == validate.MAX_CAPABILITIES
