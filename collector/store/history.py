"""Bounded reads of the verdict history: which 6-minute slots held results (`probe_results_1d`,
one row per check, region and day) and the event versions that overlap a time range.

Time ranges are in epoch seconds, aligned to slots by the caller ([start, end), SLOT_S apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from collector.store.clickhouse import Store
from collector.store.events import EVENT_COLUMNS

SLOT_S = 360
SLOTS_PER_DAY = 86_400 // SLOT_S
DAY_S = 86_400
_FINAL = {"do_not_merge_across_partitions_select_final": 1}

# Per check, its regions (region '' is the check in any region) and their slots: whole days
# count every slot of the row, the two days cut by the range only the slots inside it (d0 = d1:
# m0 already holds both cuts). FINAL
# merges the day's rows of unmerged parts (the OR of their slots), within its partition only.
# One row per check keeps the answer small.
_SLOTS_SQL = """
SELECT check_id, groupArray(region), groupArray(n)
FROM (
    SELECT check_id, region,
           sum(bitCount(if(day = {d0:Date}, bitAnd(slots, toUInt256({m0:String})),
                           if(day = {d1:Date}, bitAnd(slots, toUInt256({m1:String})), slots)))) AS n
    FROM probe_results_1d FINAL
    WHERE day >= {d0:Date} AND day <= {d1:Date} {filters:Identifier}
    GROUP BY check_id, region
)
GROUP BY check_id
"""
# The check's slots per day, the last day cut at the range's end.
_CHECK_DAYS_SQL = """
SELECT check_id, day, bitCount(bitAnd(slots, if(day = {d1:Date}, toUInt256({m1:String}), toUInt256({all:String}))))
FROM probe_results_1d FINAL
WHERE region = '' AND day >= {d0:Date} AND day <= {d1:Date} {filters:Identifier}
"""
_EVENTS_SQL = f"""
SELECT {", ".join(EVENT_COLUMNS)}
FROM outage_events FINAL
WHERE event_id IN (
    SELECT event_id FROM outage_events_latest
    WHERE kind IN ('check', 'vantage')
      AND opened_at < fromUnixTimestamp64Milli({{end:Int64}})
      AND (closed_at IS NULL OR closed_at >= fromUnixTimestamp64Milli({{start:Int64}}))
      {{filters:Identifier}}
)
ORDER BY event_id, version
"""


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _mask(first_slot: int, end_slot: int) -> int:
    """Bits first_slot .. end_slot - 1."""
    return (1 << end_slot) - (1 << first_slot)


def _filters(checks: Sequence[str] | None, by_region: bool = True) -> tuple[str, dict[str, Any]]:
    # The optional filters are spliced in as text at the {filters:Identifier} marker; their
    # values stay bound parameters.
    parts, params = [], {}
    if checks is not None:
        parts.append("AND check_id IN {checks:Array(String)}")
        params["checks"] = list(checks)
    if not by_region:
        parts.append("AND region = ''")
    return " ".join(parts), params


def _run(store: Store, sql: str, params: dict[str, Any], filters: str) -> list[tuple[Any, ...]]:
    sql = sql.replace("{filters:Identifier}", filters)
    _, rows = store.query(sql, params, _FINAL)
    return rows


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
    if end <= start:
        return {}
    filters, base = _filters(checks, by_region)
    d0, d1 = _day(start), _day(end - 1)
    s0 = int(start % DAY_S) // SLOT_S
    s1 = (int((end - 1) % DAY_S) // SLOT_S) + 1
    m0 = _mask(s0, SLOTS_PER_DAY if d1 > d0 else s1)
    m1 = _mask(0, s1) if d1 > d0 else m0
    params = {**base, "d0": d0, "d1": d1, "m0": str(m0), "m1": str(m1)}
    return {
        check: dict(zip(regions, ns, strict=True))
        for check, regions, ns in _run(store, _SLOTS_SQL, params, filters)
    }


def covered_days(
    store: Store, first_day: float, end: float, checks: Sequence[str] | None = None
) -> dict[tuple[str, float], int]:
    """Slots with a result of any region, per (check, day start), for whole days from
    `first_day` (a day start) until `end` (a slot boundary; its day counts up to it)."""
    filters, base = _filters(checks)
    d0, d1 = _day(first_day), _day(end - 1)
    params = {
        **base,
        "d0": d0,
        "d1": d1,
        "m1": str(_mask(0, (int((end - 1) % DAY_S) // SLOT_S) + 1)),
        "all": str(_mask(0, SLOTS_PER_DAY)),
    }
    out = {}
    for check, day, n in _run(store, _CHECK_DAYS_SQL, params, filters):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        out[(check, start)] = int(n)
    return out


def event_rows(
    store: Store, start: float, end: float, checks: Sequence[str] | None = None
) -> list[tuple[Any, ...]]:
    """Every version (EVENT_COLUMNS) of the check and vantage events open at some time in
    [start, end), ordered by event and version."""
    filters = ""
    params: dict[str, Any] = {"start": round(start * 1000), "end": round(end * 1000)}
    if checks is not None:
        filters = "AND (kind = 'vantage' OR check_id IN {checks:Array(String)})"
        params["checks"] = list(checks)
    return _run(store, _EVENTS_SQL, params, filters)
