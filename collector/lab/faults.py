"""The fault timeline: at scenario time t, what each (agent, target) pair experiences.

Pure functions of the scenario and t, so the timeline is tested without any server; the
runner applies the answer to the target servers, the DNS server, the agent processes and the
routers of path_break.
When faults overlap on the same pair, the one listed later in the scenario wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.lab.scenario import CERT_FAULTS, Fault, Scenario


@dataclass(frozen=True)
class Effect:
    """What a target server (or the DNS server) does for one agent right now.

    kind: a certificate fault (cert_*), http_status, refuse, blackhole, reset, slow,
    dns_nxdomain, or `offline` (the agent's whole network is cut: DNS refused, TCP refused).
    """

    kind: str
    param: float = 0.0
    fault: int = -1  # index of the scenario fault that causes it

    @property
    def cert(self) -> bool:
        return self.kind in CERT_FAULTS


Pair = tuple[str, str]  # (agent_id, target)


def fault_active(fault: Fault, t: float) -> bool:
    """Whether `fault` bites at t; a flap bites during the first half of each period."""
    if not fault.at <= t < fault.until:
        return False
    if fault.kind == "flap":
        return int((t - fault.at) // fault.param) % 2 == 0
    return True


def _effect_of(fault: Fault) -> Effect:
    if fault.kind == "region_offline":
        return Effect("offline", 0.0, fault.index)
    if fault.kind == "flap":
        # A flapping service drops connections, then recovers, period after period.
        return Effect("reset", 0.0, fault.index)
    return Effect(fault.kind, fault.param, fault.index)


class Timeline:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.targets = tuple(scenario.targets)

    def effects(self, t: float) -> dict[Pair, Effect]:
        """Every (agent, target) pair with a fault at t; pairs not listed behave normally."""
        effects: dict[Pair, Effect] = {}
        for fault in self.scenario.faults:
            if fault.kind in ("agent_offline", "path_break") or not fault_active(fault, t):
                continue
            targets = (fault.target,) if fault.target else self.targets
            effect = _effect_of(fault)
            for agent in fault.agents:
                for target in targets:
                    effects[(agent, target)] = effect
        return effects

    def path_breaks(self, t: float) -> dict[Pair, int]:
        """(agent, target) -> the hop (router) where its path is broken at t (path_break).

        Not an Effect: the target server never sees that traffic, and a fault on the server
        (a certificate, a status) may hold at the same time, for when the path heals.
        """
        broken: dict[Pair, int] = {}
        for fault in self.scenario.faults:
            if fault.kind == "path_break" and fault_active(fault, t):
                for agent in fault.agents:
                    for target in (fault.target,) if fault.target else self.targets:
                        broken[(agent, target)] = fault.hop
        return broken

    def offline_agents(self, t: float) -> set[str]:
        """Agents whose process is stopped at t (agent_offline)."""
        stopped: set[str] = set()
        for fault in self.scenario.faults:
            if fault.kind == "agent_offline" and fault_active(fault, t):
                stopped.update(fault.agents)
        return stopped

    def active_faults(self, t: float) -> list[Fault]:
        return [f for f in self.scenario.faults if f.at <= t < f.until]

    def next_change(self, t: float) -> float | None:
        """The next time after t at which some effect may change (for sleeping precisely)."""
        times: list[float] = []
        for fault in self.scenario.faults:
            times.extend(x for x in (fault.at, fault.until) if x > t)
            if fault.kind == "flap" and fault.at <= t < fault.until:
                steps = int((t - fault.at) // fault.param) + 1
                times.append(fault.at + steps * fault.param)
        return min(times) if times else None

    def fault_start_before(self, t: float, targets: set[str]) -> tuple[Fault, float] | None:
        """The latest fault onset at or before t concerning one of `targets` (or all): (fault, onset).

        A flap starts biting again at each period pair, so its onset is the latest such edge.
        """
        onsets: list[tuple[float, int, Fault]] = []
        for fault in self.scenario.faults:
            if fault.at > t or (fault.target and fault.target not in targets):
                continue
            onset = fault.at
            if fault.kind == "flap":
                cycles = int((min(t, fault.until) - fault.at) // (2 * fault.param))
                onset = fault.at + cycles * 2 * fault.param
            onsets.append((onset, fault.index, fault))
        if not onsets:
            return None
        onset, _, fault = max(onsets)
        return fault, onset
