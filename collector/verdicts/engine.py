"""The verdict engine (DESIGN section 4): agent states -> vantage -> region states -> check verdicts.

Pure: no clock, no I/O. `now` is an argument, and so is the previous evaluation (the vantage
memory: suspects and recovering impairments); the same inputs always give the same output.

Settled evidence (DESIGN section 4). A region or agent is *pending* while its latest result
disagrees with its confirmed state. Each verdict names its pending regions (`Verdict.pending`:
regions whose state changes once their latest failures confirm) and the fault's first sign
(`Verdict.onset`); the event tracker waits for them within the latency budget (events.py). The
vantage rules use the same notion, with the previous evaluation as memory (`Settled`): a peer
whose success is the first after failing a check (it failed there at the previous evaluation)
does not "see the check OK", and a region affected at the previous evaluation, or one whose
failures are still pending, is not "fine elsewhere" — so a point still failing while the others
recover from a check outage, or the first region of a global one, is never impaired.

A vantage point's own incident breaks (and heals) its checks one after another as their probe
slots come round; meanwhile it is pending and *held*, left out of check verdicts like an
impaired one but with no event of its own:

- *onset*: an agent (or every non-impaired agent of a region) whose latest result failed,
  confirmed or not, on >= 80 % of its >= 3 checks, with the impairment rule's "others see them
  OK" judged on latest results too, is held while that lasts, for at most `hold_limit` seconds
  (the longest confirm x interval of the checks) from the first evaluation of that streak; one
  at >= 50 % (rising toward it) is held for that first evaluation only; a held agent's failures
  count as pending in its region;
- *recovery*: after an impairment ends, the point stays held while any of its checks' latest
  result still failed, for at most `hold_limit` seconds.

A single-check outage is never held (it is < 50 % of >= 3 checks), so detection latency is
unchanged for it, also during an incident elsewhere; an outage of 50-80 % of a point's checks
opens one evaluation later; >= 80 % may be held up to `hold_limit`, and once confirmed it is an
impairment anyway. The memory is the previous Evaluation (`memory`, `Hold` values, verdicts):
None after a restart, which only means no hold and no recovery known at the first evaluation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from collector.verdicts.model import (
    DOWN,
    FAIL,
    FAILED,
    GLOBAL,
    IMPAIRED,
    NO_DATA,
    OK,
    ONSET,
    PARTIAL,
    PARTIAL_OUTCOME,
    RECOVERING,
    REGION_PARTIAL,
    REGIONAL,
    RELEASED,
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
    Hold,
    RegionSample,
    RegionVerdict,
    Result,
    VantageVerdict,
    Verdict,
    agent_key,
    split_agent_key,
    target_host,
)
from probenet.v1.probe_pb2 import CheckSpec

# Impaired vantage (DESIGN section 4): >= 80 % of >= 3 checks failing while others see them OK.
IMPAIRED_SHARE = 0.8
IMPAIRED_MIN_CHECKS = 3
# Agents whose latest result failed on at least this share of their checks are impairment
# candidates ("suspects"), and held for one evaluation (rising toward impairment): the store
# reports each suspect's every state, and everyone else only as counts.
SUSPECT_SHARE = 0.5
AGENT, REGION = "agent", "region"


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
    # Each failing agent gives one vote to the cause: its latest result of the kind that made its
    # state (a PARTIAL agent's unconfirmed failure does not speak for it yet).
    wanted = FAILED if state == FAIL else PARTIAL_OUTCOME
    latest = next((r for r in recent if r.outcome == wanted), None) if state in (FAIL, PARTIAL) else None
    failures = (latest.failure(),) if latest else ()
    days = next((r.tls_days_left for r in latest_first if r.tls_days_left is not None), None)
    return AgentView(
        first.check_id, first.region, first.agent_id, state, failures, days, first.outcome == FAILED
    )


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


def samples_from_views(views: Iterable[AgentView]) -> list[RegionSample]:
    """Group agent states per (check, region), as the store's SQL does."""
    fresh = [v for v in views if v.state != STALE]
    # An agent is (region, agent id): two regions' `it-1` are two agents (one may be hostile).
    totals: Counter[tuple[str, str]] = Counter((v.region, v.agent_id) for v in fresh)
    downs: Counter[tuple[str, str]] = Counter((v.region, v.agent_id) for v in fresh if v.down)
    suspects = {a for a, n in totals.items() if downs[a] and downs[a] >= SUSPECT_SHARE * n}
    grouped: dict[tuple[str, str], list[AgentView]] = defaultdict(list)
    for v in fresh:
        grouped[(v.check_id, v.region)].append(v)
    samples = []
    for (check_id, region), vs in sorted(grouped.items()):
        days = [v.days_left for v in vs if v.days_left is not None]
        samples.append(
            RegionSample(
                check_id,
                region,
                ok=sum(v.state == OK for v in vs),
                fail=sum(v.state == FAIL for v in vs),
                partial=sum(v.state == PARTIAL for v in vs),
                bad=tuple(v for v in vs if v.state in (FAIL, PARTIAL)),
                suspects=tuple(sorted(v.agent_id for v in vs if (v.region, v.agent_id) in suspects)),
                days_left=min(days) if days else None,
                down=tuple(sorted(v.agent_id for v in vs if v.down)),
            )
        )
    return samples


def region_state(sample: RegionSample, quorum: float) -> RegionVerdict:
    n, failing, partial = sample.ok + sample.fail + sample.partial, sample.fail, sample.partial
    if n == 0:
        return RegionVerdict(sample.region, NO_DATA)
    if failing == 0 and partial == 0:
        return RegionVerdict(sample.region, UP, n)
    if failing >= quorum * n:
        state = DOWN
    elif failing + partial >= quorum * n:
        state = REGION_PARTIAL
    else:
        state = UP
    return RegionVerdict(sample.region, state, n, failing, partial)


def check_verdict(
    check_id: str,
    states: Sequence[RegionVerdict],
    by_region: Mapping[str, RegionSample],
    confirm_span: float = 0.0,
) -> Verdict:
    """`confirm_span` is (confirm - 1) x interval: how long before its latest failure a FAIL
    agent's failing streak began (at the evaluation that confirms it)."""
    ordered = tuple(sorted(states))
    with_data = [r for r in ordered if r.state != NO_DATA]
    affected = [r.region for r in with_data if r.state in (DOWN, REGION_PARTIAL)]
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
    views = [v for region in affected for v in by_region[region].bad]
    failures = [f for v in views for f in v.failures]
    # Each failing agent's streak began `confirm_span` before its latest failure (at the evaluation
    # that confirms it): the earliest start is the fault's first sign.
    starts = [f.at - (confirm_span if v.state == FAIL else 0.0) for v in views for f in v.failures]
    onset = min(starts) if starts else None
    return Verdict(check_id, status, scope, tuple(affected), dominant_cause(failures), ordered, onset=onset)


def confirmed(sample: RegionSample) -> RegionSample:
    """The sample as it will be if every agent's latest failure confirms (what pending means)."""
    bad = {v.agent_id: v.state for v in sample.bad}
    was_ok = sum(a not in bad for a in sample.down)
    was_partial = sum(bad.get(a) == PARTIAL for a in sample.down)
    if not was_ok and not was_partial:
        return sample
    return sample._replace(
        ok=sample.ok - was_ok, partial=sample.partial - was_partial, fail=sample.fail + was_ok + was_partial
    )


class Settled(NamedTuple):
    """What the previous evaluation says about recoveries: a check's failing agents per region
    (`bad`: FAIL + PARTIAL) and its affected regions. An agent that failed a check there at the
    previous evaluation and sees it OK now is pending (a first success after failures): it is
    no evidence that a peer is alone, nor is a just-recovered region evidence that another is."""

    bad: Mapping[tuple[str, str], int]
    affected: frozenset[tuple[str, str]]
    # Regions left out of the previous verdicts (impaired or held): nothing there has settled.
    left_out: frozenset[str] = frozenset()

    @classmethod
    def of(cls, previous: Evaluation | None) -> Settled:
        bad: dict[tuple[str, str], int] = {}
        affected: set[tuple[str, str]] = set()
        left_out: frozenset[str] = frozenset()
        if previous is not None:
            left_out = previous.impaired_regions | previous.held_regions
            for v in previous.verdicts.values():
                if v.status not in (STATUS_OUTAGE, STATUS_PARTIAL):
                    continue
                affected.update((v.check_id, r) for r in v.regions)
                for r in v.region_states:
                    if r.failing or r.partial:
                        bad[(v.check_id, r.region)] = r.failing + r.partial
        return cls(bad, frozenset(affected), left_out)

    def recovered(self, sample: RegionSample) -> int:
        """Agents of the sample that stopped failing its check since the previous evaluation
        (all of its OK agents, if the region was left out of the previous verdicts)."""
        if sample.region in self.left_out:
            return sample.ok
        before = self.bad.get((sample.check_id, sample.region), 0)
        return max(0, before - sample.fail - sample.partial)

    def fine(self, check_id: str, region: str) -> bool:
        return (check_id, region) not in self.affected and region not in self.left_out


NOTHING_SETTLED = Settled({}, frozenset())


def _without(sample: RegionSample, agents: set[str] | frozenset[str]) -> RegionSample:
    """The sample minus some agents: those named as suspects, failing or down here (an agent that
    is none of these is OK here and not down; keeping it is keeping a fresh OK vote)."""
    bad = {v.agent_id: v for v in sample.bad}
    gone = {a for a in (*sample.suspects, *bad, *sample.down) if a in agents}
    if not gone:
        return sample
    ok, fail, partial = sample.ok, sample.fail, sample.partial
    for agent in gone:
        view = bad.pop(agent, None)
        if view is None:
            ok -= 1
        elif view.state == FAIL:
            fail -= 1
        else:
            partial -= 1
    return sample._replace(
        ok=ok,
        fail=fail,
        partial=partial,
        bad=tuple(bad.values()),
        suspects=tuple(a for a in sample.suspects if a not in gone),
        down=tuple(a for a in sample.down if a not in gone),
    )


def _seeing_ok(sample: RegionSample, settled: Settled) -> int:
    """Agents here that are OK, whose latest result did not fail and that did not fail this check
    at the previous evaluation: an unconfirmed failure keeps an agent OK, but it does not "see
    the check OK", and neither does a first success after failures (both are pending)."""
    failing = {v.agent_id for v in sample.bad}
    return sample.ok - sum(a not in failing for a in sample.down) - settled.recovered(sample)


def _others_see_ok(failing: Sequence[RegionSample], settled: Settled) -> bool:
    """For at least half of an agent's failing checks, at least half of its region peers see them OK."""
    seen_ok = 0
    for s in failing:
        peers = s.agents - 1
        if peers and _seeing_ok(s, settled) * 2 >= peers:
            seen_ok += 1
    return bool(seen_ok) and seen_ok * 2 >= len(failing)


class Engine:
    """Decides verdicts for a set of checks. Construct once per configuration; reuse every tick,
    passing each evaluation as the next one's `previous` (the vantage memory)."""

    def __init__(self, checks: Iterable[CheckSpec | CheckOptions]) -> None:
        self.options: dict[str, CheckOptions] = {}
        for check in checks:
            opts = check if isinstance(check, CheckOptions) else CheckOptions.from_spec(check)
            self.options[opts.check_id] = opts
        # Long enough for every check's failures to confirm (onset) or for every check to be
        # probed again (recovery); bounded, so a hold never hides a real outage for long.
        self.hold_limit = max((o.confirm * o.interval for o in self.options.values()), default=0.0)

    def views(self, now: float, results: Iterable[Result]) -> list[AgentView]:
        """Agent states from raw results: those started in (now - window, now] of their check."""
        grouped: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
        for r in results:
            opts = self.options.get(r.check_id)
            if opts is not None and now - opts.window < r.started_at <= now:
                grouped[(r.check_id, r.region, r.agent_id)].append(r)
        views = []
        for (check_id, _, _), rs in sorted(grouped.items()):
            rs.sort(key=lambda r: r.started_at, reverse=True)
            views.append(view_from_results(self.options[check_id], rs))
        return views

    def evaluate(
        self, now: float, results: Iterable[Result], previous: Evaluation | None = None
    ) -> Evaluation:
        return self.evaluate_views(now, self.views(now, results), previous)

    def evaluate_views(
        self, now: float, views: Iterable[AgentView], previous: Evaluation | None = None
    ) -> Evaluation:
        samples = samples_from_views(v for v in views if v.check_id in self.options)
        return self.evaluate_samples(now, samples, previous=previous)

    def evaluate_samples(
        self,
        now: float,
        samples: Iterable[RegionSample],
        quiet: Mapping[str, tuple[RegionVerdict, ...]] | None = None,
        previous: Evaluation | None = None,
    ) -> Evaluation:
        """Verdicts from per-(check, region) samples (built here from views, or by SQL in the store).

        `quiet` may carry, instead of samples, each check's quiet regions (every fresh agent OK
        and not down, no suspect among them, no certificate data): their UP states, sorted by
        region. Share one tuple between checks with the same layout: at 10,000 checks these are
        most regions of most checks, and they need no deciding.

        `previous` is the evaluation before this one (None: no memory, e.g. after a restart):
        impaired and held vantage points are left out of check verdicts (see the module doc).
        """
        quiet = quiet or {}
        memory = {(h.scope, h.name): h for h in previous.memory} if previous else {}
        settled = Settled.of(previous) if previous else NOTHING_SETTLED
        by_check: dict[str, list[RegionSample]] = defaultdict(list)
        suspect_samples: list[RegionSample] = []
        options = self.options
        for s in samples:
            if s.check_id in options and (s.ok or s.fail or s.partial):
                by_check[s.check_id].append(s)
                if s.suspects:
                    suspect_samples.append(s)
        # A region recovering from an incident explains its agents' failures: none of them is an
        # impaired agent of its own meanwhile.
        recovering = {
            name
            for (scope, name), h in memory.items()
            if scope == REGION and self._still_recovering(h, now) and self._region_down(name, by_check)
        }
        judged = [s for s in suspect_samples if s.region not in recovering]
        impaired_agents, agent_vantage = self._impaired_agents(judged, settled)
        if impaired_agents:
            self._drop_agents(by_check, {s.check_id for s in suspect_samples}, impaired_agents)
            suspect_samples = [s for ss in by_check.values() for s in ss if s.suspects]
        impaired_regions, region_vantage = self._impaired_regions(suspect_samples, by_check, quiet, settled)
        holds = self._holds(
            now,
            memory,
            by_check=by_check,
            suspect_samples=suspect_samples,
            quiet=quiet,
            impaired_agents=impaired_agents,
            impaired_regions=impaired_regions,
            settled=settled,
        )
        held_agents = frozenset(h.name for h in holds if h.scope == AGENT and h.held)
        held_regions = frozenset(h.name for h in holds if h.scope == REGION and h.held)
        left_out = impaired_regions | held_regions
        # Before held agents are left out: a held agent's failures are pending in its region, and
        # a held region is pending wherever it is down (impaired or not is not settled yet).
        prospects = self._prospects(by_check, impaired_regions)
        if held_agents:
            self._drop_agents(by_check, set(by_check), held_agents)
        verdicts = {}
        certs = []
        for check_id, opts in options.items():
            quiet_states = quiet.get(check_id, ())
            if check_id not in by_check:
                verdicts[check_id] = self._quiet_verdict(opts, quiet_states)
                continue
            region_samples = by_check[check_id]
            if left_out:
                region_samples = [s for s in region_samples if s.region not in left_out]
            verdicts[check_id] = self._verdict(
                opts, region_samples, quiet_states, prospects.get(check_id, {})
            )
            if opts.probe == "tls" and region_samples:
                cert = self._cert_warning(opts, {s.region: s for s in region_samples})
                if cert:
                    certs.append(cert)
        vantage = tuple(sorted(agent_vantage + region_vantage, key=lambda v: v.key))
        return Evaluation(
            now,
            verdicts,
            vantage,
            tuple(certs),
            frozenset(impaired_agents),
            frozenset(impaired_regions),
            held_agents,
            held_regions,
            tuple(sorted(holds)),
        )

    @staticmethod
    def _drop_agents(
        by_check: dict[str, list[RegionSample]], checks: Iterable[str], keys: set[str] | frozenset[str]
    ) -> None:
        by_region: dict[str, set[str]] = defaultdict(set)
        for region, agent_id in map(split_agent_key, keys):
            by_region[region].add(agent_id)
        for check_id in checks:
            kept = (
                _without(s, by_region[s.region]) if s.region in by_region else s for s in by_check[check_id]
            )
            by_check[check_id] = [s for s in kept if s.agents]

    @staticmethod
    def _quiet_verdict(opts: CheckOptions, states: tuple[RegionVerdict, ...]) -> Verdict:
        if opts.regions:
            known = {r.region for r in states}
            missing = [RegionVerdict(r, NO_DATA) for r in opts.regions if r not in known]
            if missing:
                states = tuple(sorted((*states, *missing)))
        if not states:
            return Verdict(opts.check_id, STATUS_UNKNOWN, UNDETERMINED, (), None, ())
        return Verdict(opts.check_id, STATUS_OK, "", (), None, states)

    def _prospects(
        self, by_check: Mapping[str, Sequence[RegionSample]], left_out: frozenset[str] | set[str]
    ) -> dict[str, dict[str, str]]:
        """Per check, the state of each region with a latest failure not yet confirmed, as it will
        be once it confirms (impaired regions are the vantage rules' business)."""
        out: dict[str, dict[str, str]] = {}
        for check_id, ss in by_check.items():
            quorum = self.options[check_id].region_quorum
            for s in ss:
                if s.down and s.region not in left_out:
                    state = region_state(confirmed(s), quorum).state
                    if state != UP:
                        out.setdefault(check_id, {})[s.region] = state
        return out

    def _verdict(
        self,
        opts: CheckOptions,
        samples: Sequence[RegionSample],
        quiet_states: tuple[RegionVerdict, ...],
        prospects: Mapping[str, str],
    ) -> Verdict:
        if not prospects and all(s.fail == 0 and s.partial == 0 for s in samples):
            # The common case, kept cheap: every region with data is UP and settled.
            states = (*quiet_states, *(RegionVerdict(s.region, UP, s.ok) for s in samples))
            return self._quiet_verdict(opts, tuple(sorted(states)))
        by_region = {s.region: s for s in samples}
        region_states = [*quiet_states, *(region_state(s, opts.region_quorum) for s in samples)]
        known = {r.region for r in region_states}
        region_states += [RegionVerdict(r, NO_DATA) for r in opts.regions if r not in known]
        verdict = check_verdict(opts.check_id, region_states, by_region, (opts.confirm - 1) * opts.interval)
        if prospects:
            now_states = {r.region: r.state for r in verdict.region_states}
            pending = tuple(sorted(r for r, st in prospects.items() if now_states.get(r, NO_DATA) != st))
            if pending:
                verdict = replace(verdict, pending=pending)
        return verdict

    # --- impaired vantage points ---

    @staticmethod
    def _suspect_views(
        samples: Iterable[RegionSample],
    ) -> dict[str, list[tuple[RegionSample, str, AgentView | None]]]:
        """Every state of every suspect agent: (sample, state, its failing view if any)."""
        out: dict[str, list[tuple[RegionSample, str, AgentView | None]]] = defaultdict(list)
        for s in samples:
            if not s.suspects:
                continue
            bad = {v.agent_id: v for v in s.bad}
            for agent in s.suspects:
                view = bad.get(agent)
                out[agent_key(s.region, agent)].append((s, view.state if view else OK, view))
        return out

    @staticmethod
    def _mostly_failing(states: Sequence[str]) -> bool:
        failing = sum(st == FAIL for st in states)
        return len(states) >= IMPAIRED_MIN_CHECKS and failing >= IMPAIRED_SHARE * len(states)

    @staticmethod
    def _down_share(key: str, entries: Sequence[tuple[RegionSample, str, AgentView | None]]) -> float:
        """Share of an agent's checks whose latest result failed (0 below IMPAIRED_MIN_CHECKS)."""
        if len(entries) < IMPAIRED_MIN_CHECKS:
            return 0.0
        _, agent_id = split_agent_key(key)
        return sum(agent_id in s.down for s, _, _ in entries) / len(entries)

    def _impaired_agents(
        self, samples: Sequence[RegionSample], settled: Settled
    ) -> tuple[set[str], list[VantageVerdict]]:
        """An agent failing almost everything while its own region's other agents see those checks OK
        (their state is OK and their latest result did not fail).

        Peers are taken from the agent's region: when the whole region fails, that is a question
        for the impaired-region rule, not many impaired agents.
        """
        impaired: set[str] = set()
        verdicts = []
        for key, entries in sorted(self._suspect_views(samples).items()):
            if not self._mostly_failing([st for _, st, _ in entries]):
                continue
            failing = [(s, v) for s, st, v in entries if st == FAIL]
            if _others_see_ok([s for s, _ in failing], settled):
                impaired.add(key)
                cause = dominant_cause(f for _, v in failing if v for f in v.failures)
                region, agent_id = split_agent_key(key)
                verdicts.append(VantageVerdict("agent", region, agent_id, len(failing), len(entries), cause))
        return impaired, verdicts

    def _region_candidates(
        self,
        suspect_samples: Sequence[RegionSample],
        by_check: Mapping[str, Sequence[RegionSample]],
        quiet: Mapping[str, tuple[RegionVerdict, ...]],
    ) -> dict[str, tuple[list[RegionSample], dict[str, list[tuple[RegionSample, str, AgentView | None]]]]]:
        """Regions whose every agent with data is a suspect: their samples and their agents' views."""
        suspects = self._suspect_views(suspect_samples)
        candidates = {s.region for s in suspect_samples}
        if candidates and quiet:
            # A quiet check has no suspect: its regions have agents that are not failing much.
            layouts = {id(states): states for states in quiet.values()}.values()
            candidates -= {r.region for states in layouts for r in states}
        out = {}
        for region in sorted(candidates):
            region_samples = [s for ss in by_check.values() for s in ss if s.region == region]
            # Agents that are not suspects fail less than half of their checks: not "almost everything".
            if any(s.agents > len(s.suspects) for s in region_samples):
                continue
            agents = {agent_key(region, a) for s in region_samples for a in s.suspects}
            out[region] = (region_samples, {a: suspects[a] for a in agents})
        return out

    def _impaired_regions(
        self,
        suspect_samples: Sequence[RegionSample],
        by_check: Mapping[str, Sequence[RegionSample]],
        quiet: Mapping[str, tuple[RegionVerdict, ...]],
        settled: Settled,
    ) -> tuple[set[str], list[VantageVerdict]]:
        """A region whose agents all fail almost everything while the other regions are fine (UP,
        and not just recovered from this check's outage: that is pending)."""
        impaired: set[str] = set()
        verdicts = []
        for region, (region_samples, agents) in self._region_candidates(
            suspect_samples, by_check, quiet
        ).items():
            if not all(self._mostly_failing([st for _, st, _ in entries]) for entries in agents.values()):
                continue
            failing = sorted((s for s in region_samples if s.fail), key=lambda s: s.check_id)
            fine_elsewhere = 0
            for s in failing:
                quorum = self.options[s.check_id].region_quorum
                # As they will be once their latest failures confirm: a region with failures still
                # pending is not "fine" yet (it may be the next region of a global outage).
                others = [
                    region_state(confirmed(o), quorum) for o in by_check[s.check_id] if o.region != region
                ]
                others += [q for q in quiet.get(s.check_id, ()) if q.region != region]
                fine = sum(o.state == UP and settled.fine(s.check_id, o.region) for o in others)
                if others and fine * 2 > len(others):
                    fine_elsewhere += 1
            if fine_elsewhere and fine_elsewhere * 2 >= len(failing):
                impaired.add(region)
                cause = dominant_cause(
                    f for s in failing for v in s.bad if v.state == FAIL for f in v.failures
                )
                verdicts.append(
                    VantageVerdict("region", region, "", len(failing), len(region_samples), cause)
                )
        return impaired, verdicts

    # --- held vantage points (hysteresis) ---

    def _holds(
        self,
        now: float,
        memory: Mapping[tuple[str, str], Hold],
        *,
        by_check: Mapping[str, Sequence[RegionSample]],
        suspect_samples: Sequence[RegionSample],
        quiet: Mapping[str, tuple[RegionVerdict, ...]],
        impaired_agents: set[str],
        impaired_regions: set[str],
        settled: Settled,
    ) -> list[Hold]:
        """This evaluation's memory: impaired, suspect and recovering vantage points."""
        holds = [
            Hold(REGION, r, IMPAIRED, self._since(memory, REGION, r, IMPAIRED, now)) for r in impaired_regions
        ]
        holds += [
            Hold(AGENT, a, IMPAIRED, self._since(memory, AGENT, a, IMPAIRED, now)) for a in impaired_agents
        ]
        for (scope, name), h in memory.items():
            if name in (impaired_regions if scope == REGION else impaired_agents):
                continue
            if not self._still_recovering(h, now):
                continue
            down = self._region_down(name, by_check) if scope == REGION else self._agent_down(name, by_check)
            if down:
                holds.append(Hold(scope, name, RECOVERING, h.since if h.phase == RECOVERING else now))
        taken = {(h.scope, h.name) for h in holds}
        kept = [s for s in suspect_samples if s.region not in impaired_regions]
        for region, share in self._region_suspicion(kept, by_check, quiet, settled).items():
            if (REGION, region) not in taken:
                holds.append(self._onset(memory, REGION, region, share, now))
                taken.add((REGION, region))
        regions_held = {h.name for h in holds if h.scope == REGION and h.held} | impaired_regions
        unheld = (s for s in kept if s.region not in regions_held)
        for agent, share in self._agent_suspicion(unheld, settled).items():
            if (AGENT, agent) not in taken:
                holds.append(self._onset(memory, AGENT, agent, share, now))
        return holds

    def _still_recovering(self, h: Hold, now: float) -> bool:
        """Impaired at the previous evaluation, or recovering for less than `hold_limit`."""
        return h.phase == IMPAIRED or (h.phase == RECOVERING and now - h.since < self.hold_limit)

    @staticmethod
    def _since(
        memory: Mapping[tuple[str, str], Hold], scope: str, name: str, phase: str, now: float
    ) -> float:
        h = memory.get((scope, name))
        return h.since if h and h.phase == phase else now

    def _onset(
        self, memory: Mapping[tuple[str, str], Hold], scope: str, name: str, share: float, now: float
    ) -> Hold:
        """A suspect: held while its failures may still confirm, within limits."""
        h = memory.get((scope, name))
        since = h.since if h and h.phase in (ONSET, RELEASED) else now
        pending = share >= IMPAIRED_SHARE
        held = now - since < self.hold_limit and (pending or since == now)
        return Hold(scope, name, ONSET if held else RELEASED, since)

    def _agent_suspicion(self, samples: Iterable[RegionSample], settled: Settled) -> dict[str, float]:
        """Agents down on >= SUSPECT_SHARE of >= 3 checks while their region peers see them OK."""
        out = {}
        for key, entries in self._suspect_views(samples).items():
            share = self._down_share(key, entries)
            if share < SUSPECT_SHARE:
                continue
            _, agent_id = split_agent_key(key)
            if _others_see_ok([s for s, _, _ in entries if agent_id in s.down], settled):
                out[key] = share
        return out

    def _region_suspicion(
        self,
        suspect_samples: Sequence[RegionSample],
        by_check: Mapping[str, Sequence[RegionSample]],
        quiet: Mapping[str, tuple[RegionVerdict, ...]],
        settled: Settled,
    ) -> dict[str, float]:
        """Regions whose every agent is down on >= SUSPECT_SHARE of >= 3 checks while most other
        regions' agents are not down on most of those checks: the lowest agent share."""
        out = {}
        for region, (region_samples, agents) in self._region_candidates(
            suspect_samples, by_check, quiet
        ).items():
            share = min((self._down_share(a, entries) for a, entries in agents.items()), default=0.0)
            if share < SUSPECT_SHARE:
                continue
            down = [s for s in region_samples if s.down]
            fine_elsewhere = 0
            for s in down:
                quorum = self.options[s.check_id].region_quorum
                check_id = s.check_id
                others = [
                    len(o.down) < quorum * o.agents and settled.fine(check_id, o.region)
                    for o in by_check[check_id]
                    if o.region != region
                ]
                others += [
                    settled.fine(check_id, q.region) for q in quiet.get(check_id, ()) if q.region != region
                ]
                if others and sum(others) * 2 > len(others):
                    fine_elsewhere += 1
            if fine_elsewhere and fine_elsewhere * 2 >= len(down):
                out[region] = share
        return out

    @staticmethod
    def _region_down(region: str, by_check: Mapping[str, Sequence[RegionSample]]) -> bool:
        """Some check's latest result in the region failed (a quiet region has none)."""
        return any(s.region == region and (s.down or s.fail) for ss in by_check.values() for s in ss)

    @staticmethod
    def _agent_down(key: str, by_check: Mapping[str, Sequence[RegionSample]]) -> bool:
        region, agent_id = split_agent_key(key)
        return any(
            agent_id in s.down or any(v.agent_id == agent_id and v.state == FAIL for v in s.bad)
            for ss in by_check.values()
            for s in ss
            if s.region == region
        )

    # --- certificates ---

    @staticmethod
    def _cert_warning(opts: CheckOptions, by_region: Mapping[str, RegionSample]) -> CertWarning | None:
        days_by_region = {r: s.days_left for r, s in by_region.items() if s.days_left is not None}
        # An expired certificate is an outage (tls_cert_expired), not a warning about the future.
        low = {r: d for r, d in days_by_region.items() if 0 <= d < opts.cert_expiry_warn_days}
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
