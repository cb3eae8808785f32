"""Central config as the agent applies it, over real gRPC from a scripted collector (issue 11
item 6): a central config of zero checks stops the old ones; "no central checks" brings back the
agent's local checks; a collector that says nothing leaves the running set alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import grpc

from probe_agent.agent import Agent
from probe_agent.config import config_from_mapping
from probenet.v1.probe_pb2 import CheckSpec
from probenet.v1.stream_pb2 import CheckConfig
from tests.probe_agent.fake_collector import Script, Session, fake_collector


def _check(check_id: str) -> CheckSpec:
    spec = CheckSpec(id=check_id, probe="dns", target="localhost")
    spec.interval.FromSeconds(3600)  # never due within the test
    spec.timeout.FromSeconds(5)
    return spec


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_empty_central_config_stops_old_checks_and_local_flag_restores_local_ones(tmp_path: Path) -> None:
    pushes = [
        CheckConfig(version="v1", checks=[_check("central-a"), _check("central-b")]),
        CheckConfig(version="v2"),  # every central check removed while the agent was away
        CheckConfig(use_local_checks=True),  # the collector has no central checks at all
        None,  # an older collector: sends nothing
    ]
    advance = [asyncio.Event() for _ in pushes]

    def script(i: int) -> Script:
        async def run(session: Session) -> None:
            await session.ack(0)
            if pushes[i] is not None:
                await session.send(config=pushes[i])
            await advance[i].wait()
            await session.context.abort(grpc.StatusCode.UNAVAILABLE, "reconnect, please")

        return run

    async def scenario() -> list[list[str]]:
        seen: list[list[str]] = []
        async with fake_collector([script(i) for i in range(len(pushes))]) as (fake, address):
            config = config_from_mapping(
                {
                    "agent_id": "cfg-1",
                    "region": "it",
                    "collector": address,
                    "insecure": True,
                    "spool": {"dir": str(tmp_path / "spool")},
                    # Nothing here acks results: a probe that happened to run must not make the
                    # stop below wait out a drain (the default grace is as long as the wait).
                    "shutdown_grace": "0s",
                    "checks": [{"id": "local-x", "probe": "dns", "target": "localhost", "interval": "1h"}],
                },
                "agent.yaml",
            )
            agent = Agent(config)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            expected = [["central-a", "central-b"], [], ["local-x"], ["local-x"]]
            for i, want in enumerate(expected):
                await _until(lambda i=i: len(fake.sessions) == i + 1)  # type: ignore[misc]
                if i == len(expected) - 1:
                    await asyncio.sleep(0.5)  # nothing is coming: give a wrong change time to show
                await _until(lambda want=want: agent.scheduler.check_ids == want)  # type: ignore[misc]
                seen.append(agent.scheduler.check_ids)
                advance[i].set()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        return seen

    assert asyncio.run(scenario()) == [["central-a", "central-b"], [], ["local-x"], ["local-x"]]
