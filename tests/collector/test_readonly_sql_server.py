"""The SQL endpoint's rules on a ClickHouse server store, through the README's query user.

Needs a server: set CLICKHOUSE_URL (an admin user, e.g. http://default:@127.0.0.1:8123/probenet_test;
the database is created). Without it only the README/limits agreement is checked.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import urllib.parse
from pathlib import Path

import pytest

from collector.errors import StoreError
from collector.store import Store
from collector.store.readonly_sql import ReadOnlySql, RejectedQuery, SqlLimits
from tests.collector.test_readonly_sql import ATTACKS, ORDINARY

README = Path(__file__).resolve().parents[2] / "README.md"
SERVER = os.environ.get("CLICKHOUSE_URL", "")


def readme_grants() -> str:
    text = README.read_text()
    section = text[text.index("### What the SQL endpoint allows") :]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "no sql block in the README's SQL endpoint section"
    return block.group(1)


def test_the_readme_profile_sets_the_endpoint_limits() -> None:
    """A read-only user cannot change a setting, so its profile must hold exactly these values."""
    profile = readme_grants().split(";")[0]
    written = dict(re.findall(r"(\w+) = '?(\w+)'?", profile))
    assert written == {k: str(v) for k, v in SqlLimits().settings().items()}


@pytest.fixture(scope="module")
def query_url() -> str:
    if not SERVER:
        pytest.skip("CLICKHOUSE_URL is not set: no ClickHouse server to test the server store on")
    parts = urllib.parse.urlsplit(SERVER)
    database = parts.path.strip("/") or "probenet_test"
    admin = Store(parts._replace(path="/default").geturl())
    admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    admin.close()
    store = Store(parts._replace(path=f"/{database}").geturl())
    store.migrate()
    password = secrets.token_hex(16)
    for statement in readme_grants().replace("PASSWORD", password).split(";"):
        if statement.strip():
            store.command(statement.replace("probenet.", f"{database}."))
    store.close()
    host = parts.hostname or "127.0.0.1"
    return parts._replace(
        netloc=f"probenet_query:{password}@{host}:{parts.port or 8123}", path=f"/{database}"
    ).geturl()


async def _ask(url: str, sql: str) -> str:
    pool = ReadOnlySql(url)
    try:
        await pool.run(sql)
        return "ok"
    except (RejectedQuery, StoreError) as exc:
        return str(exc)
    finally:
        await pool.aclose()


@pytest.mark.parametrize(("sql", "reason"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_on_a_server(query_url: str, sql: str, reason: str) -> None:
    answer = asyncio.run(_ask(query_url, sql.format(pki="/etc", dir="/etc", port=9)))
    assert answer != "ok" and reason in answer, answer


@pytest.mark.parametrize("sql", [q for q in ORDINARY if "outage_events_latest" not in q])
def test_ordinary_selects_answer_on_a_server(query_url: str, sql: str) -> None:
    assert asyncio.run(_ask(query_url, sql)) == "ok"


def test_the_query_user_cannot_write_even_past_the_guard(query_url: str) -> None:
    """Defense in depth: the user itself is read-only, whatever reaches the server."""
    store = Store(query_url)
    try:
        with pytest.raises(StoreError, match=r"(?i)readonly|not enough privileges"):
            store.command("INSERT INTO agents (agent_id) VALUES ('x')")
        with pytest.raises(StoreError, match=r"(?i)readonly|not enough privileges"):
            store.query("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')")
    finally:
        store.close()
