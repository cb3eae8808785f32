"""Refuse or clamp what agents send before it reaches the store; count every decision.

What an agent sends is checked per result and per stream, so a bad or flooding agent only
ever harms itself:

    message that does not decode   -> stream ends INVALID_ARGUMENT         (malformed)
    message over max_message_bytes -> stream ends RESOURCE_EXHAUSTED       (message_too_large)
    batch over max_batch_results   -> stream ends RESOURCE_EXHAUSTED       (batch_too_large)
    seq 0 or not increasing        -> result refused                       (refused_bad_seq)
    seq over MAX_SEQ (2^63-1), or  -> stream ends FAILED_PRECONDITION,     (refused_seq_too_far)
      more than MAX_SEQ_STEP (2^32)   this result and the rest of its
      above the agent's last one      batch not settled
    empty check_id                 -> result refused                       (refused_empty_check_id)
    check_id over MAX_ID chars     -> result refused                       (refused_long_id)
    unknown outcome                -> result refused                       (refused_unknown_outcome)
    agent_id/region of another     -> result refused                       (refused_identity)
    started_at older than max_age  -> result refused                       (refused_too_old)
    started_at too far ahead       -> clamped to the receive time          (clamped_future)
    unknown failure class          -> kept as `unknown_<n>`, counted       (unknown_failure_class)
    string over MAX_TEXT chars     -> cut to MAX_TEXT                      (truncated_fields)
    repeated field over its cap    -> cut to the cap                       (truncated_fields)
    over the per-agent rate, or    -> reading that stream pauses           (rate_limited)
      the per-certificate rate of
      a region certificate
    hello/heartbeat spool_depth    -> that value ignored (0 shown)         (refused_gauge)
      over MAX_SPOOL_DEPTH, dropped
      over MAX_COUNTER

Size caps (coordinated with the agent's own, so an honest agent never meets them): any string
MAX_TEXT = 4096 characters (error texts, URLs, certificate names), redirect hops 32, SANs per
certificate 100, certificates per chain 16, any other repeated field 256 entries, ids 128
characters. A result that encodes to at most MAX_TEXT bytes cannot exceed any string cap and
is not walked; only the count caps could apply to it, and there they would bound nothing.

Seq is per agent (region, agent id), increasing, and at most 2^63-1 so every ack fits the
agent's signed 64-bit integers. A step of more than 2^32 (an agent at 1,000 results/s dropping
results for 50 days) can only be a bug or an attack: settling it would make the agent's real
results "duplicates" forever, so the stream is refused instead and the agent keeps them.

Refused results are still "done": the ingestor moves the agent's acknowledged mark past them
(they would be refused again on every replay). Rate limiting loses nothing: the collector
stops reading the flooding stream for a while, gRPC flow control pushes back to the agent,
and the results wait in its spool.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from collector.config import Limits
from probenet.v1 import stream_pb2
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

MALFORMED = "malformed"
MESSAGE_TOO_LARGE = "message_too_large"
BATCH_TOO_LARGE = "batch_too_large"
BAD_SEQ = "refused_bad_seq"
EMPTY_CHECK_ID = "refused_empty_check_id"
UNKNOWN_OUTCOME = "refused_unknown_outcome"
IDENTITY = "refused_identity"
TOO_OLD = "refused_too_old"
FUTURE = "clamped_future"
UNKNOWN_FAILURE = "unknown_failure_class"
RATE_LIMITED = "rate_limited"
SEQ_TOO_FAR = "refused_seq_too_far"
LONG_ID = "refused_long_id"
TRUNCATED = "truncated_fields"
BAD_GAUGE = "refused_gauge"

MAX_SEQ = 2**63 - 1
MAX_SEQ_STEP = 2**32
MAX_TEXT = 4096
MAX_ID = 128
MAX_REPEATED = 256
# Repeated fields with a cap of their own (by field name in probe.proto).
REPEATED_CAPS = {"redirects": 32, "sans": 100, "chain": 16}
MAX_SPOOL_DEPTH = 2**32  # no spool bounded in bytes holds 4 billion results
MAX_COUNTER = 2**53 - 1  # exact in every JSON reader
MAX_CAPABILITIES = 32

_OUTCOMES = frozenset(Outcome.values())
_FAILURES = frozenset(FailureClass.values())


@dataclass(frozen=True)
class Malformed:
    """What the decoder returns for bytes it will not make an AgentMessage of, and why."""

    reason: str
    counted_as: str = MALFORMED


def decode(data: bytes, max_bytes: int | None = None) -> stream_pb2.AgentMessage | Malformed:
    """The stream's request deserializer: never raises, so a bad message gets our status.

    The size is checked here rather than left to gRPC alone: gRPC's own refusal reaches the
    handler as a plain end of stream, so it could be neither counted nor told apart.
    """
    if max_bytes is not None and len(data) > max_bytes:
        reason = f"message of {len(data)} bytes exceeds limits.max_message_bytes {max_bytes}"
        return Malformed(reason, MESSAGE_TOO_LARGE)
    try:
        return stream_pb2.AgentMessage.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        return Malformed(f"cannot decode AgentMessage: {exc}")


@dataclass(frozen=True)
class SeqTooFar:
    """Why a batch stopped at a result whose seq cannot be settled."""

    reason: str


@dataclass
class Checked:
    accepted: list[ProbeResult]
    # Highest seq among the results this batch settled (accepted or refused for good).
    last_seq: int
    counts: Counter[str] = field(default_factory=Counter)
    # Encoded size of the accepted results (what the ingestor bounds its memory by).
    nbytes: int = 0
    stopped: SeqTooFar | None = None


class Validator:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counts: Counter[str] = Counter()
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def count(self, status: str, n: int = 1) -> None:
        self.counts[status] += n

    def decode(self, data: bytes) -> stream_pb2.AgentMessage | Malformed:
        return decode(data, self.limits.max_message_bytes)

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
        checked = Checked([], after_seq)
        counts = checked.counts
        for i, r in enumerate(results):
            seq = r.seq
            if seq <= checked.last_seq:
                if seq == 0 or seq > after_seq:
                    counts[BAD_SEQ] += 1
                else:
                    checked.accepted.append(r)  # a replay: the ingestor drops and counts it
                continue
            if seq > MAX_SEQ or seq - checked.last_seq > MAX_SEQ_STEP:
                counts[SEQ_TOO_FAR] += len(results) - i
                checked.stopped = SeqTooFar(
                    f"seq {seq} after {checked.last_seq}: more than {MAX_SEQ_STEP} ahead or over {MAX_SEQ}"
                )
                break
            checked.last_seq = seq
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
            size = r.ByteSize()
            if size > MAX_TEXT and _trim(r):
                counts[TRUNCATED] += 1
                size = r.ByteSize()
            checked.nbytes += size
            checked.accepted.append(r)
        self.counts.update(counts)
        return checked

    def throttle(self, who: Hashable, n: int, certificate: str = "", now: float | None = None) -> float:
        """Take n results from the agent's token bucket, and from its certificate's when that is a
        region certificate (shared by many agent ids); return how long to pause its stream."""
        moment = time.monotonic() if now is None else now
        limits = self.limits
        pause = self._take(who, n, limits.rate_per_agent, limits.burst_per_agent, moment)
        if certificate:
            pause = max(
                pause,
                self._take(
                    ("certificate", certificate),
                    n,
                    limits.rate_per_certificate,
                    limits.burst_per_certificate,
                    moment,
                ),
            )
        if pause > 0:
            self.count(RATE_LIMITED, n)
        return pause

    def _take(self, key: Hashable, n: int, rate: float, burst: float, moment: float) -> float:
        tokens, stamp = self._buckets.get(key, (burst, moment))
        tokens = min(burst, tokens + (moment - stamp) * rate) - n
        self._buckets[key] = (tokens, moment)
        return 0.0 if tokens >= 0 else -tokens / rate

    def gauges(self, spool_depth: int, dropped: int) -> tuple[int, int]:
        """An agent's reported spool depth and drop count, each 0 when it cannot be true."""
        if spool_depth > MAX_SPOOL_DEPTH:
            self.count(BAD_GAUGE)
            spool_depth = 0
        if dropped > MAX_COUNTER:
            self.count(BAD_GAUGE)
            dropped = 0
        return spool_depth, dropped

    def text(self, value: str) -> str:
        """A free-text hello field (version), cut to MAX_ID characters."""
        if len(value) > MAX_ID:
            self.count(TRUNCATED)
            return value[:MAX_ID]
        return value

    def capabilities(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) > MAX_CAPABILITIES or any(len(v) > MAX_ID for v in values):
            self.count(TRUNCATED)
        return tuple(v[:MAX_ID] for v in values[:MAX_CAPABILITIES])


def _trim(message: Message) -> bool:
    """Cut every string and repeated field of `message` (recursively) to its cap; True if any was."""
    cut = False
    for fd, value in message.ListFields():
        is_string = fd.type == FieldDescriptor.TYPE_STRING
        if fd.is_repeated:
            cap = REPEATED_CAPS.get(fd.name, MAX_REPEATED)
            if len(value) > cap:
                del value[cap:]
                cut = True
            if is_string and any(len(v) > MAX_TEXT for v in value):
                value[:] = [v[:MAX_TEXT] for v in value]
                cut = True
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                cut = any([_trim(item) for item in value]) or cut
        elif is_string and len(value) > MAX_TEXT:
            setattr(message, fd.name, value[:MAX_TEXT])
            cut = True
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            cut = _trim(value) or cut
    return cut


def _refusal(r: ProbeResult, agent_id: str, region: str, oldest: float) -> str:
    if not r.check_id:
        return EMPTY_CHECK_ID
    if len(r.check_id) > MAX_ID:
        return LONG_ID
    if r.outcome not in _OUTCOMES:
        return UNKNOWN_OUTCOME
    if (r.agent_id and r.agent_id != agent_id) or (r.region and r.region != region):
        return IDENTITY
    if r.started_at.seconds < oldest:
        return TOO_OLD
    return ""
