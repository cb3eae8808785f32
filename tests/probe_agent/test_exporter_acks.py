"""The agent survives any ack value over a real gRPC stream (issue 11 item 3): an ack beyond what
it sent, 2^64-1, 0 or going backwards never crashes it and never deletes a result it did not
send; every result still reaches the collector, and numbering goes on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import grpc
import pytest

from probe_agent import exporter as exporter_module
from probe_agent.exporter import Exporter, StreamSettings
from probe_agent.spool import Spool
from probenet.v1 import stream_pb2
from probenet.v1.probe_pb2 import ProbeResult
from tests.probe_agent.fake_collector import Session, fake_collector

U64_MAX = (1 << 64) - 1


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _append(spool: Spool, names: list[str]) -> None:
    for name in names:
        spool.append(ProbeResult(check_id=name, agent_id="ak-1", region="it"))


@pytest.mark.parametrize("hostile", [1_000_000, U64_MAX])
def test_hostile_acks_lose_nothing_and_crash_nothing(tmp_path: Path, hostile: int) -> None:
    spool = Spool(tmp_path)
    first = [f"r{i}" for i in range(50)]
    later = [f"s{i}" for i in range(5)]
    _append(spool, first)

    liar_top: list[int] = []

    async def liar(session: Session) -> None:
        await session.ack(hostile)  # "I already store everything up to here"
        await session.read_until(50)
        liar_top.append(max(r.seq for r in session.received))
        for value in (U64_MAX, 0, 7, hostile):
            await session.ack(value)
        await session.context.abort(grpc.StatusCode.UNAVAILABLE, "going away")

    async def honest(session: Session) -> None:
        await session.ack(liar_top[0])
        await session.read_until(5)
        await session.ack(0)
        await session.ack(3)
        await session.ack(session.received[-1].seq)

    async def scenario() -> tuple[int, bool]:
        async with fake_collector([liar, honest]) as (fake, address):
            settings = StreamSettings(
                collector=address,
                agent_id="ak-1",
                region="it",
                capabilities=("http",),
                insecure=True,
                batch_size=10,
            )
            exporter = Exporter(settings, spool, lambda config: None)
            task = asyncio.create_task(exporter.run())
            exporter.notify()
            await _until(lambda: len(fake.sessions) == 2)
            _append(spool, later)
            exporter.notify()
            await _until(lambda: len(fake.sessions[1].received) >= 5 and spool.depth == 0)
            alive = not task.done()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # What the agent reports about its spool stays plausible whatever it was told.
            assert all(s.hello.spool_depth <= 55 and s.hello.dropped_results == 0 for s in fake.sessions)
            received = fake.received
            assert [r.check_id for r in received] == first + later  # every result, once, in order
            seqs = [r.seq for r in received]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            return seqs[-1], alive

    last, alive = asyncio.run(scenario())
    assert alive, "the exporter stopped"
    # A plausible "stored up to" moves numbering past it; an absurd one is refused.
    assert last == (1_000_055 if hostile == 1_000_000 else 55)
    assert spool.last_seq == last and spool.dropped == 0
    spool.close()


def test_a_slow_down_of_50_days_pauses_delivery_only_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter_module, "MAX_PAUSE_S", 0.5)  # the cap is 60 s: kept short here
    spool = Spool(tmp_path)
    _append(spool, ["r0", "r1", "r2"])

    async def stalling(session: Session) -> None:
        # Before the first ack, so the agent has sent nothing yet when it is told to wait.
        await session.send(slow_down=stream_pb2.SlowDown(pause_ms=(1 << 32) - 1, reason="hostile"))
        await session.ack(0)
        await session.read_until(3)
        await session.ack(session.received[-1].seq)

    async def scenario() -> list[str]:
        async with fake_collector([stalling]) as (fake, address):
            settings = StreamSettings(
                collector=address, agent_id="ak-1", region="it", capabilities=("http",), insecure=True
            )
            exporter = Exporter(settings, spool, lambda config: None)
            task = asyncio.create_task(exporter.run())
            exporter.notify()
            await _until(lambda: spool.depth == 0, timeout=20)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return [r.check_id for r in fake.received]

    assert asyncio.run(scenario()) == ["r0", "r1", "r2"]
    assert exporter_module.pause_s((1 << 32) - 1) == 0.5 and exporter_module.pause_s(200) == 0.2
    spool.close()
