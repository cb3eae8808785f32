"""The verdict engine (DESIGN section 4): agent states -> vantage -> region states -> check verdicts.

Pure: no clock, no I/O. `now` is an argument; the same inputs always give the same output.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from collector.verdicts.model import (
    DOWN,
    FAIL,
    FAILED,
    GLOBAL,
    NO_DATA,
    OK,
    PARTIAL,
    PARTIAL_OUTCOME,
    REGION_PARTIAL,
    REGIONAL,
    STALE,
    STATUS_OK,
    STATUS_OUTAGE,
    STATUS_PARTIAL,
    STATUS_UNKNOWN,
    SUCCESS,
    UNDETERMINED,
    UP,
    AgentView,
    Cause,
    CertWarning,
    CheckOptions,
    Evaluation,
    Failure,
    RegionVerdict,
    Result,
    VantageVerdict,
    Verdict,
    target_host,
)
from probenet.v1.probe_pb2 import CheckSpec

# Impaired vantage (DESIGN section 4): >= 80 % of >= 3 checks failing while others see them OK.
IMPAIRED_SHARE = 0.8
IMPAIRED_MIN_CHECKS = 3


def agent_state(outcomes: Sequence[str], confirm: int) -> str:
    """State from an agent's results in the window, latest first.

    FAIL needs `confirm` failures in a row. A failure not yet confirmed does not change what the
    agent reported before it (its latest non-failed result in those `confirm`); an agent whose
    only results are unconfirmed failures has no state yet and counts as STALE.
    """
    recent = outcomes[:confirm]
    if not recent:
        return STALE
    if len(recent) >= confirm and all(o == FAILED for o in recent):
        return FAIL
    for outcome in recent:
        if outcome == SUCCESS:
            return OK
        if outcome == PARTIAL_OUTCOME:
            return PARTIAL
    return STALE


def view_from_results(options: CheckOptions, latest_first: Sequence[Result]) -> AgentView:
    first = latest_first[0]
    recent = latest_first[: options.confirm]
    state = agent_state([r.outcome for r in recent], options.confirm)
    failures = tuple(r.failure() for r in recent if r.outcome != SUCCESS) if state in (FAIL, PARTIAL) else ()
    days = next((r.tls_days_left for r in latest_first if r.tls_days_left is not None), None)
    return AgentView(first.check_id, first.region, first.agent_id, state, failures, days)


def dominant_cause(failures: Iterable[Failure]) -> Cause | None:
    """Most frequent class (ties: alphabetical), its most frequent host, its latest error."""
    items = list(failures)
    if not items:
        return None
    classes = Counter(f.cls for f in items)
    cls = min(classes, key=lambda c: (-classes[c], c))
    of_class = [f for f in items if f.cls == cls]
    hosts = Counter(f.host for f in of_class if f.host)
    host = min(hosts, key=lambda h: (-hosts[h], h)) if hosts else ""
    sample = max(
        (f for f in of_class if f.host == host), key=lambda f: (f.at, f.agent_id), default=of_class[0]
    )
    return Cause(cls, host, sample.error)


def region_state(views: Sequence[AgentView], quorum: float) -> RegionVerdict:
    region = views[0].region if views else ""
    fresh = [v for v in views if v.state != STALE]
    if not fresh:
        return RegionVerdict(region, NO_DATA)
    failing = sum(v.state == FAIL for v in fresh)
    partial = sum(v.state == PARTIAL for v in fresh)
    n = len(fresh)
    if failing >= quorum * n:
        state = DOWN
    elif failing + partial >= quorum * n:
        state = REGION_PARTIAL
    else:
        state = UP
    return RegionVerdict(region, state, n, failing, partial)


def check_verdict(
    check_id: str, regions: Sequence[RegionVerdict], by_region: dict[str, list[AgentView]]
) -> Verdict:
    with_data = [r for r in regions if r.state != NO_DATA]
    affected = sorted(r.region for r in with_data if r.state in (DOWN, REGION_PARTIAL))
    ordered = tuple(sorted(regions, key=lambda r: r.region))
    if not with_data:
        return Verdict(check_id, STATUS_UNKNOWN, UNDETERMINED, (), None, ordered)
    if not affected:
        return Verdict(check_id, STATUS_OK, "", (), None, ordered)
    status = STATUS_OUTAGE if any(r.state == DOWN for r in with_data) else STATUS_PARTIAL
    if len(with_data) < 2:
        scope = UNDETERMINED
    elif len(affected) == len(with_data):
        scope = GLOBAL
    else:
        scope = REGIONAL
    failures = (
        f for region in affected for v in by_region[region] if v.state in (FAIL, PARTIAL) for f in v.failures
    )
    return Verdict(check_id, status, scope, tuple(affected), dominant_cause(failures), ordered)


class Engine:
    """Decides verdicts for a set of checks. Construct once per configuration; reuse every tick."""

    def __init__(self, checks: Iterable[CheckSpec | CheckOptions]) -> None:
        self.options: dict[str, CheckOptions] = {}
        for check in checks:
            opts = check if isinstance(check, CheckOptions) else CheckOptions.from_spec(check)
            self.options[opts.check_id] = opts

    def views(self, now: float, results: Iterable[Result]) -> list[AgentView]:
        """Agent states from raw results: those started in (now - window, now] of their check."""
        grouped: dict[tuple[str, str], list[Result]] = defaultdict(list)
        for r in results:
            opts = self.options.get(r.check_id)
            if opts is not None and now - opts.window < r.started_at <= now:
                grouped[(r.check_id, r.agent_id)].append(r)
        views = []
        for (check_id, _), rs in sorted(grouped.items()):
            rs.sort(key=lambda r: r.started_at, reverse=True)
            views.append(view_from_results(self.options[check_id], rs))
        return views

    def evaluate(self, now: float, results: Iterable[Result]) -> Evaluation:
        return self.evaluate_views(now, self.views(now, results))

    def evaluate_views(self, now: float, views: Iterable[AgentView]) -> Evaluation:
        """Verdicts from agent states (computed here from results, or by SQL in the store)."""
        fresh = [v for v in views if v.state != STALE and v.check_id in self.options]
        by_check: dict[str, list[AgentView]] = defaultdict(list)
        for v in fresh:
            by_check[v.check_id].append(v)
        impaired_agents, agent_vantage = self._impaired_agents(fresh, by_check)
        kept = [v for v in fresh if v.agent_id not in impaired_agents]
        impaired_regions, region_vantage = self._impaired_regions(kept)
        kept = [v for v in kept if v.region not in impaired_regions]
        per_check: dict[str, dict[str, list[AgentView]]] = defaultdict(lambda: defaultdict(list))
        for v in kept:
            per_check[v.check_id][v.region].append(v)
        verdicts = {}
        certs = []
        for check_id, opts in self.options.items():
            by_region = per_check.get(check_id, {})
            states = [region_state(vs, opts.region_quorum) for vs in by_region.values()]
            known = {r.region for r in states}
            states += [RegionVerdict(r, NO_DATA) for r in opts.regions if r not in known]
            verdicts[check_id] = check_verdict(check_id, states, by_region)
            cert = self._cert_warning(opts, by_region)
            if cert:
                certs.append(cert)
        vantage = tuple(sorted(agent_vantage + region_vantage, key=lambda v: v.key))
        return Evaluation(
            now, verdicts, vantage, tuple(certs), frozenset(impaired_agents), frozenset(impaired_regions)
        )

    # --- impaired vantage points ---

    @staticmethod
    def _mostly_failing(views: Sequence[AgentView]) -> bool:
        failing = sum(v.state == FAIL for v in views)
        return len(views) >= IMPAIRED_MIN_CHECKS and failing >= IMPAIRED_SHARE * len(views)

    def _impaired_agents(
        self, fresh: Sequence[AgentView], by_check: dict[str, list[AgentView]]
    ) -> tuple[set[str], list[VantageVerdict]]:
        """An agent failing almost everything while its own region's other agents see those checks OK.

        Peers are taken from the agent's region: when the whole region fails, that is a question
        for the impaired-region rule, not many impaired agents.
        """
        by_agent: dict[str, list[AgentView]] = defaultdict(list)
        for v in fresh:
            by_agent[v.agent_id].append(v)
        impaired: set[str] = set()
        verdicts = []
        for agent_id, views in sorted(by_agent.items()):
            if not self._mostly_failing(views):
                continue
            failing = [v for v in views if v.state == FAIL]
            seen_ok = 0
            for v in failing:
                peers = [p for p in by_check[v.check_id] if p.region == v.region and p.agent_id != agent_id]
                if peers and sum(p.state == OK for p in peers) * 2 >= len(peers):
                    seen_ok += 1
            if seen_ok and seen_ok * 2 >= len(failing):
                impaired.add(agent_id)
                cause = dominant_cause(f for v in failing for f in v.failures)
                verdicts.append(
                    VantageVerdict("agent", views[0].region, agent_id, len(failing), len(views), cause)
                )
        return impaired, verdicts

    def _impaired_regions(self, kept: Sequence[AgentView]) -> tuple[set[str], list[VantageVerdict]]:
        """A region whose agents all fail almost everything while the other regions are fine."""
        by_region: dict[str, dict[str, list[AgentView]]] = defaultdict(lambda: defaultdict(list))
        by_check_region: dict[str, dict[str, list[AgentView]]] = defaultdict(lambda: defaultdict(list))
        for v in kept:
            by_region[v.region][v.agent_id].append(v)
            by_check_region[v.check_id][v.region].append(v)
        impaired: set[str] = set()
        verdicts = []
        for region, agents in sorted(by_region.items()):
            if not all(self._mostly_failing(vs) for vs in agents.values()):
                continue
            failing_checks = sorted({v.check_id for vs in agents.values() for v in vs if v.state == FAIL})
            fine_elsewhere = 0
            for check_id in failing_checks:
                quorum = self.options[check_id].region_quorum
                others = [
                    region_state(vs, quorum) for r, vs in by_check_region[check_id].items() if r != region
                ]
                if others and sum(o.state == UP for o in others) * 2 > len(others):
                    fine_elsewhere += 1
            if fine_elsewhere and fine_elsewhere * 2 >= len(failing_checks):
                impaired.add(region)
                checks = len({v.check_id for vs in agents.values() for v in vs})
                cause = dominant_cause(
                    f for vs in agents.values() for v in vs if v.state == FAIL for f in v.failures
                )
                verdicts.append(VantageVerdict("region", region, "", len(failing_checks), checks, cause))
        return impaired, verdicts

    # --- certificates ---

    @staticmethod
    def _cert_warning(opts: CheckOptions, by_region: dict[str, list[AgentView]]) -> CertWarning | None:
        if opts.probe != "tls":
            return None
        days_by_region = {}
        for region, views in by_region.items():
            days = [v.days_left for v in views if v.days_left is not None]
            if days:
                days_by_region[region] = min(days)
        low = {r: d for r, d in days_by_region.items() if d < opts.cert_expiry_warn_days}
        if not low:
            return None
        if len(days_by_region) < 2:
            scope = UNDETERMINED
        elif len(low) == len(days_by_region):
            scope = GLOBAL
        else:
            scope = REGIONAL
        return CertWarning(
            opts.check_id, scope, tuple(sorted(low)), min(low.values()), target_host(opts.target)
        )
