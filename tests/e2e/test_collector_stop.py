"""A graceful stop under load (issue 11, item 7): streams stop being read, what is pending is
committed in one go, every agent gets its last ack, no false ERROR, and the process exits."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc

from collector.store import Store
from probenet.v1 import stream_pb2_grpc
from tests.collector.stream_kit import batch, hello, result
from tests.e2e.procs import Collector, stopped_on_exit

AGENTS = 4
BATCH = 500


async def _flood(address: str, agent_id: str, acked: dict[str, int]) -> None:
    """Send batches as fast as flow control lets us; remember the highest ack."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = stream_pb2_grpc.CollectorStub(channel).Stream()

        async def reader() -> None:
            while True:
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    return
                if reply.WhichOneof("msg") == "ack":
                    acked[agent_id] = max(acked.get(agent_id, 0), reply.ack.up_to_seq)

        reading = asyncio.create_task(reader())
        try:
            await call.write(hello(agent_id, "it"))
            seq = 0
            while not reading.done():
                await call.write(batch([result(s) for s in range(seq + 1, seq + BATCH + 1)]))
                seq += BATCH
        except grpc.aio.AioRpcError:
            pass
        finally:
            await asyncio.gather(reading, return_exceptions=True)


def test_graceful_stop_under_load_commits_acks_and_exits_without_a_false_error(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector.start()
    acked: dict[str, int] = {}

    async def scenario() -> float:
        floods = [asyncio.create_task(_flood(collector.address, f"load-{n}", acked)) for n in range(AGENTS)]
        await asyncio.sleep(4)
        assert acked, "no ack under load before the stop"
        started = time.monotonic()
        code = await asyncio.get_running_loop().run_in_executor(None, collector.stop, signal.SIGTERM)
        took = time.monotonic() - started
        assert code == 0, collector.proc.output() if collector.proc else ""
        await asyncio.wait_for(asyncio.gather(*floods, return_exceptions=True), 30)
        return took

    with stopped_on_exit(collector):
        took = asyncio.run(scenario())
    output = collector.proc.output() if collector.proc else ""
    print(f"graceful stop under load took {took:.2f}s; acked {acked}")
    assert "store did not take" not in output
    assert "collector stopped" in output
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        for agent_id, mark in acked.items():
            _, rows = store.query(
                "SELECT uniqExact(seq), max(seq) FROM probe_results WHERE agent_id = {a:String} AND seq <= {m:UInt64}",
                {"a": agent_id, "m": mark},
            )
            assert tuple(rows[0]) == (mark, mark), f"{agent_id}: acked {mark}, stored {rows[0]}"
    finally:
        store.close()
