"""`/api/v1/agents` says which agents are impaired by (region, agent id): two regions' agents
may share an id, and only the one the engine named is impaired."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from collector.store import Store
from collector.verdicts.model import agent_key
from collector.web.api import make_app
from collector.web.base import ApiState

_INSERT = """
INSERT INTO agents (agent_id, region, version, capabilities, last_seen, spool_depth,
                    dropped_results, last_seq)
VALUES ('a-1', 'it', 'v', [], now64(3), 0, 0, 5), ('a-1', 'fr', 'v', [], now64(3), 0, 0, 7)
"""


async def _agents(store: Store) -> list[dict[str, Any]]:
    state = ApiState(store)
    state.impaired_agents = lambda: frozenset({agent_key("it", "a-1")})
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/agents"
            async with session.get(url) as response:
                assert response.status == 200
                body = await response.json()
    finally:
        await runner.cleanup()
    return list(body["agents"])


def test_only_the_impaired_region_s_agent_of_a_shared_id_is_impaired(store: Store) -> None:
    store.migrate()
    store.command(_INSERT)
    agents = asyncio.run(_agents(store))
    assert {(a["region"], a["agent_id"]): a["impaired"] for a in agents} == {
        ("it", "a-1"): True,
        ("fr", "a-1"): False,
    }
