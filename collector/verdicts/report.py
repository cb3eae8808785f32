"""The availability report and the status page's daily bars, from bounded reads of the store.

Reads: the slots with results per check, region and week (`probe_results_1w`: one row a week,
a day per column, so 90 days of 10,000 checks x 20 regions is 2.9 M rows, never minutes), in one
read that also counts each SLO window, another for the burn-rate windows, and the versions of
the events open during the range (`outage_events`). Runs on the store's thread (synchronous;
the slot read runs on a helper thread beside the interval arithmetic).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import itertools
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from collector.config import CollectorConfig, Slo
from collector.maintenance import Window
from collector.store import Store
from collector.store.history import (
    DAY_S,
    SLOT_S,
    covered_days,
    covered_slots,
    event_rows,
    scan_slots,
    window_slots,
)
from collector.store.silences import silence_rows
from collector.verdicts.availability import (
    Exclusion,
    Figures,
    Timeline,
    Version,
    burn_alert,
    burn_rate,
    excluded_pieces,
    figures,
    timelines,
    versions,
)
from collector.verdicts.events import iso
from collector.verdicts.maintenance import silence_window

# The SRE workbook's multi-window burn-rate alerts: each long window with a short one (1/12 of
# it; 6 minutes is one slot, the workbook's 5) that says the burn is still going on.
BURN_WINDOWS_S = {"1h": 3600, "6h": 6 * 3600, "6m": 360, "30m": 1800}
TOP = 10
WORST_REGIONS = 5
MAX_ID_FILTER = 1000
HISTORY_S = 400 * DAY_S  # the longest range a report covers

Key = tuple[str, str]
Interval = tuple[float, float]


def slot_floor(ts: float) -> float:
    return math.floor(ts / SLOT_S) * SLOT_S


def slot_ceil(ts: float) -> float:
    return math.ceil(ts / SLOT_S) * SLOT_S


@dataclass(frozen=True)
class Scope:
    """What a report covers: the checks (ids and SLOs), the excluded windows, the weight."""

    checks: tuple[str, ...]
    slos: Mapping[str, Slo]
    exclusions: tuple[Exclusion, ...]
    partial_weight: float


def scope_of(config: CollectorConfig, pattern: str, now: float, silences: Iterable[Window] = ()) -> Scope:
    """The config's central checks matching `pattern`; its maintenance windows and the stored
    silences, each occurrence within HISTORY_S of `now` an exclusion rounded out to whole slots."""
    ids = tuple(c.id for c in config.checks if fnmatch.fnmatchcase(c.id, pattern))
    exclusions = tuple(
        Exclusion(glob, tuple(w.regions), slot_floor(a), slot_ceil(b))
        for w in [*config.maintenance, *silences]
        for a, b in w.spans_between(now - HISTORY_S, now + DAY_S)
        for glob in w.checks
    )
    slos = {c: config.slos[c] for c in ids if c in config.slos}
    return Scope(ids, slos, exclusions, config.availability.partial_weight)


def stored_scope(store: Store, config: CollectorConfig, pattern: str, now: float) -> Scope:
    """scope_of with the silences of the store (those ending within HISTORY_S of `now`)."""
    silences = [silence_window(row) for row in silence_rows(store, now - HISTORY_S)]
    return scope_of(config, pattern, now, silences)


@dataclass(slots=True)
class History:
    """What happened over one range: slots with results and the figures of the keys something
    happened to (down, degraded or excluded time); every other key was up or had no data."""

    start: float
    end: float
    covered: dict[str, dict[str, int]]  # per check, per region ("" = the check)
    timed: dict[Key, Figures]
    spans: list[Version]
    timelines: dict[Key, Timeline] = field(default_factory=dict)
    extra: dict[Interval, dict[str, int]] = field(default_factory=dict)  # per window, per check
    short: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # regions short of slots

    def figures(self, key: Key) -> Figures:
        found = self.timed.get(key)
        if found is not None:
            return found
        range_s = self.end - self.start
        return Figures(range_s=range_s, no_data_s=max(0.0, range_s - self.slots(key) * SLOT_S))

    def slots(self, key: Key) -> int:
        return self.covered.get(key[0], {}).get(key[1], 0)


def _spans(store: Store, scope: Scope, start: float, end: float, now: float) -> list[Version]:
    return versions(event_rows(store, start, end, scope.checks), now)


def _covered_excluded(store: Store, tl: Mapping[Key, Timeline], start: float, end: float) -> dict[Key, int]:
    """Slots with results inside excluded time, per key: one bounded read per piece of it."""
    out: dict[Key, int] = {}
    excluded = [t for t in tl.values() if t.excluded]
    if not excluded:
        return out
    for a, b in excluded_pieces(excluded, start, end, DAY_S):
        inside = [k for k, t in tl.items() if any(x0 <= a and b <= x1 for x0, x1 in t.excluded)]
        if not inside:
            continue
        counts = covered_slots(store, a, b, sorted({c for c, _ in inside}))
        for key in inside:
            out[key] = out.get(key, 0) + counts.get(key[0], {}).get(key[1], 0)
    return out


class _KeysOf(Collection[Key]):
    """Every key of these checks (only the check as a whole without `regions`), for timelines()
    where nothing is excluded: it only asks whether a key is one, never lists them."""

    def __init__(self, checks: set[str], regions: bool) -> None:
        self.checks, self.regions = checks, regions

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key[0] in self.checks and (self.regions or key[1] == "")

    def __iter__(self) -> Iterator[Key]:
        raise TypeError("the keys of a set of checks are not listed")

    def __len__(self) -> int:
        raise TypeError("the keys of a set of checks are not counted")


def history(
    store: Store,
    scope: Scope,
    start: float,
    end: float,
    now: float,
    *,
    regions: bool = True,
    spans: list[Version] | None = None,
    extra: Sequence[Interval] = (),
    beside: Callable[[list[Version]], None] | None = None,
) -> History:
    """`spans`: the event versions of a range that holds this one (read again when None);
    `extra`: windows inside the range whose slots per check the same read counts; `beside`:
    given the range's versions while the slots are read."""
    rows = event_rows(store, start, end, scope.checks) if spans is None else None
    # The slot read runs on its own thread (chDB lets go of the GIL) while this one makes the
    # versions and timelines: at 10,000 checks x 20 regions each is about half a second.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-slots") as pool:
        scan = pool.submit(scan_slots, store, start, end, _few(scope.checks), by_region=regions, extra=extra)
        if rows is not None:
            spans = versions(rows, now)
        else:
            spans = [s for s in spans or () if s.start < end and s.end > start]
        # Only keys something happened to need a timeline: those of the event versions and,
        # when windows are excluded, every key they could cover (known once the slots are).
        wanted = set(scope.checks)
        simple = not scope.exclusions and not any(s.kind == "vantage" for s in spans)
        tl = timelines(_KeysOf(wanted, regions), spans, ()) if simple else {}
        if beside is not None:
            beside(spans)
        slots = scan.result()
    covered = slots.covered
    if not simple:
        keys = {(c, "") for c in scope.checks}
        if regions:
            keys |= {(s.check, r) for s in spans if s.check in wanted for r in s.regions}
            keys |= {(c, r) for c, by_region in covered.items() if c in wanted for r in by_region}
        tl = timelines(keys, spans, scope.exclusions)
    covered_excluded = _covered_excluded(store, tl, start, end)
    found = History(
        start, end, covered, {}, spans, tl, dict(zip(extra, slots.extra, strict=True)), slots.short
    )
    for key, t in tl.items():
        found.timed[key] = figures(
            start, end, t, found.slots(key) * SLOT_S, covered_excluded.get(key, 0) * SLOT_S
        )
    return found


def _incidents(spans: Sequence[Version], start: float, end: float) -> dict[str, list[Version]]:
    """Per check event id, its spans in the range that were outage or partial."""
    out: dict[str, list[Version]] = {}
    for span in spans:
        if (
            span.kind == "check"
            and span.status in ("outage", "partial")
            and span.start < end
            and span.end > start
        ):
            out.setdefault(span.event, []).append(span)
    return out


def _cause_table(incidents: Mapping[str, list[Version]], start: float, end: float) -> list[dict[str, Any]]:
    causes: dict[tuple[str, str], tuple[set[str], list[float]]] = {}
    for spans in incidents.values():
        for span in spans:
            key = (span.cause, span.cause_host)
            found = causes.get(key)
            if found is None:
                found = causes[key] = (set(), [0.0, 0.0])
            found[0].add(span.event)
            seconds = max(0.0, min(span.end, end) - max(span.start, start))
            found[1][span.status != "outage"] += seconds
    # Worst first; among equals, in the order first met.
    ranked = sorted(
        (-round(down, 1), -round(degraded, 1), -len(events), cls, i, host)
        for i, ((cls, host), (events, (down, degraded))) in enumerate(causes.items())
    )
    return [
        {"class": cls, "host": host, "events": -n, "down_s": -down, "degraded_s": -degraded}
        for down, degraded, n, cls, _, host in ranked[:TOP]
    ]


_NO_INCIDENTS: dict[str, Any] = {"incidents": 0, "mttr_s": None, "top_causes": []}


class _Incidents:
    """The incidents of a range, per check and over all, counted from the event versions alone
    (while the slots are still being read)."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.of_check: dict[str, dict[str, Any]] = {}
        self.overall: dict[str, Any] = {}

    def count(self, spans: Sequence[Version]) -> None:
        start, end = self.start, self.end
        incidents = _incidents(spans, start, end)
        by_check: dict[str, dict[str, list[Version]]] = {}
        for event, versions_of in incidents.items():
            by_check.setdefault(versions_of[0].check, {})[event] = versions_of
        self.of_check = {
            check: {
                "incidents": len(events),
                "mttr_s": _mttr(events, start, end),
                "top_causes": _cause_table(events, start, end)[:3],
            }
            for check, events in by_check.items()
        }
        self.overall = {
            "top_causes": _cause_table(incidents, start, end),
            "incidents": len(incidents),
            "mttr_s": _mttr(incidents, start, end),
        }


def _mttr(spans_by_event: Mapping[str, list[Version]], start: float, end: float) -> float | None:
    """Mean time from open to close of the incidents that closed in the range."""
    durations = [
        s[0].closed_at - s[0].opened_at
        for s in spans_by_event.values()
        if s[0].closed_at is not None and start <= s[0].closed_at < end
    ]
    return round(sum(durations) / len(durations), 1) if durations else None


def _few(checks: Sequence[str]) -> Sequence[str] | None:
    # A long list of ids costs more to send than the few unknown checks cost to skip.
    return checks if len(checks) <= MAX_ID_FILTER else None


def _slo_windows(scope: Scope, end: float) -> dict[Interval, list[str]]:
    """The checks with an SLO per window [end - its window, end)."""
    windows: dict[Interval, list[str]] = {}
    for check, slo in scope.slos.items():
        windows.setdefault((end - float(slo.window), end), []).append(check)
    return windows


def _check_figures(
    store: Store,
    tl: Mapping[Key, Timeline],
    checks: Sequence[str],
    window: Interval,
    counts: Mapping[str, int],
) -> dict[str, Figures]:
    """Per check as a whole, its figures over `window` from the timelines and slot counts of
    a range holding it."""
    a, b = window
    held = {(c, ""): tl[(c, "")] for c in checks if (c, "") in tl}
    covered_excluded = _covered_excluded(store, held, a, b)
    out = {}
    range_s = b - a
    for check in checks:
        covered_s = counts.get(check, 0) * SLOT_S
        timeline = held.get((check, ""))
        if timeline is None:
            out[check] = Figures(range_s=range_s, no_data_s=max(0.0, range_s - covered_s))
        else:
            excluded_s = covered_excluded.get((check, ""), 0) * SLOT_S
            out[check] = figures(a, b, timeline, covered_s, excluded_s)
    return out


def _window_figures(
    store: Store, scope: Scope, past: History, checks: list[str], window: Interval, *, now: float
) -> dict[str, Figures]:
    """Per check, its figures over a window ending with `past`: `past` itself, counted in its
    read (past.extra) or inside it, else a read of its own."""
    a, b = window
    if a == past.start:
        return {c: past.figures((c, "")) for c in checks}
    if a > past.start:
        counts = past.extra.get(window)
        if counts is None:
            counts = window_slots(store, [window], _few(checks))[0]
        return _check_figures(store, past.timelines, checks, window, counts)
    over = history(store, _narrow(scope, checks), a, b, now, regions=False)
    return {c: over.figures((c, "")) for c in checks}


def _slo_figures(store: Store, scope: Scope, past: History, now: float) -> dict[str, dict[str, Any]]:
    """Per check with an SLO: its availability over its window, budget left and burn rates."""
    out: dict[str, dict[str, Any]] = {}
    weight = scope.partial_weight
    burns = _burn_rates(store, scope, past.end, now, past)
    for window, checks in _slo_windows(scope, past.end).items():
        over = _window_figures(store, scope, past, checks, window, now=now)
        for check in checks:
            target = scope.slos[check].target
            fig = over[check]
            burned = burn_rate(fig.bad_s(weight), fig.measured_s, target)
            availability = fig.availability(weight)
            rates = burns[check]
            out[check] = {
                "target": target,
                "window_s": window[1] - window[0],
                "availability": None if availability is None else round(100 * availability, 4),
                "budget_left": None if burned is None else round(1 - burned, 4),
                **{f"burn_{name}": _rounded(rate) for name, rate in rates.items()},
                "alert": burn_alert(rates),
            }
    return out


def _burn_rates(
    store: Store, scope: Scope, end: float, now: float, past: History | None
) -> dict[str, dict[str, float | None]]:
    """Per check with an SLO, its burn rate over each of BURN_WINDOWS_S ending at `end`: the
    slots of all windows in one read, the event versions from `past` when it holds the longest
    window, else from one read."""
    checks = list(scope.slos)
    longest = end - max(BURN_WINDOWS_S.values())
    if past is None or longest < past.start:
        spans = _spans(store, _narrow(scope, checks), longest, end, now)
    else:
        spans = [s for s in past.spans if s.start < end and s.end > longest]
    tl = timelines({(c, "") for c in checks}, spans, scope.exclusions)
    windows = [(end - seconds, end) for seconds in BURN_WINDOWS_S.values()]
    counts = window_slots(store, windows, _few(checks))
    out: dict[str, dict[str, float | None]] = {c: {} for c in checks}
    timed = [c for c in checks if (c, "") in tl]
    for name, window, slots in zip(BURN_WINDOWS_S, windows, counts, strict=True):
        figs = _check_figures(store, tl, timed, window, slots)
        for check in checks:
            fig = figs.get(check)
            if fig is None:  # nothing bad: 0 if the window was measured at all
                out[check][name] = 0.0 if slots.get(check, 0) > 0 else None
            else:
                target = scope.slos[check].target
                out[check][name] = burn_rate(fig.bad_s(scope.partial_weight), fig.measured_s, target)
    return out


def burn_rates(store: Store, scope: Scope, now: float) -> dict[str, dict[str, float | None]]:
    """Burn rates of the checks with an SLO, over windows ending at the last whole slot."""
    return _burn_rates(store, scope, slot_floor(now), now, None)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _narrow(scope: Scope, checks: Sequence[str]) -> Scope:
    return Scope(tuple(checks), scope.slos, scope.exclusions, scope.partial_weight)


@dataclass
class _Regions:
    """Per check, its regions something happened to (timed) and those short of slots (region,
    slots); every region over all checks, worst first."""

    timed: dict[str, list[str]]
    short: dict[str, list[tuple[str, int]]]
    worst: list[dict[str, Any]]


def _regions(past: History, wanted: set[str], weight: float) -> _Regions:
    """A region's slots over all checks are all of the range's in each check it is one of, but
    for the few short of it: counted in C, 200,000 keys stay cheap."""
    range_s = past.end - past.start
    full = round(range_s / SLOT_S)
    mine = [check for check in past.covered if check in wanted]
    pairs = Counter(itertools.chain.from_iterable(past.covered[c] for c in mine))
    slots = {r: k * full for r, k in pairs.items()}
    short_of = {check: past.short[check] for check in mine if check in past.short}
    for short in short_of.values():
        for region, n in short:
            slots[region] -= full - n
    sums = {r: [k * range_s, 0.0, float((k * full - slots[r]) * SLOT_S), 0.0, 0.0] for r, k in pairs.items()}
    timed_of: dict[str, list[str]] = {}
    for (check, region), fig in past.timed.items():
        if not region or check not in wanted:
            continue
        timed_of.setdefault(check, []).append(region)
        total = sums.setdefault(region, [0.0, 0.0, 0.0, 0.0, 0.0])
        if region in past.covered.get(check, {}):  # replace the plain figures counted above
            total[0] -= range_s
            total[2] -= range_s - past.slots((check, region)) * SLOT_S
        for i, value in enumerate((fig.range_s, fig.excluded_s, fig.no_data_s, fig.down_s, fig.degraded_s)):
            total[i] += value
    sums.pop("", None)
    rows = [{"region": r, **Figures(*t).to_dict(weight)} for r, t in sums.items()]
    return _Regions(timed_of, short_of, sorted(rows, key=_worst_first)[:TOP])


def _regions_of(past: History, check: str, timed: Sequence[str]) -> list[str]:
    """Every region of the check: with results in the range, or something happened to."""
    return sorted((set(past.covered.get(check, {})) | set(timed)) - {""})


def _region_count(past: History, check: str, timed: Sequence[str]) -> int:
    by_region = past.covered.get(check, {})
    return len(by_region) - ("" in by_region) + sum(1 for r in timed if r not in by_region)


def _check_regions(
    past: History, check: str, known: _Regions, detail: str, weight: float
) -> list[dict[str, Any]]:
    """`all`: every region of the check; `worst`: at most WORST_REGIONS that were not simply up."""
    timed = known.timed.get(check, ())
    if detail == "worst":
        return _worst_regions(past, check, timed, known.short.get(check, ()), weight)
    rows = [
        {"region": r, **past.figures((check, r)).to_dict(weight)} for r in _regions_of(past, check, timed)
    ]
    return sorted(rows, key=_worst_first)


def _worst_regions(
    past: History, check: str, timed: Sequence[str], short: Sequence[tuple[str, int]], weight: float
) -> list[dict[str, Any]]:
    """The rows of the WORST_REGIONS of the check's regions that were not simply up, in
    _worst_first order: those something happened to, and those without data some of the time.
    A region nothing happened to is ranked from its slot count alone (its availability is 100
    or none, as to_dict would round it), and `short` comes in that order, so only the few
    chosen ones become Figures."""
    range_s = past.end - past.start
    keyed: list[tuple[float, float, str, Figures | None]] = []
    for region in timed:
        fig = past.timed[(check, region)]
        availability, no_data_s = fig.rank(weight)
        keyed.append((availability, -no_data_s, region, fig))
    untimed = 0
    for region, n in short:
        if untimed == WORST_REGIONS:
            break
        if region and region not in timed:
            keyed.append((100.0 if n > 0 else 101.0, -round(range_s - n * SLOT_S, 1), region, None))
            untimed += 1
    keyed.sort(key=lambda k: k[:3])  # regions are unique: never down to the Figures
    rows = []
    for _, _, region, held in keyed[:WORST_REGIONS]:
        fig = held or past.figures((check, region))
        rows.append({"region": region, **fig.to_dict(weight)})
    return rows


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A report makes about a million short-lived objects and no cycles among them; the cyclic
    collector would walk them again and again (a fifth of the report's time at 10,000 checks x
    20 regions). Paused for the report's second or two, for the whole process."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def report(store: Store, scope: Scope, since_s: float, now: float, regions: str = "worst") -> dict[str, Any]:
    """The report over [now - since_s, now), both rounded down to slots (JSON-ready). `regions`:
    `all` (every region of each check), `worst` (the few that were not simply up) or `none`."""
    with _gc_paused():
        return _report(store, scope, since_s, now, regions)


def _report(store: Store, scope: Scope, since_s: float, now: float, regions: str) -> dict[str, Any]:
    end = slot_floor(now)
    start = slot_floor(now - since_s)
    weight = scope.partial_weight
    inside = [w for w in _slo_windows(scope, end) if start < w[0]]
    incidents = _Incidents(start, end)
    past = history(store, scope, start, end, now, regions=True, extra=inside, beside=incidents.count)
    slos = _slo_figures(store, scope, past, now) if scope.slos else {}
    known = _regions(past, set(scope.checks), weight)
    checks = []
    for check in scope.checks:
        found = incidents.of_check.get(check, _NO_INCIDENTS)
        row = {
            "check": check,
            **past.figures((check, "")).to_dict(weight),
            "incidents": found["incidents"],
            "mttr_s": found["mttr_s"],
            "slo": slos.get(check),
            "top_causes": found["top_causes"],
            "regions_total": _region_count(past, check, known.timed.get(check, ())),
        }
        if regions != "none":
            row["regions"] = _check_regions(past, check, known, regions, weight)
        checks.append(row)
    return {
        "since": iso(start),
        "until": iso(end),
        "partial_weight": weight,
        "slot_s": SLOT_S,
        "checks": sorted(checks, key=_worst_first),
        "worst_regions": known.worst,
        **incidents.overall,
    }


def _worst_first(row: Mapping[str, Any]) -> tuple[float, float, str]:
    availability = row["availability"]
    return (
        101.0 if availability is None else availability,
        -row["no_data_s"],
        row.get("check", row.get("region", "")),
    )


def daily(store: Store, scope: Scope, days: int, now: float) -> dict[str, Any]:
    """Per check, one cell per UTC day of the last `days` (today so far included): availability
    and the incidents open that day, with cause and regions."""
    with _gc_paused():
        return _daily(store, scope, days, now)


def _daily(store: Store, scope: Scope, days: int, now: float) -> dict[str, Any]:
    end = slot_floor(now)
    first = (end - 1) // DAY_S * DAY_S - (days - 1) * DAY_S
    covered = covered_days(store, first, end, _few(scope.checks))
    spans = _spans(store, scope, first, end, now)
    tl = timelines({(c, "") for c in scope.checks}, spans, scope.exclusions)
    covered_excluded_by_day = {
        day: _covered_excluded(store, tl, day, min(day + DAY_S, end))
        for day in _excluded_days(tl, first, end)
    }
    incidents = _incidents(spans, first, end)
    out = []
    for check in scope.checks:
        cells = []
        timeline = tl.get((check, ""), Timeline())
        for i in range(days):
            day = first + i * DAY_S
            day_end = min(day + DAY_S, end)
            excluded_covered = covered_excluded_by_day.get(day, {}).get((check, ""), 0)
            fig = figures(
                day,
                day_end,
                timeline,
                covered.get((check, day), 0) * SLOT_S,
                excluded_covered * SLOT_S,
            )
            cells.append(
                {
                    "day": iso(day),
                    **fig.to_dict(scope.partial_weight),
                    "incidents": _day_incidents(incidents, check, day, day_end),
                }
            )
        out.append({"check": check, "slo": _slo_brief(scope, check), "days": cells})
    return {"days": days, "until": iso(end), "partial_weight": scope.partial_weight, "checks": out}


def _excluded_days(tl: Mapping[Key, Timeline], first: float, end: float) -> list[float]:
    days = set()
    for timeline in tl.values():
        for a, b in timeline.excluded:
            day = max(first, a // DAY_S * DAY_S)
            while day < min(b, end):
                days.add(day)
                day += DAY_S
    return sorted(days)


def _day_incidents(
    incidents: Mapping[str, list[Version]], check: str, day: float, day_end: float
) -> list[dict[str, Any]]:
    out = []
    for event, spans in incidents.items():
        today = [s for s in spans if s.check == check and s.start < day_end and s.end > day]
        if today:
            worst = next((s for s in today if s.status == "outage"), today[0])
            out.append(
                {
                    "id": event,
                    "status": worst.status,
                    "cause": worst.cause,
                    "cause_host": worst.cause_host,
                    "regions": sorted({r for s in today for r in s.regions}),
                    "opened_at": iso(worst.opened_at),
                    "closed_at": iso(worst.closed_at),
                }
            )
    return out


def _slo_brief(scope: Scope, check: str) -> dict[str, Any] | None:
    slo = scope.slos.get(check)
    return None if slo is None else {"target": slo.target, "window_s": float(slo.window)}
