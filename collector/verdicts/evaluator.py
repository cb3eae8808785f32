"""Live verdicts: every `evaluate_every`, read the window from the store, decide, record events.

Agent states are computed in SQL (the last `confirm` outcomes per check and agent over the
window) and counted per (check, region), so Python sees one small row per (check, region) and
details only for failing agents and impairment suspects. Everything else the engine decides.

Restart safety: open events are read back from `outage_events` at start, so a restarted
collector continues the same events (same ids, next versions) instead of opening new ones;
event ids are deterministic and (event_id, version) is the table's key, so a version written
twice collapses. Notifications are tracked per sink in `event_notifications` (see notify.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from collector.config import CollectorConfig
from collector.errors import StoreError
from collector.store import Store
from collector.store.events import insert_events, open_event_rows
from collector.verdicts.engine import SUSPECT_SHARE, Engine
from collector.verdicts.events import KIND_SLO, Event, EventTracker, event_from_row
from collector.verdicts.model import (
    FAIL,
    FAILED,
    PARTIAL_OUTCOME,
    UP,
    AgentView,
    CheckOptions,
    Evaluation,
    RegionSample,
    RegionVerdict,
    failure_of,
)
from collector.verdicts.notify import Notifier
from probenet.v1.probe_pb2 import CheckSpec

log = logging.getLogger(__name__)

# Checks per query: keeps the IN list and the query text bounded.
CHECKS_PER_QUERY = 20_000
MAX_TICK_BACKOFF_S = 60.0

# One row per check. Its quiet regions (every fresh agent OK, no suspect, no certificate data)
# come as a layout string (region and agent count each); identical layouts (most checks) become
# one shared tuple in Python. The other regions come as arrays: each region's fresh agents counted by state, the failing ones with the
# result that made their state, and the suspects (agents failing at least SUSPECT_SHARE of their
# checks, the only ones that can be impaired). The agent-state rule is engine.agent_state, in SQL.
# "Down" is an agent whose latest result failed, confirmed or not: suspects are agents down on at
# least SUSPECT_SHARE of their checks, and each region names its down agents (onset hysteresis).
_SAMPLES_SQL = """
SELECT check_id,
       arrayStringConcat(arraySort(groupArrayIf(concat(region, char(31), toString(ok)), quiet)), char(30)),
       groupArrayIf(region, NOT quiet), groupArrayIf(ok, NOT quiet), groupArrayIf(fail, NOT quiet),
       groupArrayIf(partial, NOT quiet), groupArrayIf(bad, NOT quiet), groupArrayIf(suspects, NOT quiet),
       groupArrayIf(ifNull(days_left, nan), NOT quiet), groupArrayIf(downs, NOT quiet)
FROM (
SELECT check_id, region,
       countIf(state = 'OK') AS ok, countIf(state = 'FAIL') AS fail, countIf(state = 'PARTIAL') AS partial,
       groupArrayIf((agent_id, state), state IN ('FAIL', 'PARTIAL')) AS bad,
       groupArrayIf(agent_id, suspect) AS suspects,
       groupArrayIf(agent_id, down) AS downs,
       min(days_left) AS days_left,
       fail = 0 AND partial = 0 AND empty(suspects) AND empty(downs) AND isNull(days_left) AS quiet
FROM (
    SELECT check_id, region, agent_id, state, days_left, down,
           count() OVER agent AS agent_checks, countIf(down) OVER agent AS agent_downs,
           agent_downs > 0 AND agent_downs >= {suspect_share:Float64} * agent_checks AS suspect
    FROM (
        SELECT check_id, region, agent_id,
               -- One Int64 per result, time then outcome (0 failed, 1 partial, 2 success): sorting
               -- numbers is much cheaper than sorting (DateTime64, String) tuples.
               arraySlice(arrayReverseSort(groupArray(toUnixTimestamp64Milli(started_at) * 4
                   + (outcome = 'success') * 2 + (outcome = 'partial'))), 1, {confirm:UInt32}) AS recent,
               multiIf(length(recent) >= {confirm:UInt32} AND arrayAll(x -> x % 4 = 0, recent), 'FAIL',
                       arrayFirst(x -> x % 4 != 0, recent) % 4 = 2, 'OK',
                       arrayFirst(x -> x % 4 != 0, recent) % 4 = 1, 'PARTIAL',
                       'STALE') AS state,
               recent[1] % 4 = 0 AS down,
               argMax(tls_days_left, started_at) AS days_left
        FROM probe_results
        WHERE check_id IN {checks:Array(String)}
          AND started_at > fromUnixTimestamp64Milli({since:Int64})
          AND started_at <= fromUnixTimestamp64Milli({until:Int64})
        GROUP BY check_id, region, agent_id
    )
    WHERE state != 'STALE'
    WINDOW agent AS (PARTITION BY region, agent_id)
)
GROUP BY check_id, region
)
GROUP BY check_id
"""

# The result that made each failing agent's state, read only from the failing rows of the checks
# that have failing agents (computing it for every row costs a third of the query above).
_FAILURES_SQL = """
SELECT check_id, region, agent_id,
       argMaxIf(detail, started_at, outcome = 'failed'), argMaxIf(detail, started_at, outcome = 'partial')
FROM (
    SELECT check_id, region, agent_id, started_at, outcome,
           (failure_class, failure_host, substring(error, 1, 300),
            arrayZip(page_failed_hosts, page_failed_classes), toUnixTimestamp64Milli(started_at)) AS detail
    FROM probe_results
    WHERE check_id IN {checks:Array(String)}
      AND started_at > fromUnixTimestamp64Milli({since:Int64})
      AND started_at <= fromUnixTimestamp64Milli({until:Int64})
      AND outcome != 'success'
)
GROUP BY check_id, region, agent_id
"""


def _ms(ts: float) -> int:
    return round(ts * 1000)


def load_samples(
    store: Store, options: Iterable[CheckOptions], now: float
) -> tuple[list[RegionSample], dict[str, tuple[RegionVerdict, ...]]]:
    """Per-(check, region) samples at `now`, one query per (window, confirm) group of checks.

    The window's upper bound is `now` plus one interval: a result already in the store has
    happened, so one stamped in the future only says the agent's clock runs ahead. Suspects are
    found per group: with checks of different windows an agent is judged within each group.
    """
    groups: dict[tuple[float, float, int], list[str]] = defaultdict(list)
    for o in options:
        groups[(o.window, o.interval, o.confirm)].append(o.check_id)
    samples: list[RegionSample] = []
    quiet: dict[str, tuple[RegionVerdict, ...]] = {}
    layouts: dict[str, tuple[RegionVerdict, ...]] = {}
    for (window, interval, confirm), ids in sorted(groups.items()):
        for start in range(0, len(ids), CHECKS_PER_QUERY):
            params = {
                "checks": ids[start : start + CHECKS_PER_QUERY],
                "confirm": confirm,
                "since": _ms(now - window),
                "until": _ms(now + interval),
                "suspect_share": SUSPECT_SHARE,
            }
            _, rows = store.query(_SAMPLES_SQL, params)
            failing_checks = [row[0] for row in rows if any(row[6])]
            details: dict[tuple[str, str, str], tuple[Any, Any]] = {}
            if failing_checks:
                _, failures = store.query(_FAILURES_SQL, {**params, "checks": failing_checks})
                details = {(c, r, a): (failed, partial) for c, r, a, failed, partial in failures}
            for row in rows:
                if row[1]:
                    quiet[row[0]] = layouts.get(row[1]) or layouts.setdefault(row[1], _layout(row[1]))
                if row[2]:
                    samples.extend(_samples(row[:1] + row[2:], details))
    return samples, quiet


def _layout(text: str) -> tuple[RegionVerdict, ...]:
    states = (item.split("\x1f") for item in text.split("\x1e") if item)
    return tuple(RegionVerdict(region, UP, int(agents)) for region, agents in states)


def _samples(
    row: Sequence[Any], details: dict[tuple[str, str, str], tuple[Any, Any]]
) -> Iterator[RegionSample]:
    check_id, regions, oks, fails, partials, bads, suspects, days, downs = row
    for region, ok, fail, partial, bad, suspect, days_left, down in zip(
        regions, oks, fails, partials, bads, suspects, days, downs, strict=True
    ):
        views = (
            tuple(_failing_view(check_id, region, agent, state, details) for agent, state in bad)
            if bad
            else ()
        )
        days_value = None if math.isnan(days_left) else float(days_left)  # NULL travels as nan
        yield RegionSample(
            check_id,
            region,
            ok,
            fail,
            partial,
            views,
            tuple(sorted(suspect)),
            days_value,
            tuple(sorted(down)),
        )


def _failing_view(
    check_id: str,
    region: str,
    agent_id: str,
    state: str,
    details: dict[tuple[str, str, str], tuple[Any, Any]],
) -> AgentView:
    failed, partial = details.get((check_id, region, agent_id), (None, None))
    detail = failed if state == FAIL else partial
    if not detail or not detail[4]:  # (argMaxIf gives a zero tuple) it left the window in between
        return AgentView(check_id, region, agent_id, state, ())
    cls, host, error, page, at_ms = detail
    outcome = FAILED if state == FAIL else PARTIAL_OUTCOME
    failure = failure_of(outcome, cls, host, error, page, at=at_ms / 1000, agent_id=agent_id)
    return AgentView(check_id, region, agent_id, state, (failure,))


def load_open_events(store: Store) -> list[Event]:
    """The open events the tracker resumes (SLO burn alerts are collector.verdicts.slo_alerts')."""
    return [e for e in map(event_from_row, open_event_rows(store)) if e.kind != KIND_SLO]


def evaluate_every(checks: Sequence[CheckSpec], configured: float) -> float:
    """The tick: configured, else the smallest check interval (each check is still judged once
    per its own interval by the tracker)."""
    if configured > 0:
        return configured
    return min((CheckOptions.from_spec(c).interval for c in checks), default=30.0)


class Evaluator:
    """The live verdict loop of one collector."""

    def __init__(
        self, store: Store, checks: Sequence[CheckSpec], every: float = 0.0, notifier: Notifier | None = None
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.configured_every = every
        self.every = evaluate_every(checks, every)
        self.engine = Engine(checks)
        self.tracker: EventTracker | None = None
        self.latest: Evaluation | None = None
        self.open_events: list[Event] = []  # latest version of each open event, as of the last tick
        self.timings: dict[str, float] = {}
        self.ticks = 0
        # Called with the duration in seconds after every tick: how metrics see evaluations.
        self.on_tick: Callable[[float], None] | None = None
        # Called with the new event versions of a tick once they are stored (path evidence).
        self.on_changes: Callable[[list[Event]], None] | None = None

    async def resume(self) -> list[Event]:
        """Read open events back from the store; the tracker continues them."""
        open_events = await self.store.run(load_open_events, self.store)
        self.tracker = EventTracker(self.engine.options, open_events, self.configured_every)
        self.open_events = self.tracker.current()
        log.info("verdicts: resumed %d open events", len(open_events))
        return open_events

    def reconfigure(self, checks: Sequence[CheckSpec]) -> None:
        """New checks: same open events, new options (a removed check's events close next tick)."""
        self.engine = Engine(checks)
        self.every = evaluate_every(checks, self.configured_every)
        current = self.tracker.current() if self.tracker else []
        self.tracker = EventTracker(self.engine.options, current, self.configured_every)

    async def tick(self, now: float) -> list[Event]:
        if self.tracker is None:
            await self.resume()
        started = time.perf_counter()
        samples, quiet = await self.store.run(
            load_samples, self.store, list(self.engine.options.values()), now
        )
        read = time.perf_counter()
        # Off the event loop: at 10,000 checks deciding takes a few hundred ms of CPU.
        evaluation, changes, open_events = await asyncio.to_thread(self._decide, now, samples, quiet)
        decided = time.perf_counter()
        # Stored before anything is sent: a version that exists is one that may be notified.
        await self.store.run(insert_events, self.store, changes)
        self.latest = evaluation
        self.open_events = open_events
        self.ticks += 1
        self.timings = {
            "read_s": read - started,
            "decide_s": decided - read,
            "write_s": time.perf_counter() - decided,
        }
        if self.on_tick is not None:
            self.on_tick(time.perf_counter() - started)
        if self.notifier and changes:
            self.notifier.submit(changes)
        if self.on_changes is not None and changes:
            self.on_changes(changes)
        return changes

    def _decide(
        self, now: float, samples: list[RegionSample], quiet: dict[str, tuple[RegionVerdict, ...]]
    ) -> tuple[Evaluation, list[Event], list[Event]]:
        assert self.tracker is not None
        # The previous evaluation is the engine's vantage memory (onset and recovery holds).
        evaluation = self.engine.evaluate_samples(now, samples, quiet, self.latest)
        changes = self.tracker.update(evaluation)
        return evaluation, changes, self.tracker.current()


def next_tick(now: float, every: float) -> float:
    """Ticks aligned to multiples of `every`, so replicas and restarts tick at the same instants."""
    return (math.floor(now / every) + 1) * every


async def evaluate_forever(evaluator: Evaluator, current_config: Callable[[], CollectorConfig]) -> None:
    """Tick until cancelled; a changed set of checks (config reload) reconfigures the evaluator."""
    version = current_config().checks_version
    backoff = 1.0
    while True:
        await asyncio.sleep(max(0.0, next_tick(time.time(), evaluator.every) - time.time()))
        current = current_config()
        if current.checks_version != version:
            version = current.checks_version
            evaluator.reconfigure(current.checks)
        try:
            await evaluator.tick(time.time())
            backoff = 1.0
        except StoreError as exc:
            log.warning("verdicts: tick failed, retrying in %.0fs: %s", backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_TICK_BACKOFF_S)
        except Exception:
            # A bug must not end verdicts for the collector's lifetime: log it, keep ticking.
            log.exception("verdicts: tick failed")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_TICK_BACKOFF_S)
