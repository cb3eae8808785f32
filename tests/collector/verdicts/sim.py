"""Synthetic probe networks for verdict tests: regions of agents probing checks on a fixed cadence,
with faults that turn chosen results into failures for a time span."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from collector.verdicts import Event, Result
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

START = 1_800_000_000.0  # a multiple of every interval used here: ticks land on round instants
_OUTCOMES = {
    "success": Outcome.OUTCOME_SUCCESS,
    "failed": Outcome.OUTCOME_FAILED,
    "partial": Outcome.OUTCOME_PARTIAL,
}


@dataclass(frozen=True)
class Fault:
    """From `at` until `until` (seconds after START, on the agents' true clock), matching results
    get this outcome."""

    at: float
    until: float = 1e9
    regions: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    cls: str = "tcp_refused"
    host: str = "web.example"
    outcome: str = "failed"
    page_hosts: tuple[tuple[str, str], ...] = ()  # (host, class) of failing sub-resources
    every: int = 0  # when > 0: only every `every`-th probe round fails (flapping)

    def matches(self, t: float, rnd: int, region: str, agent: str, check: str) -> bool:
        return (
            self.at <= t < self.until
            and (not self.regions or region in self.regions)
            and (not self.agents or agent in self.agents)
            and (not self.checks or check in self.checks)
            and (self.every == 0 or rnd % self.every == 0)
        )


@dataclass
class Network:
    regions: dict[str, int]
    checks: Sequence[str] = ("web",)
    interval: float = 10.0
    duration: float = 300.0
    faults: Sequence[Fault] = ()
    skew: dict[str, float] = field(default_factory=dict)  # agent -> clock offset (s)
    silent: Callable[[float, str], bool] = lambda t, agent: False  # agent sends nothing at t
    days_left: float | None = None
    # Seconds between consecutive checks' probe slots in a round: with a stagger a fault reaches
    # the checks one after another, as real agents spread their probes over the interval.
    stagger: float = 0.0
    # Each agent's probe slots sit at a fixed offset within the interval: agent k of n (regions in
    # order, so one region's agents probe early and another's late) at phase_spread x k/(n-1) of
    # it. 0: all agents probe almost in phase (a quiet lab), 0.9: spread as real agents are.
    phase_spread: float = 0.0
    # Every region names its agents a-1, a-2...: an agent is (region, agent id), never the id alone.
    shared_names: bool = False

    def agents(self) -> list[tuple[str, str]]:
        return [
            (region, f"a-{i}" if self.shared_names else f"{region}-{i}")
            for region, n in self.regions.items()
            for i in range(1, n + 1)
        ]

    def results(self) -> list[Result]:
        out = []
        rounds = int(self.duration / self.interval)
        agents = self.agents()
        for rnd in range(rounds):
            t = rnd * self.interval
            for index, (region, agent) in enumerate(agents):
                if self.silent(t, agent):
                    continue
                for k, check in enumerate(self.checks):
                    at = t + self.phase(index, len(agents)) + k * self.stagger
                    started = START + at + self.skew.get(agent, 0.0)
                    out.append(self._result(at, rnd, started, region=region, agent=agent, check=check))
        return out

    def phase(self, index: int, agents: int) -> float:
        """Seconds into each round at which agent `index` (of `agents`) probes."""
        if not self.phase_spread:
            return 1.0 + 0.01 * index
        return 0.5 + self.phase_spread * self.interval * index / max(agents - 1, 1)

    def _result(self, t: float, rnd: int, started: float, *, region: str, agent: str, check: str) -> Result:
        for fault in self.faults:
            if fault.matches(t, rnd, region, agent, check):
                return Result(
                    check,
                    agent,
                    region,
                    started,
                    fault.outcome,
                    fault.cls,
                    fault.host,
                    f"{fault.cls} from {agent}",
                    self.days_left,
                    fault.page_hosts,
                )
        return Result(check, agent, region, started, "success", tls_days_left=self.days_left)


def check_yaml(
    checks: Sequence[str], interval: float, probe: str = "http", regions: Sequence[str] = (), **verdict: Any
) -> dict[str, Any]:
    items = []
    for check in checks:
        item: dict[str, Any] = {
            "id": check,
            "probe": probe,
            "target": f"https://{check}.example/",
            "interval": f"{interval}s",
            "timeout": "1s",
        }
        if probe == "tls":
            item["target"] = f"{check}.example:443"
        if verdict:
            item["verdict"] = dict(verdict)
        if regions:
            item["regions"] = list(regions)
        items.append(item)
    return {"checks": items}


def to_proto_json(r: Result, camel: bool = True, probe: str = "http") -> str:
    message = ProbeResult(
        check_id=r.check_id,
        agent_id=r.agent_id,
        region=r.region,
        probe="http",
        outcome=_OUTCOMES[r.outcome],
        error=r.error,
        failure_host=r.failure_host,
    )
    message.started_at.FromNanoseconds(round(r.started_at * 1e9))
    if r.failure_class:
        message.failure_class = FailureClass.Value(r.failure_class.upper())
    for host, cls in r.page_failures:
        message.page.failed_hosts.add(host=host, failure_class=FailureClass.Value(cls.upper()), count=1)
    if r.tls_days_left is not None:
        message.tls.days_left = r.tls_days_left
        message.tls.earliest_expiry.FromSeconds(int(r.started_at + r.tls_days_left * 86400))
    return json_format.MessageToJson(message, preserving_proto_field_name=not camel, indent=None)


def summary(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """Event versions as comparable tuples: (kind, subject, version, status, scope, regions, class, closed)."""
    return [
        (
            e.kind,
            e.check or e.agent or ",".join(e.regions),
            e.version,
            e.status,
            e.scope,
            e.regions,
            e.cause.cls if e.cause else "",
            e.closed_at is not None,
        )
        for e in events
    ]
