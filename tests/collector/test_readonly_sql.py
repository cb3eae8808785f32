"""The SQL endpoint is read-only for real: every attack issue 11 found, against a real collector
process on an embedded store, with its CA key and config next to it.

Each attack must get a 400 naming why, leave no trace (no file read, written or fetched, no
setting kept), and ordinary SELECTs over the project's tables must keep answering.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.collector.feed import feed, regional_outage
from tests.collector.test_api import get
from tests.e2e.procs import BIN, Collector, stopped_on_exit


@dataclass
class Target:
    collector: Collector
    pki: Path
    listener: socket.socket

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def query(self, sql: str) -> tuple[int, dict[str, object]]:
        status, body, _ = get(self.collector.api, "/api/v1/query", "", "POST", {"sql": sql})
        assert isinstance(body, dict), body
        return status, body

    def assert_nothing_connected(self) -> None:
        """Server-side request forgery would have left a connection in the listener's queue."""
        self.listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.listener.accept()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp("readonly-sql")
    pki = workdir / "pki"
    subprocess.run([str(BIN / "probe-collector"), "ca", "init", "--dir", str(pki)], check=True)
    assert (pki / "ca-key.pem").exists()
    running = Collector(workdir)
    running.extra = {"evaluate_every": "24h"}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        running.start()
        with stopped_on_exit(running):
            feed(running.address, *regional_outage(time.time()))
            yield Target(running, pki, listener)
            assert running.stop() == 0, running.proc.output() if running.proc else ""


# (attack, SQL with {pki}, {dir} and {port} filled in, what the refusal must say)
ATTACKS = [
    (
        "file() reads the CA key",
        "SELECT * FROM file('{pki}/ca-key.pem', 'LineAsString')",
        "table function file()",
    ),
    (
        "file() reads the config",
        "SELECT * FROM file('{dir}/collector.yaml', 'RawBLOB')",
        "table function file()",
    ),
    ("scalar file() reads the CA key", "SELECT file('{pki}/ca-key.pem')", "function file()"),
    (
        "APPLY(file) reads the CA key",
        "SELECT * APPLY(file) FROM (SELECT '{pki}/ca-key.pem' AS path)",
        "function file()",
    ),
    ("file() in a lambda", "SELECT arrayMap(p -> file(p), ['{pki}/ca-key.pem'])", "function file()"),
    ("url() forges a request", "SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')", "url()"),
    ("s3() forges a request", "SELECT * FROM s3('http://127.0.0.1:{port}/b/k', 'CSV')", "s3()"),
    ("remote() forges a connection", "SELECT * FROM remote('127.0.0.1:{port}', system.one)", "remote()"),
    ("cluster()", "SELECT * FROM cluster('default', system.one)", "cluster()"),
    ("numbers(): no table function at all", "SELECT * FROM numbers(10)", "numbers()"),
    ("a table function in a subquery", "SELECT * FROM (SELECT * FROM file('{pki}/ca-key.pem'))", "file()"),
    (
        "INSERT INTO FUNCTION file() overwrites the config",
        "INSERT INTO FUNCTION file('{dir}/collector.yaml', 'RawBLOB') SELECT 'checks: []'",
        "INSERT is not allowed",
    ),
    ("SET", "SET engine_file_truncate_on_insert = 1", "SET is not allowed"),
    ("SETTINGS lifts the row limit", "SELECT * FROM probe_results SETTINGS max_result_rows = 0", "SETTINGS"),
    (
        "SETTINGS lifts the time limit",
        "SELECT count() FROM agents SETTINGS max_execution_time = 30",
        "SETTINGS",
    ),
    ("SETTINGS in a subquery", "SELECT * FROM (SELECT 1 SETTINGS max_threads = 64)", "SETTINGS"),
    ("KILL QUERY kills the collector's inserts", "KILL QUERY WHERE 1", "KILL QUERY is not allowed"),
    ("SYSTEM STOP MERGES", "SYSTEM STOP MERGES", "SYSTEM is not allowed"),
    ("CREATE TEMPORARY TABLE", "CREATE TEMPORARY TABLE t (a UInt8)", "CREATE is not allowed"),
    ("DROP TABLE", "DROP TABLE probe_results", "read-only"),
    ("two statements", "SELECT 1; DROP TABLE probe_results", "Multi-statements"),
    (
        "EXPLAIN of an INSERT",
        "EXPLAIN AST INSERT INTO FUNCTION file('{dir}/x', 'RawBLOB') SELECT 1",
        "INSERT",
    ),
    ("EXPLAIN of a table function", "EXPLAIN PIPELINE SELECT * FROM file('{pki}/ca-key.pem')", "file()"),
    ("an EXPLAIN in FROM", "SELECT * FROM (EXPLAIN SELECT 1)", "viewExplain()"),
    ("system tables", "SELECT name, value FROM system.settings", "table system.settings"),
    ("system tables by IN", "SELECT 1 WHERE 'default' IN system.users", "table system.users"),
    ("another database", "SELECT * FROM information_schema.tables", "table information_schema.tables"),
    ("server settings", "SELECT getSetting('max_memory_usage')", "function getSetting()"),
    ("dictionaries", "SELECT dictGet('d', 'x', toUInt64(1))", "function dictGet()"),
    ("INTO OUTFILE writes a file", "SELECT 1 INTO OUTFILE '{dir}/out.txt'", "INTO OUTFILE"),
    ("a FORMAT clause", "SELECT 1 FORMAT JSON", "FORMAT"),
    (
        "a huge result",
        "SELECT repeat(toString(x), 1000) FROM (SELECT arrayJoin(range(50000)) AS x)",
        "max bytes",
    ),
    ("too many rows", "SELECT arrayJoin(range(200000))", "max rows"),
    ("too many rows in a UNION", "SELECT 1 UNION ALL SELECT arrayJoin(range(200000))", "max rows"),
    ("too many rows from a table", "SELECT x FROM agents ARRAY JOIN range(200000) AS x", "max rows"),
    (
        "too much memory",
        "SELECT materialize(repeat('x', 1000000)) FROM (SELECT arrayJoin(range(1000)))",
        "memory",
    ),
    ("a huge text", "SELECT 1 " + " " * 100_000, "at most 100000"),
]


@pytest.mark.parametrize(("sql", "reason"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_with_the_reason(target: Target, sql: str, reason: str) -> None:
    filled = sql.format(pki=target.pki, dir=target.collector.workdir, port=target.port)
    status, body = target.query(filled)
    assert status == 400, body
    assert reason in str(body["error"]), body
    assert "PRIVATE KEY" not in str(body)


def test_attacks_leave_no_trace(target: Target) -> None:
    workdir = target.collector.workdir
    config = (workdir / "collector.yaml").read_text()
    for sql in (
        "INSERT INTO FUNCTION file('{dir}/collector.yaml', 'RawBLOB') SELECT 'checks: []'",
        "EXPLAIN AST INSERT INTO FUNCTION file('{dir}/x', 'RawBLOB') SELECT 1",
        "SELECT 1 INTO OUTFILE '{dir}/out.txt'",
        "SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')",
        "SELECT 1; DROP TABLE probe_results",
    ):
        target.query(sql.format(dir=workdir, port=target.port))
    assert (workdir / "collector.yaml").read_text() == config
    assert not (workdir / "x").exists() and not (workdir / "out.txt").exists()
    target.assert_nothing_connected()
    status, body = target.query("SELECT count() FROM probe_results")
    assert status == 200 and body["rows"][0][0] > 0, body


def test_set_never_sticks_to_the_api(target: Target) -> None:
    """Once `SET max_memory_usage = 1000` kept the API's own SQL failing until a restart."""
    assert target.query("SET max_memory_usage = 1000")[0] == 400
    status, body = target.query("SELECT region, count() FROM probe_results GROUP BY region ORDER BY region")
    assert status == 200 and [r[0] for r in body["rows"]] == ["de", "fr", "it"], body  # type: ignore[index,union-attr]
    status, agents, _ = get(target.collector.api, "/api/v1/agents")
    assert status == 200 and agents["agents"], agents


ORDINARY = [
    "SELECT region, count() AS n FROM probe_results GROUP BY region",
    "WITH recent AS (SELECT * FROM probe_results WHERE started_at >= now() - INTERVAL 1 HOUR) "
    "SELECT region, count() FROM recent GROUP BY region",
    "SELECT agent_id FROM agents UNION ALL SELECT agent_id FROM probe_results LIMIT 5",
    "SELECT check_id FROM probe_results WHERE agent_id IN (SELECT agent_id FROM agents) LIMIT 1",
    "SELECT count() FROM default.probe_results AS r JOIN agents AS a ON r.agent_id = a.agent_id",
    "SELECT count() FROM outage_events_latest",
    "SELECT countMerge(results) FROM probe_results_1m",
    "SELECT arrayJoin([1, 2, 3]) AS x INTERSECT SELECT 2",
    "SELECT 1 -- a trailing comment",
    "EXPLAIN indexes = 1 SELECT count() FROM probe_results WHERE check_id = 'shop'",
]


@pytest.mark.parametrize("sql", ORDINARY)
def test_ordinary_selects_answer(target: Target, sql: str) -> None:
    status, body = target.query(sql)
    assert status == 200, body
    assert body["rows"], body


def test_cli_query_goes_through_the_same_rules(target: Target) -> None:
    run = subprocess.run(
        [
            str(BIN / "probe-collector"),
            "query",
            f"SELECT * FROM file('{target.pki}/ca-key.pem', 'LineAsString')",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={"PROBENET_API": target.collector.api, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert run.returncode == 1, run
    assert "table function file() is not allowed" in run.stderr
    assert "PRIVATE KEY" not in run.stdout + run.stderr
