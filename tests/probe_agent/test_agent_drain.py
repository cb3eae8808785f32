"""A stopping agent stops probing, streams its spool until it is empty or `shutdown_grace` runs
out (a second signal cuts it short), and leaves the rest on disk for the next start."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from collector.store import Store
from probe_agent.agent import LOCAL_VERSION, Agent
from probe_agent.config import AgentConfig, SpoolConfig
from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import CheckSpec
from probenet.v1.stream_pb2 import CheckConfig
from tests.collector.stream_kit import insecure_config, result, running_collector
from tests.e2e.procs import free_port

# Generous bound on a run that must end: far above any drain here, so load cannot flake it.
RUN_BOUND_S = 60.0


def _config(tmp_path: Path, agent_id: str, collector: str, grace: float) -> AgentConfig:
    return AgentConfig(
        agent_id=agent_id,
        region="it",
        collector=collector,
        insecure=True,
        spool=SpoolConfig(dir=str(tmp_path / agent_id)),
        shutdown_grace=grace,
    )


def _prefill(config: AgentConfig, n: int) -> None:
    spool = Spool(config.spool.dir)
    for _ in range(n):
        spool.append(result(0, agent_id=config.agent_id, region=config.region))
    spool.close()


def _depth(config: AgentConfig) -> int:
    spool = Spool(config.spool.dir)
    try:
        return spool.depth
    finally:
        spool.close()


async def _run_stopped(agent: Agent, give_up_after: float | None = None) -> float:
    """Run the agent with its stop already requested; return how long it took to finish."""
    stop, give_up = asyncio.Event(), asyncio.Event()
    stop.set()
    if give_up_after is not None:
        asyncio.get_running_loop().call_later(give_up_after, give_up.set)
    started = time.monotonic()
    await asyncio.wait_for(agent.run(stop, give_up), RUN_BOUND_S)
    return time.monotonic() - started


def test_stop_streams_the_whole_spool_before_exiting(tmp_path: Path, store: Store) -> None:
    async def scenario() -> AgentConfig:
        async with running_collector(store, insecure_config()) as col:
            config = _config(tmp_path, "drain-1", col.address, grace=RUN_BOUND_S / 2)
            _prefill(config, 3000)
            await _run_stopped(Agent(config))
            return config

    config = asyncio.run(scenario())
    assert _depth(config) == 0
    _, rows = store.query(
        "SELECT count(), uniqExact(seq), min(seq), max(seq) FROM probe_results WHERE agent_id = 'drain-1'"
    )
    assert rows[0] == (3000, 3000, 1, 3000)


def test_collector_down_the_agent_waits_out_the_grace_and_keeps_the_spool(tmp_path: Path) -> None:
    config = _config(tmp_path, "drain-2", f"127.0.0.1:{free_port()}", grace=0.8)
    _prefill(config, 120)
    took = asyncio.run(_run_stopped(Agent(config)))
    assert took >= 0.8  # it kept trying for the whole grace
    assert _depth(config) == 120


def test_a_second_signal_ends_the_drain_at_once(tmp_path: Path) -> None:
    config = _config(tmp_path, "drain-3", f"127.0.0.1:{free_port()}", grace=RUN_BOUND_S * 10)
    _prefill(config, 50)
    asyncio.run(_run_stopped(Agent(config), give_up_after=0.2))  # far below the grace
    assert _depth(config) == 50


def test_zero_grace_leaves_at_once_and_an_empty_spool_needs_no_wait(tmp_path: Path) -> None:
    for agent_id, grace, n in (("drain-4", 0.0, 30), ("drain-5", RUN_BOUND_S * 10, 0)):
        config = _config(tmp_path, agent_id, f"127.0.0.1:{free_port()}", grace=grace)
        _prefill(config, n)
        asyncio.run(_run_stopped(Agent(config)))
        assert _depth(config) == n


def test_config_pushed_while_draining_starts_no_probe(tmp_path: Path) -> None:
    agent = Agent(_config(tmp_path, "drain-6", "127.0.0.1:1", grace=1.0))
    agent.stopping = True
    pushed = CheckConfig(
        version="v2", checks=[CheckSpec(id="shop", probe="http", target="https://shop.test/")]
    )
    agent._apply_central_config(pushed)
    assert agent.config_version == LOCAL_VERSION
    agent.spool.close()
