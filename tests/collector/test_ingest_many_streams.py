"""Many streams that say hello and close at once must not stop ingest for anybody (issue 11, item 2)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from collector.store import Store
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
