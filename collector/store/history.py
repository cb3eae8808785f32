"""Bounded reads of the verdict history: which 6-minute slots held results (`probe_results_1w`,
one row per check, region and 7-day week, 240 bits a day) and the event versions that overlap
a time range.

Time ranges are in epoch seconds, aligned to slots by the caller ([start, end), SLOT_S apart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.errors import StoreError
from collector.store.clickhouse import Store

log = logging.getLogger(__name__)

SLOT_S = 360
SLOTS_PER_DAY = 86_400 // SLOT_S
DAY_S = 86_400
WEEK_DAYS = 7
_EPOCH = date(1970, 1, 1)
COMPACT_EVERY_S = 3600.0
# Not at start: agents reconnect and replay their spools then, and the store thread is theirs
# (reads stay exact without compaction, only slower).
COMPACT_FIRST_AFTER_S = 300.0
_FINAL = {"do_not_merge_across_partitions_select_final": 1}
_WEEK = range(WEEK_DAYS)
_FULL_WEEK = " + ".join(f"bitCount(slots{k})" for k in _WEEK)

# Per check, its regions (region '' is the check in any region) with a result on a day of the
# range, their slots in it, and the check's slots in each extra window. A row is a week: weeks
# inside the range count every slot, the two it cuts only the slots of their days inside it
# (a mask a day); a region with no slot in the range is still one of the check's if it has a
# result on a day the range cuts. The regions with every slot come by name, those short of
# some with their slots, fewest first (those with none last): the order a report ranks regions
# nothing happened to (two plain arrays: they cross to Python faster than one of tuples).
# FINAL merges a week's rows of unmerged parts (the OR of their slots), within its partition
# only. One row per check keeps the answer small.
_SLOTS_SQL = """
WITH arraySort(x -> (x.2 = 0, x.2, x.1), groupArrayIf((region, n), (n > 0 OR cut) AND n < {full:UInt32}))
     AS short
SELECT check_id, groupArrayIf(region, n >= {full:UInt32}), arrayMap(x -> x.1, short), arrayMap(x -> x.2, short)
       {extra_sums}
FROM (
    SELECT check_id, region, sum({n}) AS n, max({cut}) AS cut {extra_cols}
    FROM probe_results_1w FINAL
    WHERE week >= {mw0:Date} AND week <= {mw1:Date} {filters}
    GROUP BY check_id, region
)
GROUP BY check_id
"""
# The check's slots in each of a few windows (region '' only).
_WINDOWS_SQL = """
SELECT check_id, {sums}
FROM probe_results_1w FINAL
WHERE region = '' AND week >= {w0:Date} AND week <= {w1:Date} {filters}
GROUP BY check_id
"""
# The check's slots on each day of each week, the days outside the range masked out.
_CHECK_DAYS_SQL = """
SELECT check_id, week, {days}
FROM probe_results_1w FINAL
WHERE region = '' AND week >= {w0:Date} AND week <= {w1:Date} {filters}
"""
# Only what the report needs of each version (times as epoch milliseconds: no datetimes).
_EVENTS_SQL = """
SELECT event_id, version, kind, check_id, status, scope, regions, cause_class, cause_host,
       toUnixTimestamp64Milli(opened_at), toUnixTimestamp64Milli(updated_at),
       toUnixTimestamp64Milli(closed_at)
FROM outage_events FINAL
WHERE event_id IN (
    SELECT event_id FROM outage_events_latest
    WHERE kind IN ('check', 'vantage')
      AND opened_at < fromUnixTimestamp64Milli({end:Int64})
      AND (closed_at IS NULL OR closed_at >= fromUnixTimestamp64Milli({start:Int64}))
      {filters}
)
ORDER BY event_id, version
"""


_DAY_ROWS_INSERT = """
INSERT INTO probe_results_1w
SELECT day - toUInt16(day) % 7 AS week, check_id, region,
       {days},
       sum(results)
FROM ({day_rows})
GROUP BY week, check_id, region
SETTINGS max_partitions_per_insert_block = 1000
"""


def day_rows_insert(day_rows: str) -> str:
    """An INSERT of day rows (a SELECT of day, check_id, region, slots, results) as week rows:
    how synthetic history (tests, benchmarks) is written."""
    days = ",\n       ".join(f"groupBitOrIf(slots, toUInt16(day) % 7 = {k})" for k in _WEEK)
    return _DAY_ROWS_INSERT.replace("{days}", days).replace("{day_rows}", day_rows)


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _week(day: date) -> date:
    """The first day of the 7-day week (counted from 1970-01-01) holding `day`."""
    return day - timedelta(days=(day - _EPOCH).days % WEEK_DAYS)


def _mask(first_slot: int, end_slot: int) -> int:
    """Bits first_slot .. end_slot - 1."""
    return (1 << end_slot) - (1 << first_slot)


class _Window:
    """The SQL of one [start, end) over the week rows: its slots, its slots per day, whether a
    row has a result on a day it cuts; parameters named after `tag`."""

    def __init__(self, tag: str, start: float, end: float) -> None:
        self.d0, self.d1 = _day(start), _day(end - 1)
        self.s0 = int(start % DAY_S) // SLOT_S
        self.s1 = int((end - 1) % DAY_S) // SLOT_S + 1
        self.w0, self.w1 = _week(self.d0), _week(self.d1)
        # Every slot the masks let through: what a key with a result in each one counts.
        self.slots = SLOTS_PER_DAY * (self.d1 - self.d0).days - self.s0 + self.s1
        self.tag = tag
        self.params: dict[str, Any] = {f"{tag}w0": self.w0, f"{tag}w1": self.w1}
        for edge, week in (("a", self.w0), ("b", self.w1)):
            masks = [self.day_mask(week + timedelta(days=k)) for k in _WEEK]
            self.params.update({f"{tag}{edge}{k}": str(m) for k, m in enumerate(masks)})

    def day_mask(self, day: date) -> int:
        if day < self.d0 or day > self.d1:
            return 0
        return _mask(self.s0 if day == self.d0 else 0, self.s1 if day == self.d1 else SLOTS_PER_DAY)

    def _edge(self, inside: str, edge: str) -> str:
        """`inside` for the weeks strictly inside, `edge` for the two cut, 0 for the others."""
        t = self.tag
        return (
            f"multiIf(week < {{{t}w0:Date}} OR week > {{{t}w1:Date}}, 0, "
            f"week > {{{t}w0:Date}} AND week < {{{t}w1:Date}}, {inside}, {edge})"
        )

    def count(self) -> str:
        t = self.tag
        masked = " + ".join(
            f"bitCount(bitAnd(slots{k}, if(week = {{{t}w0:Date}}, toUInt256({{{t}a{k}:String}}), "
            f"toUInt256({{{t}b{k}:String}}))))"
            for k in _WEEK
        )
        return self._edge(_FULL_WEEK, masked)

    def cut_day_held(self) -> str:
        """Whether the row has a result on a day the range cuts (its slots may all lie outside
        the range: still a region of the range, as it has a result that day)."""
        t = self.tag
        k0, k1 = (self.d0 - self.w0).days, (self.d1 - self.w1).days
        return f"(week = {{{t}w0:Date}} AND slots{k0} != 0) OR (week = {{{t}w1:Date}} AND slots{k1} != 0)"

    def days(self) -> list[str]:
        """Per day k of a week, its slots inside the range."""
        t = self.tag
        return [
            f"bitCount(bitAnd(slots{k}, multiIf(week = {{{t}w0:Date}}, toUInt256({{{t}a{k}:String}}), "
            f"week = {{{t}w1:Date}}, toUInt256({{{t}b{k}:String}}), toUInt256({{{t}all:String}}))))"
            for k in _WEEK
        ]


def _filters(checks: Sequence[str] | None, by_region: bool = True) -> tuple[str, dict[str, Any]]:
    # The optional filters are spliced in as text; their values stay bound parameters.
    parts, params = [], {}
    if checks is not None:
        parts.append("AND check_id IN {checks:Array(String)}")
        params["checks"] = list(checks)
    if not by_region:
        parts.append("AND region = ''")
    return " ".join(parts), params


def _run(store: Store, sql: str, params: dict[str, Any], **splices: str) -> list[tuple[Any, ...]]:
    for name, text in splices.items():
        sql = sql.replace("{" + name + "}", text)
    _, rows = store.query(sql, params, _FINAL)
    return rows


@dataclass
class SlotScan:
    """What one read of the slot rollup found over a range."""

    covered: dict[str, dict[str, int]]  # per check, per region ("" = the check): slots
    short: dict[str, list[tuple[str, int]]]  # per check, its regions short of slots, fewest first
    extra: list[dict[str, int]]  # per extra window, per check as a whole: slots


def scan_slots(
    store: Store,
    start: float,
    end: float,
    checks: Sequence[str] | None = None,
    *,
    by_region: bool = True,
    extra: Sequence[tuple[float, float]] = (),
) -> SlotScan:
    """Slots in [start, end) that held a result, per check and region (region "" is the check
    as a whole: a slot of any region; the others come with `by_region`), and in the same read
    the check's slots in each `extra` window (each inside [start, end))."""
    if end <= start:
        return SlotScan({}, {}, [{} for _ in extra])
    filters, params = _filters(checks, by_region)
    main = _Window("m", start, end)
    params.update(main.params)
    params["full"] = main.slots
    cols, sums = [], []
    for i, (a, b) in enumerate(extra):
        if not (start <= a < b <= end):
            raise ValueError(f"extra window [{a}, {b}) is not inside [{start}, {end})")
        window = _Window(f"x{i}_", a, b)
        params.update(window.params)
        cols.append(f", sum(if(region = '', {window.count()}, 0)) AS x{i}")
        sums.append(f", sum(x{i})")
    rows = _run(
        store,
        _SLOTS_SQL,
        params,
        n=main.count(),
        cut=main.cut_day_held(),
        extra_cols="".join(cols),
        extra_sums="".join(sums),
        filters=filters,
    )
    full = params["full"]
    covered = {}
    short_of = {}
    for check, whole, names, ns, *_ in rows:
        if whole or names:
            short = short_of[check] = list(zip(names, ns, strict=True))
            covered[check] = dict.fromkeys(whole, full)
            covered[check].update(short)
    short_of = {check: short for check, short in short_of.items() if short}
    counts = [{row[0]: int(row[4 + i]) for row in rows if row[4 + i]} for i in range(len(extra))]
    return SlotScan(covered, short_of, counts)


def covered_slots(
    store: Store,
    start: float,
    end: float,
    checks: Sequence[str] | None = None,
    *,
    by_region: bool = True,
) -> dict[str, dict[str, int]]:
    """Slots in [start, end) that held a result, per check and region: region "" is the check
    as a whole (a slot of any region), the others come with `by_region`."""
    return scan_slots(store, start, end, checks, by_region=by_region).covered


def window_slots(
    store: Store, windows: Sequence[tuple[float, float]], checks: Sequence[str] | None = None
) -> list[dict[str, int]]:
    """Per window, the slots of each check as a whole that held a result (one read)."""
    live = [(i, a, b) for i, (a, b) in enumerate(windows) if b > a]
    out: list[dict[str, int]] = [{} for _ in windows]
    if not live:
        return out
    filters, params = _filters(checks)
    parts = [_Window(f"x{i}_", a, b) for i, a, b in live]
    for window in parts:
        params.update(window.params)
    params["w0"] = min(w.w0 for w in parts)
    params["w1"] = max(w.w1 for w in parts)
    sums = ", ".join(f"sum({w.count()})" for w in parts)
    for check, *ns in _run(store, _WINDOWS_SQL, params, sums=sums, filters=filters):
        for (i, _, _), n in zip(live, ns, strict=True):
            if n:
                out[i][check] = int(n)
    return out


def covered_days(
    store: Store, first_day: float, end: float, checks: Sequence[str] | None = None
) -> dict[tuple[str, float], int]:
    """Slots with a result of any region, per (check, day start), for whole days from
    `first_day` (a day start) until `end` (a slot boundary; its day counts up to it)."""
    filters, params = _filters(checks)
    window = _Window("d", first_day, end)
    params.update(window.params)
    params.update({"w0": window.w0, "w1": window.w1, "dall": str(_mask(0, SLOTS_PER_DAY))})
    out = {}
    for check, week, *ns in _run(
        store, _CHECK_DAYS_SQL, params, days=", ".join(window.days()), filters=filters
    ):
        start = datetime(week.year, week.month, week.day, tzinfo=UTC).timestamp()
        for k, n in enumerate(ns):
            if n:
                out[(check, start + k * DAY_S)] = int(n)
    return out


def event_rows(
    store: Store, start: float, end: float, checks: Sequence[str] | None = None
) -> list[tuple[Any, ...]]:
    """Every version of the check and vantage events open at some time in [start, end),
    ordered by event and version: (event_id, version, kind, check_id, status, scope, regions,
    cause_class, cause_host, opened, updated, closed), the times in epoch milliseconds (closed
    None while open)."""
    filters = ""
    params: dict[str, Any] = {"start": round(start * 1000), "end": round(end * 1000)}
    if checks is not None:
        filters = "AND (kind = 'vantage' OR check_id IN {checks:Array(String)})"
        params["checks"] = list(checks)
    return _run(store, _EVENTS_SQL, params, filters=filters)


# A report reads with FINAL, which merges the rows of a week kept in several parts as it reads
# (1.9 s of 2.9 M rows in three parts a week, 0.35 s in one): merging each such week into one
# part ahead of time, hourly, keeps it exact and the read cheap. Late results (an agent's spool,
# up to the collector's max_age) make a new part again; the next pass merges it.
_SPLIT_WEEKS_SQL = """
SELECT partition_id FROM system.parts
WHERE database = currentDatabase() AND table = 'probe_results_1w' AND active
GROUP BY partition_id HAVING count() > 1
ORDER BY partition_id
"""


def compact_rollup(store: Store) -> list[str]:
    """Merge each week of probe_results_1w kept in several parts into one; the weeks merged
    (partition ids)."""
    _, rows = store.query(_SPLIT_WEEKS_SQL)
    on_cluster = f" ON CLUSTER {store.cluster}" if store.cluster else ""
    weeks = [p for (p,) in rows if p.isdigit()]  # a Date partition's id: YYYYMMDD
    for week in weeks:
        store.command(f"OPTIMIZE TABLE probe_results_1w{on_cluster} PARTITION ID '{week}' FINAL")
    return weeks


async def compact_forever(
    store: Store, every_s: float = COMPACT_EVERY_S, first_after_s: float = COMPACT_FIRST_AFTER_S
) -> None:
    """compact_rollup every `every_s`, from `first_after_s` on, until cancelled; a store error
    waits for the next pass."""
    await asyncio.sleep(first_after_s)
    while True:
        try:
            weeks = await store.run(compact_rollup, store)
            if weeks:
                log.info("slot rollup: merged the parts of %d weeks", len(weeks))
        except StoreError as exc:
            log.warning("slot rollup compaction: %s", exc)
        await asyncio.sleep(every_s)
