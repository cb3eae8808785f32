"""Refuse or clamp what agents send before it reaches the store; count every decision.

What an agent sends is checked per result and per stream, so a bad or flooding agent only
ever harms itself:

    message that does not decode   -> stream ends INVALID_ARGUMENT         (malformed)
    batch over max_batch_results   -> stream ends RESOURCE_EXHAUSTED       (batch_too_large)
    seq 0 or not increasing        -> result refused                       (refused_bad_seq)
    empty check_id                 -> result refused                       (refused_empty_check_id)
    unknown outcome                -> result refused                       (refused_unknown_outcome)
    agent_id/region of another     -> result refused                       (refused_identity)
    started_at older than max_age  -> result refused                       (refused_too_old)
    started_at too far ahead       -> clamped to the receive time          (clamped_future)
    unknown failure class          -> kept as `unknown_<n>`, counted       (unknown_failure_class)
    over the per-agent rate        -> reading that stream pauses           (rate_limited)

Refused results are still "done": the ingestor moves the agent's acknowledged mark past them
(they would be refused again on every replay). Rate limiting loses nothing: the collector
stops reading the flooding stream for a while, gRPC flow control pushes back to the agent,
and the results wait in its spool.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from collector.config import Limits
from probenet.v1 import stream_pb2
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

MALFORMED = "malformed"
BATCH_TOO_LARGE = "batch_too_large"
BAD_SEQ = "refused_bad_seq"
EMPTY_CHECK_ID = "refused_empty_check_id"
UNKNOWN_OUTCOME = "refused_unknown_outcome"
IDENTITY = "refused_identity"
TOO_OLD = "refused_too_old"
FUTURE = "clamped_future"
UNKNOWN_FAILURE = "unknown_failure_class"
RATE_LIMITED = "rate_limited"

_OUTCOMES = frozenset(Outcome.values())
_FAILURES = frozenset(FailureClass.values())


class Malformed:
    """What the decoder returns for bytes that are not an AgentMessage."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def decode(data: bytes) -> stream_pb2.AgentMessage | Malformed:
    """The stream's request deserializer: never raises, so a bad message gets our status."""
    try:
        return stream_pb2.AgentMessage.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        return Malformed(f"cannot decode AgentMessage: {exc}")


@dataclass
class Checked:
    accepted: list[ProbeResult]
    # Highest seq among the results this batch settled (accepted or refused for good).
    last_seq: int
    counts: Counter[str] = field(default_factory=Counter)


class Validator:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counts: Counter[str] = Counter()
        self._buckets: dict[str, tuple[float, float]] = {}

    def count(self, status: str, n: int = 1) -> None:
        self.counts[status] += n

    def batch_too_large(self, size: int) -> str | None:
        if size > self.limits.max_batch_results:
            self.count(BATCH_TOO_LARGE)
            return f"batch of {size} results exceeds max_batch_results {self.limits.max_batch_results}"
        return None

    def check(
        self, agent_id: str, region: str, results: list[ProbeResult], after_seq: int, now: float | None = None
    ) -> Checked:
        """Sort one batch into accepted and refused results; stamp identity, clamp timestamps.

        `after_seq` is the highest seq already settled for this agent: anything not above it is
        a replay, left for the ingestor to drop (not counted as refused).
        """
        moment = time.time() if now is None else now
        oldest = moment - self.limits.max_age_s
        newest = moment + self.limits.max_future_s
        counts: Counter[str] = Counter()
        accepted: list[ProbeResult] = []
        last = after_seq
        for r in results:
            seq = r.seq
            if seq <= last:
                if seq == 0 or seq > after_seq:
                    counts[BAD_SEQ] += 1
                else:
                    accepted.append(r)  # a replay: the ingestor drops and counts it
                continue
            last = seq
            status = _refusal(r, agent_id, region, oldest)
            if status:
                counts[status] += 1
                continue
            if r.started_at.seconds > newest:
                r.started_at.FromSeconds(int(moment))
                counts[FUTURE] += 1
            if r.failure_class not in _FAILURES:
                counts[UNKNOWN_FAILURE] += 1
            r.agent_id = agent_id
            r.region = region
            accepted.append(r)
        self.counts.update(counts)
        return Checked(accepted, last, counts)

    def throttle(self, agent_id: str, n: int, now: float | None = None) -> float:
        """Take n results from the agent's token bucket; return how long to pause its stream."""
        moment = time.monotonic() if now is None else now
        rate, burst = self.limits.rate_per_agent, self.limits.burst_per_agent
        tokens, stamp = self._buckets.get(agent_id, (burst, moment))
        tokens = min(burst, tokens + (moment - stamp) * rate) - n
        self._buckets[agent_id] = (tokens, moment)
        if tokens >= 0:
            return 0.0
        self.count(RATE_LIMITED, n)
        return -tokens / rate


def _refusal(r: ProbeResult, agent_id: str, region: str, oldest: float) -> str:
    if not r.check_id:
        return EMPTY_CHECK_ID
    if r.outcome not in _OUTCOMES:
        return UNKNOWN_OUTCOME
    if (r.agent_id and r.agent_id != agent_id) or (r.region and r.region != region):
        return IDENTITY
    if r.started_at.seconds < oldest:
        return TOO_OLD
    return ""
