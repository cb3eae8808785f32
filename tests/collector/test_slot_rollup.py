"""The slot rollup (`probe_results_1w`, a row per check, region and week) on real embedded
stores: an upgraded store reads the same report as a fresh one, and slots that arrive twice, in
two parts of a week, count once. Each test opens its stores one after another (an embedded
store is one per process at a time), so they live apart from test_report's module store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.config import config_from_mapping
from collector.store import Store, clickhouse
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


def test_a_week_in_several_parts_is_counted_once(tmp_path: Path, answer: dict[str, Any]) -> None:
    """The same slots arriving again (a replay a second later, another batch) land in a second
    part of the week's partition; the report ORs them, never adds them."""
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        store.migrate()
        store.command("SYSTEM STOP MERGES probe_results_1w")
        fill(store, replayed=True)
        parts = scalar(
            store,
            "SELECT max(n) FROM (SELECT partition, count() AS n FROM system.parts "
            "WHERE table = 'probe_results_1w' AND active GROUP BY partition)",
        )
        assert parts >= 2
        assert scalar(store, SLOTS_OF_FR) == 235
        assert example_report(store) == answer
    finally:
        store.close()
