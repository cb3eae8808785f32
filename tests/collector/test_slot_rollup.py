"""The slot rollup (`probe_results_1w`, a row per check, region and week) on real embedded
stores: an upgraded store reads the same report as a fresh one, slots that arrive twice, in two
parts of a week, count once (and the compaction merges such weeks), and the counts of ranges cut
anywhere match plain SQL on the raw results. Each test opens its stores one after another (an embedded
store is one per process at a time), so they live apart from test_report's module store."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.config import config_from_mapping
from collector.errors import StoreError
from collector.store import Store, clickhouse, history
from collector.store.history import (
    _week,
    compact_rollup,
    covered_days,
    covered_slots,
    scan_slots,
    window_slots,
)
from collector.store.migrations import MIGRATIONS
from collector.verdicts.report import report, scope_of
from tests.collector.test_report import CONFIG, EVENTS_SQL, RAW_SQL, T0, at, scalar

SLOTS_OF_FR = (
    "SELECT sum(" + " + ".join(f"bitCount(slots{k})" for k in range(7)) + ") "
    "FROM probe_results_1w FINAL WHERE region = 'fr'"
)


def fill(store: Store, replayed: bool = False) -> None:
    store.command(RAW_SQL, {"t0": int(T0)})
    if replayed:  # the same minutes a second later: other rows, the same slots
        store.command(RAW_SQL.replace("* 60 + 7", "* 60 + 8"), {"t0": int(T0)})
    store.command(EVENTS_SQL, {"t8": at(8), "t845": at(8.75), "t915": at(9.25), "t14": at(14), "t15": at(15)})


def example_store(path: Path, monkeypatch: pytest.MonkeyPatch, without: set[int]) -> Store:
    """The worked example's rows in a store made before the migrations `without`, then
    upgraded to the current schema."""
    store = Store(f"chdb://{path}")
    monkeypatch.setattr(clickhouse, "MIGRATIONS", [m for m in MIGRATIONS if m.version not in without])
    store.migrate()
    fill(store)
    monkeypatch.setattr(clickhouse, "MIGRATIONS", MIGRATIONS)
    assert store.migrate() == sorted(without)
    return store


def example_report(store: Store) -> dict[str, Any]:
    scope = scope_of(config_from_mapping(CONFIG, "collector.yaml"), "*", T0 + 86_400)
    return report(store, scope, 86_400, T0 + 86_400)


@pytest.fixture
def answer(tmp_path: Path) -> dict[str, Any]:
    """The report of a fresh store (closed again before the test opens its own)."""
    store = Store(f"chdb://{tmp_path / 'fresh'}")
    try:
        store.migrate()
        fill(store)
        return example_report(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    "without",
    [{6}, {4, 6}],
    ids=["daily-rollup-moves-to-weekly-rows", "minute-rollup-backfills-both"],
)
def test_an_upgraded_store_reads_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any], without: set[int]
) -> None:
    """A store from before the week rows (migration 6) keeps its slots: its daily rows move over
    and the daily table goes; one from before any slot rollup (4) gets them from the minute
    rollup first."""
    store = example_store(tmp_path / "store", monkeypatch, without)
    try:
        assert scalar(store, SLOTS_OF_FR) == 235
        assert example_report(store) == answer
        tables = {
            r[0] for r in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")[1]
        }
        assert "probe_results_1w_mv" in tables
        assert not {"probe_results_1d", "probe_results_1d_mv"} & tables
    finally:
        store.close()


MOST_PARTS = (
    "SELECT max(n) FROM (SELECT partition, count() AS n FROM system.parts "
    "WHERE database = currentDatabase() AND table = 'probe_results_1w' AND active GROUP BY partition)"
)


def test_a_week_in_several_parts_is_counted_once(tmp_path: Path, answer: dict[str, Any]) -> None:
    """The same slots arriving again (a replay a second later, another batch) land in a second
    part of the week's partition; the report ORs them, never adds them, before the compaction
    merges the week into one part and after."""
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        store.migrate()
        store.command("SYSTEM STOP MERGES probe_results_1w")
        fill(store, replayed=True)
        assert scalar(store, MOST_PARTS) >= 2
        assert scalar(store, SLOTS_OF_FR) == 235
        assert example_report(store) == answer
        store.command("SYSTEM START MERGES probe_results_1w")
        assert compact_rollup(store) == [_week(datetime.fromtimestamp(T0, UTC).date()).strftime("%Y%m%d")]
        assert scalar(store, MOST_PARTS) == 1
        assert compact_rollup(store) == []
        assert example_report(store) == answer
    finally:
        store.close()


def test_the_compaction_runs_again_after_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector's hourly pass (compact_forever) outlives a store that cannot be reached."""
    calls: list[float] = []

    def compact(store: Store) -> list[str]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise StoreError("store down")
        return ["20261126"]

    monkeypatch.setattr(history, "compact_rollup", compact)
    store = Store(f"chdb://{tmp_path / 'store'}")

    async def two_passes() -> None:
        task = asyncio.create_task(history.compact_forever(store, every_s=0.01, first_after_s=0))
        for _ in range(3000):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    caplog.set_level(logging.INFO, "collector.store.history")
    try:
        asyncio.run(two_passes())
    finally:
        store.close()
    assert "store down" in caplog.text
    assert "merged the parts of 1 weeks" in caplog.text


def raw_slots(store: Store, start: float, end: float) -> dict[str, dict[str, int]]:
    """Plain SQL on the raw results: per check and region ('' = any), the distinct 6-minute slots
    in [start, end), for every region with a result on a day of the range."""
    _, rows = store.query(
        "SELECT check_id, r, uniqExactIf(intDiv(toUnixTimestamp(started_at), 360), "
        "  started_at >= fromUnixTimestamp({a:Int64}) AND started_at < fromUnixTimestamp({b:Int64})) "
        "FROM probe_results ARRAY JOIN [region, ''] AS r "
        "WHERE toDate(started_at) >= toDate(fromUnixTimestamp({a:Int64})) "
        "  AND toDate(started_at) <= toDate(fromUnixTimestamp({b:Int64} - 1)) "
        "GROUP BY check_id, r",
        {"a": int(start), "b": int(end)},
    )
    out: dict[str, dict[str, int]] = {}
    for check, region, n in rows:
        out.setdefault(check, {})[region] = int(n)
    return out


def test_slot_counts_match_the_raw_results_across_weeks(tmp_path: Path) -> None:
    """Results at scattered times over 20 days (three weeks and their edges): the week rows
    count exactly the raw results' slots for ranges cut anywhere, in one read or per window
    or per day."""
    day0 = (T0 // 86_400 - 19) * 86_400
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        store.migrate()
        store.command(
            "INSERT INTO probe_results (started_at, received_at, check_id, agent_id, region, seq, outcome) "
            "SELECT toDateTime64({d0:Int64} + (number * 7919 * 61) % (20 * 86400), 3, 'UTC') AS t, t, "
            "concat('c', toString(number % 3)), 'a-1', ['it', 'fr', 'de'][1 + number % 7 % 3], number + 1, "
            "'success' FROM numbers(4000)",
            {"d0": int(day0)},
        )
        cuts = [day0 + 360 * k for k in (0, 7, 240, 1000, 2399, 2400, 2401, 3000, 4321, 4799)]
        for start, end in zip(cuts, [*cuts[1:], day0 + 20 * 86_400], strict=True):
            for a, b in ((start, end), (cuts[0], end), (start, day0 + 20 * 86_400)):
                if b <= a:
                    continue
                expected = raw_slots(store, a, b)
                assert covered_slots(store, a, b) == expected, (a, b)
                windows = window_slots(store, [(a, b), (cuts[0], b)])
                assert windows[0] == {c: r[""] for c, r in expected.items() if r[""]}
                assert scan_slots(store, cuts[0], b, extra=[(a, b)]).extra[0] == windows[0]
        days = covered_days(store, day0 + 3 * 86_400, day0 + 17 * 86_400 + 3600)
        for d in range(3, 18):
            day = day0 + d * 86_400
            expected = raw_slots(store, day, min(day + 86_400, day0 + 17 * 86_400 + 3600))
            assert {c: days.get((c, day), 0) for c in expected} == {c: r[""] for c, r in expected.items()}
    finally:
        store.close()
