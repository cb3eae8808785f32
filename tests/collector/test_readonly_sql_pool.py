"""The SQL endpoint's parse step and its own worker pool, on the real aiohttp app and a real
embedded store (in this process, loopback only)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from collector.store import Store
from collector.store.readonly_sql import RejectedQuery, SqlLimits, check, parse, project_tables
from collector.web.api import make_app
from collector.web.base import ApiState
from collector.web.query import SQL_KEY

# Runs until the time limit stops it: ten billion hashes, one result row, little memory.
HEAVY = (
    "SELECT count() FROM (SELECT arrayJoin(range(100000)) AS a) AS l "
    "CROSS JOIN (SELECT arrayJoin(range(100000)) AS b) AS r WHERE cityHash64(a, b) % 7 = 0"
)


@pytest.fixture(scope="module")
def migrated(store: Store) -> Store:
    store.migrate()
    return store


def test_the_parse_step_executes_nothing(migrated: Store, tmp_path: Path) -> None:
    """The caller's text is a bound parameter of parseQueryToJSON: hostile text is parsed, never run."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        hostile = [
            f"INSERT INTO FUNCTION file('{tmp_path}/written', 'RawBLOB') SELECT 'x'",
            f"SELECT * FROM url('http://127.0.0.1:{port}/', 'LineAsString')",
            f"SELECT 1 INTO OUTFILE '{tmp_path}/outfile'",
            "KILL QUERY WHERE 1",
            "SYSTEM STOP MERGES",
            "SET max_memory_usage = 1000",
            f"SELECT 1; INSERT INTO FUNCTION file('{tmp_path}/second', 'RawBLOB') SELECT 'x'",
            f"') ; INSERT INTO FUNCTION file('{tmp_path}/quoted', 'RawBLOB') SELECT 1 --",
            "(" * 5000 + "1" + ")" * 5000,
        ]
        for sql in hostile:
            try:
                check(parse(migrated, sql, SqlLimits()), project_tables(), "default")
            except RejectedQuery:
                pass
            else:
                raise AssertionError(f"accepted: {sql[:80]}")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert list(tmp_path.iterdir()) == []
    _, rows = migrated.query("SELECT getSetting('max_memory_usage')")
    assert rows[0][0] != 1000


def test_the_guard_reads_the_migrations() -> None:
    assert {"probe_results", "probe_results_1m", "agents", "outage_events", "outage_events_latest"} <= (
        project_tables()
    )


async def _post(session: aiohttp.ClientSession, base: str, sql: str) -> tuple[int, Any]:
    async with session.post(base + "/api/v1/query", json={"sql": sql}) as response:
        return response.status, await response.json()


async def _heavy_queries_never_hold_up_the_api(store: Store) -> dict[str, Any]:
    limits = SqlLimits(workers=2, queue=1, seconds=5, threads=1)
    app = make_app(ApiState(store, sql_limits=limits))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            heavy = [asyncio.create_task(_post(session, base, HEAVY)) for _ in range(3)]
            for _ in range(1200):  # until all three are admitted (a minute at most)
                if app[SQL_KEY].in_flight == 3:
                    break
                await asyncio.sleep(0.05)
            assert app[SQL_KEY].in_flight == 3
            refused = await _post(session, base, "SELECT 1")
            async with session.get(base + "/api/v1/agents") as response:
                agents = (response.status, await response.json())
            pending_after_agents = sum(not task.done() for task in heavy)
            ended = await asyncio.gather(*heavy)
            after = await _post(session, base, "SELECT count() FROM agents")
        return {
            "refused": refused,
            "agents": agents,
            "pending": pending_after_agents,
            "ended": ended,
            "after": after,
        }
    finally:
        await runner.cleanup()


def test_heavy_queries_never_hold_up_the_api(migrated: Store) -> None:
    """Two heavy queries running and one waiting: a fourth is refused at once with a 503, and
    /api/v1/agents answers while all three are still in flight (it reads through another client)."""
    seen = asyncio.run(_heavy_queries_never_hold_up_the_api(migrated))
    status, body = seen["refused"]
    assert status == 503 and "busy" in body["error"], body
    assert seen["agents"][0] == 200 and "agents" in seen["agents"][1]
    assert seen["pending"] == 3
    for status, body in seen["ended"]:
        assert status == 400 and "Timeout exceeded" in body["error"], body
    assert seen["after"] == (200, {"columns": ["count()"], "rows": [[0]]})


def test_the_readable_tables_are_those_the_migrations_leave(migrated: Store) -> None:
    _, rows = migrated.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name NOT LIKE '.inner%'"
    )
    assert project_tables() == {name for (name,) in rows} - {"schema_migration_steps"}
