"""Availability from the verdict history (pure: time ranges, intervals and counts in, figures out).

Over a range, for a check or one of its regions, every second is one of:

- **excluded**: in a maintenance window for it (rounded out to whole 6-minute slots), or, for a
  region, while the region was an impaired vantage point (a `vantage` event of scope `region`);
- **no data**: not excluded, in a 6-minute slot without any result (for the check: of any region);
- **down**: in an event version with status `outage` (for a region: one that lists it);
- **degraded**: in a version with status `partial` (and not down);
- **up**: the rest.

measured = range - excluded - no data; availability = (measured - down - w * degraded) / measured,
w being `availability.partial_weight`. No data is never counted as up: it is reported apart.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Interval = tuple[float, float]


@dataclass(frozen=True)
class Exclusion:
    """Time that does not count: checks by glob, regions (empty: the check and all its regions)."""

    checks: str
    regions: tuple[str, ...]
    start: float
    end: float

    def covers(self, check: str, region: str) -> bool:
        if not fnmatch.fnmatchcase(check, self.checks):
            return False
        return not self.regions or (region != "" and region in self.regions)


class Version(NamedTuple):
    """One event version, from `updated_at` until the next version (or the close). A tuple:
    a report makes 40,000 of them, a frozen dataclass costs five times as much to make."""

    event: str
    kind: str
    check: str
    status: str
    scope: str
    regions: tuple[str, ...]
    cause: str
    cause_host: str
    start: float
    end: float
    opened_at: float
    closed_at: float | None


@dataclass(slots=True)
class Figures:
    """Seconds of each kind over a range, and what follows from them."""

    range_s: float = 0.0
    excluded_s: float = 0.0
    no_data_s: float = 0.0
    down_s: float = 0.0
    degraded_s: float = 0.0

    @property
    def measured_s(self) -> float:
        return max(0.0, self.range_s - self.excluded_s - self.no_data_s)

    def bad_s(self, weight: float) -> float:
        return self.down_s + weight * self.degraded_s

    def availability(self, weight: float) -> float | None:
        if self.measured_s <= 0:
            return None
        return max(0.0, 1.0 - self.bad_s(weight) / self.measured_s)

    def add(self, other: Figures) -> None:
        self.range_s += other.range_s
        self.excluded_s += other.excluded_s
        self.no_data_s += other.no_data_s
        self.down_s += other.down_s
        self.degraded_s += other.degraded_s

    def percent(self, weight: float) -> float | None:
        """The availability in percent as reported (4 decimals), None without measured time."""
        measured = self.range_s - self.excluded_s - self.no_data_s
        if measured <= 0:
            return None
        return round(100 * max(0.0, 1.0 - (self.down_s + weight * self.degraded_s) / measured), 4)

    def rank(self, weight: float) -> tuple[float, float]:
        """(availability, no data) as to_dict rounds them, availability 101 when there is
        none: what worst-first order sorts by."""
        availability = self.percent(weight)
        return 101.0 if availability is None else availability, round(self.no_data_s, 1)

    def to_dict(self, weight: float) -> dict[str, Any]:
        measured = self.range_s - self.excluded_s - self.no_data_s
        return {
            "availability": self.percent(weight),
            "measured_s": round(max(0.0, measured), 1),
            "down_s": round(self.down_s, 1),
            "degraded_s": round(self.degraded_s, 1),
            "excluded_s": round(self.excluded_s, 1),
            "no_data_s": round(self.no_data_s, 1),
        }


@dataclass(slots=True)
class Timeline:
    """What the history says about one check or region over a range."""

    down: list[Interval] = field(default_factory=list)
    degraded: list[Interval] = field(default_factory=list)
    excluded: list[Interval] = field(default_factory=list)


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def clipped(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    return merged([(max(a, start), min(b, end)) for a, b in intervals if a < end and b > start])


def minus(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """`intervals` without `holes` (both merged)."""
    out: list[Interval] = []
    for a, b in intervals:
        cursor = a
        for h0, h1 in holes:
            if h1 <= cursor or h0 >= b:
                continue
            if h0 > cursor:
                out.append((cursor, h0))
            cursor = max(cursor, h1)
        if cursor < b:
            out.append((cursor, b))
    return out


def length(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def figures(
    start: float, end: float, timeline: Timeline, covered_s: float, covered_excluded_s: float
) -> Figures:
    """The figures of one range. `covered_s`: time in slots with results; `covered_excluded_s`:
    the part of it inside the excluded time (so no data inside a window is not counted twice)."""
    if not timeline.excluded and not (timeline.down and timeline.degraded):
        return _plain_figures(start, end, timeline, covered_s)
    excluded = clipped(timeline.excluded, start, end) if timeline.excluded else []
    down = clipped(timeline.down, start, end) if timeline.down else []
    degraded = clipped(timeline.degraded, start, end) if timeline.degraded else []
    if excluded:
        down, degraded = minus(down, excluded), minus(degraded, excluded)
    if down and degraded:
        degraded = minus(degraded, down)
    excluded_s = length(excluded)
    uncovered_s = max(0.0, (end - start) - covered_s)
    uncovered_excluded_s = max(0.0, excluded_s - covered_excluded_s)
    return Figures(
        range_s=end - start,
        excluded_s=excluded_s,
        no_data_s=max(0.0, uncovered_s - uncovered_excluded_s),
        down_s=length(down),
        degraded_s=length(degraded),
    )


def _plain_figures(start: float, end: float, timeline: Timeline, covered_s: float) -> Figures:
    """figures() of a timeline that is only down or only degraded, nothing excluded (most are):
    no interval to cut out of another. Seconds of nothing are 0, as length() makes them."""
    bad = timeline.down or timeline.degraded
    if len(bad) == 1:
        a, b = bad[0]
        bad_s = min(b, end) - max(a, start) if a < end and b > start else 0
    else:
        bad_s = length(clipped(bad, start, end))
    down = bool(timeline.down)
    return Figures(
        range_s=end - start,
        excluded_s=0,
        no_data_s=float(max(0.0, (end - start) - covered_s)),
        down_s=bad_s if down else 0,
        degraded_s=0 if down else bad_s,
    )


def versions(rows: Iterable[Sequence[Any]], now: float) -> list[Version]:
    """Event versions as timed spans, from rows of (event id, version, kind, check, status,
    scope, regions, cause class, cause host, opened, updated, closed), ordered by event and
    version, the times in epoch milliseconds (closed None while open)."""
    out = []
    for event_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        rows_of = sorted(group, key=operator.itemgetter(1))
        closed_ms = rows_of[-1][11]
        closed = None if closed_ms is None else closed_ms / 1000
        for i, (_, _, kind, check, status, scope, regions, cls, host, opened_ms, updated_ms, _) in enumerate(
            rows_of
        ):
            opened = opened_ms / 1000
            span_end = rows_of[i + 1][10] / 1000 if i + 1 < len(rows_of) else (closed or now)
            out.append(
                Version(
                    event_id,
                    kind,
                    check,
                    status,
                    scope,
                    tuple(sorted(regions)),
                    cls,
                    host if cls else "",
                    opened if i == 0 else updated_ms / 1000,
                    span_end,
                    opened,
                    closed,
                )
            )
    return out


def timelines(
    keys: Collection[tuple[str, str]],
    spans: Sequence[Version],
    exclusions: Sequence[Exclusion],
    slot_s: float = 360.0,
) -> dict[tuple[str, str], Timeline]:
    """The timelines of the keys (check, region; region "" is the check as a whole) that were
    down, degraded or excluded at some time; every other key was up or had no data throughout.
    Impaired-region time is rounded out to whole slots, as maintenance windows are by the caller."""
    out: dict[tuple[str, str], Timeline] = {}
    impaired: dict[str, list[Interval]] = {}
    for span in spans:
        if span.kind == "vantage" and span.scope == "region":
            rounded = (math.floor(span.start / slot_s) * slot_s, math.ceil(span.end / slot_s) * slot_s)
            for region in span.regions:
                impaired.setdefault(region, []).append(rounded)
            continue
        if span.kind != "check" or span.status not in ("outage", "partial"):
            continue
        down, interval = span.status == "outage", (span.start, span.end)
        for key in [(span.check, region) for region in ("", *span.regions)]:
            if key in keys:
                timeline = out.get(key)
                if timeline is None:  # not setdefault: a Timeline per span costs more than the rest
                    timeline = out[key] = Timeline()
                (timeline.down if down else timeline.degraded).append(interval)
    if exclusions or impaired:
        matching: dict[str, list[Exclusion]] = {}
        for check, region in keys:
            if check not in matching:
                matching[check] = [e for e in exclusions if fnmatch.fnmatchcase(check, e.checks)]
            windows = [(e.start, e.end) for e in matching[check] if e.covers(check, region)]
            if region:
                windows += impaired.get(region, [])
            if windows:
                out.setdefault((check, region), Timeline()).excluded = merged(windows)
    return out


def excluded_pieces(timelines_: Iterable[Timeline], start: float, end: float, day_s: float) -> list[Interval]:
    """Elementary pieces of all excluded time in [start, end), cut at day boundaries: within a
    piece each (check, region) is either excluded throughout or not at all."""
    cuts = {start, end}
    for timeline in timelines_:
        for a, b in timeline.excluded:
            cuts.update(t for t in (a, b) if start < t < end)
    day = (start // day_s + 1) * day_s
    while day < end:
        cuts.add(day)
        day += day_s
    points = sorted(cuts)
    return list(itertools.pairwise(points))


def burn_rate(bad_s: float, measured_s: float, target: float) -> float | None:
    """How fast the error budget burns: the bad share of the window over the allowed share
    (1 = the budget lasts exactly the SLO window)."""
    if measured_s <= 0:
        return None
    return (bad_s / measured_s) / (1 - target / 100)


# (name, long window, short window, burn rate): page on a fast burn (2 % of a 30-day budget in
# an hour), ticket on a slow one (5 % in 6 hours), as in the SRE workbook's table.
BURN_ALERTS = (("fast_burn", "1h", "6m", 14.4), ("slow_burn", "6h", "30m", 6.0))


def burn_alert(rates: Mapping[str, float | None]) -> str | None:
    """The first burn-rate alert whose long and short windows both burn at its rate or faster."""
    for name, long, short, threshold in BURN_ALERTS:
        if all((rates.get(w) or 0.0) >= threshold for w in (long, short)):
            return name
    return None
