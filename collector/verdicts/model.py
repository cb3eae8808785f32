"""Values the verdict engine takes and returns: frozen, clock-free, times in epoch seconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from google.protobuf.duration_pb2 import Duration

from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

# Agent states (DESIGN section 4).
FAIL, PARTIAL, OK, STALE = "FAIL", "PARTIAL", "OK", "STALE"
# Region states.
DOWN, REGION_PARTIAL, UP, NO_DATA = "DOWN", "PARTIAL", "UP", "NO_DATA"
# Check statuses and scopes.
STATUS_OK, STATUS_PARTIAL, STATUS_OUTAGE, STATUS_UNKNOWN = "ok", "partial", "outage", "unknown"
GLOBAL, REGIONAL, UNDETERMINED = "global", "regional", "undetermined"

SUCCESS, FAILED, PARTIAL_OUTCOME = "success", "failed", "partial"
SUBRESOURCE_FAILED = "subresource_failed"
MAX_ERROR_CHARS = 300

DEFAULT_INTERVAL_S = 30.0
DEFAULT_CONFIRM = 2
DEFAULT_WINDOW_INTERVALS = 3
DEFAULT_REGION_QUORUM = 0.5
DEFAULT_OPEN_AFTER = 1
DEFAULT_CLOSE_AFTER = 2
DEFAULT_CERT_WARN_DAYS = 14

_OUTCOMES = {
    Outcome.OUTCOME_SUCCESS: SUCCESS,
    Outcome.OUTCOME_FAILED: FAILED,
    Outcome.OUTCOME_PARTIAL: PARTIAL_OUTCOME,
}


_FAILURE_NAMES: dict[int, str] = {
    v: ("" if v == FailureClass.NONE else FailureClass.Name(v).lower()) for v in FailureClass.values()
}


def _seconds(duration: Duration, default: float) -> float:
    value = duration.seconds + duration.nanos / 1e9
    return value if value > 0 else default


def target_host(target: str) -> str:
    """The host a check's target names: a URL's host, or host of host:port."""
    if "://" in target:
        return urlsplit(target).hostname or target
    host, sep, port = target.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else target


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """One check's verdict settings with the defaults of DESIGN section 4 filled in."""

    check_id: str
    probe: str = "http"
    target: str = ""
    interval: float = DEFAULT_INTERVAL_S
    confirm: int = DEFAULT_CONFIRM
    window_intervals: int = DEFAULT_WINDOW_INTERVALS
    region_quorum: float = DEFAULT_REGION_QUORUM
    open_after: int = DEFAULT_OPEN_AFTER
    close_after: int = DEFAULT_CLOSE_AFTER
    cert_expiry_warn_days: float = DEFAULT_CERT_WARN_DAYS
    regions: tuple[str, ...] = ()
    timeout: float = 0.0  # the probe's timeout (0: unknown): how late a result may land

    @property
    def window(self) -> float:
        return self.interval * self.window_intervals

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> CheckOptions:
        v = spec.verdict
        return cls(
            check_id=spec.id,
            probe=spec.probe,
            target=spec.target,
            interval=_seconds(spec.interval, DEFAULT_INTERVAL_S),
            confirm=v.confirm or DEFAULT_CONFIRM,
            window_intervals=v.window_intervals or DEFAULT_WINDOW_INTERVALS,
            region_quorum=v.region_quorum or DEFAULT_REGION_QUORUM,
            open_after=v.open_after or DEFAULT_OPEN_AFTER,
            close_after=v.close_after or DEFAULT_CLOSE_AFTER,
            cert_expiry_warn_days=v.cert_expiry_warn_days or DEFAULT_CERT_WARN_DAYS,
            regions=tuple(spec.regions),
            timeout=_seconds(spec.timeout, 0.0),
        )


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a check fails: a failure class, the host it concerns and one sample error."""

    cls: str
    host: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"class": self.cls, "host": self.host, "error": self.error}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Cause | None:
        if not raw or not raw.get("class"):
            return None
        return cls(str(raw["class"]), str(raw.get("host", "")), str(raw.get("error", "")))


@dataclass(frozen=True, slots=True)
class Failure:
    """One failing (or partial) result, reduced to what cause selection needs."""

    cls: str
    host: str
    error: str
    at: float
    agent_id: str = ""


def failure_of(
    outcome: str,
    failure_class: str,
    failure_host: str,
    error: str,
    page_failures: Sequence[tuple[str, str]],
    *,
    at: float,
    agent_id: str = "",
) -> Failure:
    """A partial page names `subresource_failed`; the class that matters is its sub-resources'."""
    cls, host = failure_class, failure_host
    if page_failures and (not cls or cls == SUBRESOURCE_FAILED or outcome == PARTIAL_OUTCOME):
        counts: dict[tuple[str, str], int] = {}
        for page_host, page_cls in page_failures:
            counts[(page_cls, page_host)] = counts.get((page_cls, page_host), 0) + 1
        (cls, host), _ = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return Failure(
        cls or (SUBRESOURCE_FAILED if outcome == PARTIAL_OUTCOME else "unknown"),
        host,
        error[:MAX_ERROR_CHARS],
        at,
        agent_id,
    )


@dataclass(frozen=True, slots=True)
class Result:
    """A probe result as the engine sees it (from the wire message or a probe_results row)."""

    check_id: str
    agent_id: str
    region: str
    started_at: float
    outcome: str
    failure_class: str = ""
    failure_host: str = ""
    error: str = ""
    tls_days_left: float | None = None
    page_failures: tuple[tuple[str, str], ...] = ()  # (host, failure class) per failing host

    def failure(self) -> Failure:
        return failure_of(
            self.outcome,
            self.failure_class,
            self.failure_host,
            self.error,
            self.page_failures,
            at=self.started_at,
            agent_id=self.agent_id,
        )

    @classmethod
    def from_proto(cls, r: ProbeResult) -> Result:
        def name(value: int) -> str:
            return _FAILURE_NAMES.get(value, f"unknown_{value}")

        days = r.tls.days_left if r.HasField("tls") and r.tls.HasField("earliest_expiry") else None
        return cls(
            check_id=r.check_id,
            agent_id=r.agent_id,
            region=r.region,
            started_at=r.started_at.seconds + r.started_at.nanos / 1e9,
            outcome=_OUTCOMES.get(r.outcome, FAILED),
            failure_class=name(r.failure_class),
            failure_host=r.failure_host,
            error=r.error,
            tls_days_left=days,
            page_failures=tuple((h.host, name(h.failure_class)) for h in r.page.failed_hosts),
        )


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent's state for one check over the window, with the failing results it rests on."""

    check_id: str
    region: str
    agent_id: str
    state: str
    failures: tuple[Failure, ...] = ()
    days_left: float | None = None
    down: bool = False  # its latest result failed (confirmed or not): what suspicion counts


class RegionSample(NamedTuple):
    """One check in one region over the window: its fresh agents' states.

    OK agents are only counted; failing ones (FAIL, PARTIAL) come with the result that made their
    state; `suspects` names every agent here (whatever its state) whose latest result failed on
    at least half of all its checks, the only agents that can be impaired or held, so they can be
    judged and left out exactly; `down` names every agent here whose latest result failed
    (confirmed or not). (A NamedTuple: there are checks x regions of these every tick.)
    """

    check_id: str
    region: str
    ok: int = 0
    fail: int = 0
    partial: int = 0
    bad: tuple[AgentView, ...] = ()
    suspects: tuple[str, ...] = ()
    days_left: float | None = None
    down: tuple[str, ...] = ()

    @property
    def agents(self) -> int:
        return self.ok + self.fail + self.partial


class RegionVerdict(NamedTuple):
    region: str
    state: str
    agents: int = 0
    failing: int = 0
    partial: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's verdict at one evaluation."""

    check_id: str
    status: str
    scope: str
    regions: tuple[str, ...]  # affected regions, sorted
    cause: Cause | None
    region_states: tuple[RegionVerdict, ...] = ()
    # Regions whose latest results disagree with their confirmed state in a way that would change
    # this verdict (a first failure after successes, an agent held at an incident's onset): the
    # evidence has not settled there yet, so events wait for it (DESIGN section 4).
    pending: tuple[str, ...] = ()
    # The earliest start of its failing agents' failure streaks (the fault's first sign): what a
    # deferred opening's latency budget counts from.
    onset: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check_id,
            "status": self.status,
            "scope": self.scope,
            "regions": list(self.regions),
            "pending_regions": list(self.pending),
            "cause": self.cause.to_dict() if self.cause else None,
            "region_states": {
                r.region: {"state": r.state, "agents": r.agents, "failing": r.failing, "partial": r.partial}
                for r in self.region_states
            },
        }


@dataclass(frozen=True, slots=True)
class VantageVerdict:
    """An impaired agent (scope `agent`) or region (scope `region`), left out of check verdicts."""

    scope: str
    region: str
    agent_id: str
    failing_checks: int
    checks: int
    cause: Cause | None

    @property
    def key(self) -> str:
        if self.scope == "agent":
            return f"vantage:agent:{agent_key(self.region, self.agent_id)}"
        return f"vantage:region:{self.region}"


@dataclass(frozen=True, slots=True)
class CertWarning:
    check_id: str
    scope: str
    regions: tuple[str, ...]
    days_left: float
    host: str


def agent_key(region: str, agent_id: str) -> str:
    """One agent among all regions' (ids and regions never hold a '/')."""
    return f"{region}/{agent_id}"


def split_agent_key(key: str) -> tuple[str, str]:
    region, _, agent_id = key.partition("/")
    return region, agent_id


# Phases of a vantage point in the engine's memory (see engine.Engine.evaluate_samples).
IMPAIRED, ONSET, RELEASED, RECOVERING = "impaired", "onset", "released", "recovering"


class Hold(NamedTuple):
    """What the engine remembers of a vantage point between evaluations.

    `phase`: `impaired` (a vantage event), `onset` (suspect: held out of check verdicts, no event
    yet), `released` (still suspect, no longer held), `recovering` (impairment over, held until
    its checks have recovered); `since`: when that phase (the suspicion streak, the recovery)
    began.
    """

    scope: str  # "agent" | "region"
    name: str  # a region, or an agent_key
    phase: str
    since: float

    @property
    def held(self) -> bool:
        return self.phase in (ONSET, RECOVERING)


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation decided, at time `now`."""

    now: float
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    vantage: tuple[VantageVerdict, ...] = ()
    certs: tuple[CertWarning, ...] = ()
    # Agents are agent_key()s: an agent id is only unique within its region.
    impaired_agents: frozenset[str] = frozenset()
    impaired_regions: frozenset[str] = frozenset()
    # Vantage points left out of this evaluation's check verdicts without an event of their own
    # (suspects at an incident's onset, impairments recovering), and the memory the next
    # evaluation continues from (pass this Evaluation as `previous`).
    held_agents: frozenset[str] = frozenset()
    held_regions: frozenset[str] = frozenset()
    memory: tuple[Hold, ...] = ()
