"""Replay results through the engine on ticks derived from their timestamps (what `classify` runs)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from collector.verdicts.engine import Engine
from collector.verdicts.events import Event, EventTracker
from collector.verdicts.model import CheckOptions, Evaluation, Result
from probenet.v1.probe_pb2 import CheckSpec


@dataclass(frozen=True)
class Replay:
    events: list[Event]  # every version made, in order
    evaluations: int
    ticks: tuple[float, ...]


def default_every(options: Iterable[CheckOptions]) -> float:
    intervals = [o.interval for o in options]
    return min(intervals) if intervals else 30.0


def ticks_for(results: Sequence[Result], every: float, close_after: int) -> list[float]:
    """Every `every` seconds (aligned to multiples of it) from the first result until
    `close_after` ticks after the last, so a recovery at the end can close its events."""
    if not results:
        return []
    first = min(r.started_at for r in results)
    last = max(r.started_at for r in results)
    start = math.ceil(first / every) * every
    count = math.floor((last - start) / every) + 1 + close_after
    return [start + k * every for k in range(max(count, 1))]


def replay(
    checks: Iterable[CheckSpec | CheckOptions],
    results: Iterable[Result],
    every: float = 0.0,
    on_evaluation: Callable[[Evaluation, list[Event]], None] | None = None,
) -> Replay:
    engine = Engine(checks)
    # As live: an explicit `every` judges every check at every tick; by default each check is
    # judged once per its own interval on ticks of the smallest one.
    configured = every
    every = every or default_every(engine.options.values())
    ordered = sorted(results, key=lambda r: (r.started_at, r.agent_id, r.check_id))
    close_after = max((o.close_after for o in engine.options.values()), default=2)
    ticks = ticks_for(ordered, every, close_after)
    tracker = EventTracker(engine.options, every=configured)
    events: list[Event] = []
    lo = 0
    previous: Evaluation | None = None
    max_window = max((o.window for o in engine.options.values()), default=every)
    for now in ticks:
        # Only results that can be in some window matter: keeps a long replay linear.
        while lo < len(ordered) and ordered[lo].started_at <= now - max_window:
            lo += 1
        hi = lo
        while hi < len(ordered) and ordered[hi].started_at <= now:
            hi += 1
        evaluation = previous = engine.evaluate(now, ordered[lo:hi], previous)
        changes = tracker.update(evaluation)
        events.extend(changes)
        if on_evaluation:
            on_evaluation(evaluation, changes)
    return Replay(events, len(ticks), tuple(ticks))
