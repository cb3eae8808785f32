"""Store: migrations are versioned and idempotent, templating handles clusters, rows round-trip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.ingest.ingestor import AGENT_COLUMNS
from collector.store import Store, clickhouse
from collector.store.migrations import MIGRATIONS, render
from collector.store.rows import RESULT_COLUMNS, result_row
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult


def test_engine_templates_for_single_node_and_cluster() -> None:
    sql = "CREATE TABLE t {on_cluster} (a UInt8) ENGINE = {replacing_merge_tree}(v) ORDER BY a TTL x + {ttl_days}"
    assert (
        render(sql, "", 7) == "CREATE TABLE t  (a UInt8) ENGINE = ReplacingMergeTree(v) ORDER BY a TTL x + 7"
    )
    clustered = render(sql, "main", 7)
    assert "ON CLUSTER main" in clustered
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', v)"
        in clustered
    )
    assert "ReplicatedMergeTree('/clickhouse" in render("ENGINE = {merge_tree}", "main", 1)


def test_migration_versions_are_unique() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert len(versions) == len(set(versions))


def test_migrate_is_idempotent_and_rows_round_trip(tmp_path: Path) -> None:
    # Rows older than the TTL are dropped on insert, so the sample result is from now.
    store = Store(f"chdb://{tmp_path / 'store'}", ttl_days=3)
    try:
        applied = store.migrate()
        assert applied == sorted(m.version for m in MIGRATIONS)
        assert store.migrate() == []
        result = ProbeResult(
            check_id="shop",
            agent_id="it-1",
            region="it",
            seq=7,
            probe="page",
            outcome=Outcome.OUTCOME_PARTIAL,
            failure_class=FailureClass.TLS_CERT_EXPIRED,
            failure_host="static.test",
        )
        started = datetime.now(UTC).replace(microsecond=0)
        result.started_at.FromDatetime(started)
        result.timings.total_ms = 12.5
        result.page.failed_hosts.add(
            host="static.test", failure_class=FailureClass.TLS_CERT_EXPIRED, count=30
        )
        store.insert("probe_results", [result_row(result, datetime.now(UTC))], RESULT_COLUMNS)
        _, rows = store.query(
            "SELECT outcome, failure_class, failure_host, total_ms, page_failed_hosts, page_failed_classes, "
            "toString(started_at), raw FROM probe_results",
            column_formats={"raw": "bytes"},
        )
        assert rows[0][:6] == (
            "partial",
            "tls_cert_expired",
            "static.test",
            12.5,
            ["static.test"],
            ["tls_cert_expired"],
        )
        assert rows[0][6].startswith(started.strftime("%Y-%m-%d %H:%M:%S"))
        assert ProbeResult.FromString(rows[0][7]) == result
        _, rollup = store.query("SELECT countMerge(results), countIfMerge(partials) FROM probe_results_1m")
        assert rollup == [(1, 1)]
    finally:
        store.close()


def test_agents_table_moves_to_region_and_agent_id_keeping_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 5: a store made before it (agents ORDER BY agent_id) keeps every agent row and
    from then on keeps `it-1` of two regions apart."""
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        before = [m for m in MIGRATIONS if m.version != 5]
        monkeypatch.setattr(clickhouse, "MIGRATIONS", before)
        store.migrate()
        columns = list(AGENT_COLUMNS)
        now = datetime.now(UTC)
        store.insert("agents", [["it-1", "it", "v1", [], now, 3, 0, 42]], columns)
        monkeypatch.setattr(clickhouse, "MIGRATIONS", MIGRATIONS)
        assert store.migrate() == [5]
        store.insert("agents", [["it-1", "fr", "v1", [], now, 0, 0, 7]], columns)
        _, rows = store.query("SELECT region, agent_id, last_seq FROM agents FINAL ORDER BY region")
        assert rows == [("fr", "it-1", 7), ("it", "it-1", 42)]
    finally:
        store.close()


class _Crash(Exception):
    pass


def test_a_migration_cut_between_its_statements_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 5 drops `agents` and renames its rebuilt copy in: a collector killed between the
    two used to find neither a table to copy from nor one to use, and never started again."""
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        monkeypatch.setattr(clickhouse, "MIGRATIONS", [m for m in MIGRATIONS if m.version < 5])
        store.migrate()
        store.command(
            "INSERT INTO agents (agent_id, region, version, capabilities, last_seen, spool_depth, "
            "dropped_results, last_seq) VALUES ('a-1', 'it', 'v', [], now64(3), 0, 0, 9)"
        )
        monkeypatch.setattr(clickhouse, "MIGRATIONS", MIGRATIONS)
        command = store.command

        def dies_after_the_drop(sql: str, params: object = None) -> object:
            if sql.startswith("RENAME TABLE IF EXISTS agents_by_region"):
                raise _Crash
            return command(sql, params)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "command", dies_after_the_drop)
        with pytest.raises(_Crash):
            store.migrate()
        _, tables = store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
        assert "agents" not in {t[0] for t in tables}  # the state that was a dead end
        monkeypatch.setattr(store, "command", command)
        assert 5 in store.migrate()
        _, rows = store.query("SELECT region, agent_id, last_seq FROM agents FINAL")
        assert rows == [("it", "a-1", 9)]
        _, key = store.query("SELECT sorting_key FROM system.tables WHERE name = 'agents'")
        assert key == [("region, agent_id",)]
        assert store.migrate() == []
    finally:
        store.close()
