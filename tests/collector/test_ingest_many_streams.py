"""Many streams that say hello and close at once must not stop ingest for anybody, and /readyz
says so when pending rows stop moving (issue 11, item 2)."""

from __future__ import annotations

import asyncio

import aiohttp
import grpc
import pytest
from aiohttp import web

from collector.ingest import Identity, Ingestor
from collector.store import Store
from collector.web import ApiState, make_app
from probenet.v1 import stream_pb2_grpc
from tests.collector.stream_kit import (
    acks,
    batch,
    exchange,
    hello,
    insecure_config,
    result,
    running_collector,
)

STREAMS = 300


async def _hello_and_close(channel: grpc.aio.Channel, n: int, go: asyncio.Event) -> None:
    call = stream_pb2_grpc.CollectorStub(channel).Stream()
    await call.write(hello(f"burst-{n}", "it"))
    try:
        await asyncio.wait_for(call.read(), 30)  # the first ack: the stream is fully open
    finally:
        await go.wait()
        call.cancel()


# Before the fix the ingest task hung on a lock nobody held, and so did the collector's stop.
@pytest.mark.timeout(150)
def test_streams_closing_together_do_not_freeze_ingest(store: Store) -> None:
    async def scenario() -> tuple[list[int], int]:
        async with running_collector(store, insecure_config()) as col:
            async with grpc.aio.insecure_channel(col.address) as channel:
                for round_ in range(3):
                    go = asyncio.Event()
                    tasks = [
                        asyncio.create_task(_hello_and_close(channel, round_ * STREAMS + n, go))
                        for n in range(STREAMS)
                    ]
                    await asyncio.sleep(2.5)  # let the ack waiters time out and re-arm meanwhile
                    go.set()
                    await asyncio.gather(*tasks, return_exceptions=True)
                replies = await exchange(
                    channel, [hello("after-1", "it"), batch([result(1), result(2)])], until_ack=2, timeout=30
                )
            return acks(replies), col.ingestor.pending_rows

    got, pending = asyncio.run(scenario())
    assert got and got[-1] == 2, f"acks after the burst: {got}, pending rows {pending}"


def test_readyz_turns_not_ready_while_pending_rows_do_not_move(store: Store) -> None:
    """The watchdog: a real ingestor whose insert loop does not run, behind the real API."""

    async def scenario() -> list[tuple[int, str]]:
        ingestor = Ingestor(store, flush_interval=0.05)
        await ingestor.prepare()
        ingestor.stall_after_s = 0.3
        state = ApiState(store, ready=True)
        state.ingest_stalled = ingestor.stalled
        runner = web.AppRunner(make_app(state))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        seen = []
        async with aiohttp.ClientSession() as http:

            async def readyz() -> tuple[int, str]:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    return response.status, (await response.json())["status"]

            seen.append(await readyz())  # nothing pending
            who = Identity("it", "stall-1")
            await ingestor.open_agent(who)
            ingestor.submit(who, [result(1, agent_id="stall-1", region="it")])
            await asyncio.sleep(0.5)
            seen.append(await readyz())  # pending, and nothing committed it
            await ingestor.flush_once()
            seen.append(await readyz())
        await runner.cleanup()
        ingestor.close()
        return seen

    first, stalled, moved = asyncio.run(scenario())
    assert first == (200, "ready")
    assert stalled[0] == 503 and stalled[1].startswith("ingest stalled")
    assert moved == (200, "ready")
