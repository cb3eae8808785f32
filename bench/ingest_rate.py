"""Ingest rate: agent streams -> collector -> embedded ClickHouse, against a direct insert.

    .venv/bin/python bench/ingest_rate.py [--agents 4] [--results 60000]

Several fake agents (a separate process, real grpc.aio on loopback, 500 results per message,
the exporter's unacknowledged window) stream into the real collector path (CollectorService ->
validation -> Ingestor -> Arrow conversion -> chDB) in this process. Baseline, same run, same
engine: clickhouse-connect inserting the same rows, already converted, in 10,000-row batches.

Prints results/s both ways, the ratio (target >= 0.5), and the p99 time from sending a message
to receiving the ack that covers it (target < 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from probe_agent.exporter import MAX_UNACKED_RESULTS
from probenet.v1 import stream_pb2
from probenet.v1.probe_pb2 import Outcome, ProbeResult

PER_MESSAGE = 500
WINDOW = MAX_UNACKED_RESULTS  # the real exporter's unacknowledged window
METHOD = "/probenet.v1.Collector/Stream"


def make_results(agent_id: str, count: int, first_seq: int = 1) -> list[ProbeResult]:
    now = time.time()
    out = []
    for i in range(count):
        r = ProbeResult(
            check_id=f"check-{i % 50}",
            agent_id=agent_id,
            region="it",
            seq=first_seq + i,
            probe="http",
            target=f"https://shop-{i % 50}.example/",
            outcome=Outcome.OUTCOME_SUCCESS,
        )
        r.started_at.FromNanoseconds(int((now - (count - i) * 0.001) * 1e9))
        t = r.timings
        t.dns_ms, t.connect_ms, t.tls_ms, t.ttfb_ms, t.transfer_ms, t.total_ms = (
            1.2,
            3.4,
            8.9,
            40.1,
            2.2,
            55.8,
        )
        r.http.status_code, r.http.http_version, r.http.body_bytes = 200, "HTTP/1.1", 5123
        r.http.remote_addr = "192.0.2.10:443"
        out.append(r)
    return out


# --- fake agents (child process) ---


def _frames(agent_id: str, count: int) -> list[bytes]:
    results = make_results(agent_id, count)
    frames = [
        stream_pb2.AgentMessage(hello=stream_pb2.Hello(agent_id=agent_id, region="it")).SerializeToString()
    ]
    frames += [
        stream_pb2.AgentMessage(
            batch=stream_pb2.ResultBatch(results=results[i : i + PER_MESSAGE])
        ).SerializeToString()
        for i in range(0, count, PER_MESSAGE)
    ]
    return frames


async def _agent(address: str, frames: list[bytes], count: int, latencies: list[float]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(
            METHOD, request_serializer=None, response_deserializer=stream_pb2.CollectorMessage.FromString
        )()
        acked = 0
        progress = asyncio.Event()
        sent_at: list[tuple[int, float]] = []

        async def read() -> None:
            nonlocal acked
            async for reply in call:
                if reply.WhichOneof("msg") == "ack":
                    acked = reply.ack.up_to_seq
                    now = time.perf_counter()
                    while sent_at and sent_at[0][0] <= acked:
                        latencies.append(now - sent_at.pop(0)[1])
                    progress.set()
                if acked >= count:
                    return

        reader = asyncio.create_task(read())
        await call.write(frames[0])
        last_seq = 0
        for frame in frames[1:]:
            while last_seq - acked >= WINDOW:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 60)
            await call.write(frame)
            last_seq = min(last_seq + PER_MESSAGE, count)
            sent_at.append((last_seq, time.perf_counter()))
        await asyncio.wait_for(reader, 120)
        call.cancel()


async def _agents(address: str, agents: int, count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    streams = [_frames(f"bench-{i}", count) for i in range(agents)]  # built before the clock starts
    start = time.perf_counter()
    await asyncio.gather(*(_agent(address, frames, count, latencies) for frames in streams))
    return time.perf_counter() - start, latencies


def agents_process(address: str, agents: int, count: int, out: Any) -> None:
    out.send(asyncio.run(_agents(address, agents, count)))


# --- collector (this process) ---


async def run_collector_side(store_url: str, agents: int, count: int) -> tuple[float, list[float], int]:
    from collector.config import CollectorConfig, Limits
    from collector.ingest.ingestor import Ingestor
    from collector.ingest.server import CollectorService, add_to_server
    from collector.store import Store

    store = Store(store_url)
    ingestor = Ingestor(store)  # production defaults: 10,000-row inserts, 1 s flush, 200k pending
    await ingestor.prepare()
    config = CollectorConfig(insecure=True)
    service = CollectorService(ingestor, lambda: config, Limits(rate_per_agent=1e12, burst_per_agent=1e12))
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20)])
    add_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ingest = asyncio.create_task(ingestor.run())
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=agents_process, args=(f"127.0.0.1:{port}", agents, count, child))
    proc.start()
    elapsed, latencies = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
    proc.join(30)
    ingest.cancel()
    await server.stop(0)
    _, rows = await store.run(store.query, "SELECT count(), uniqExact(agent_id, seq) FROM probe_results")
    stored, distinct = int(rows[0][0]), int(rows[0][1])
    assert stored == distinct == agents * count, (stored, distinct)
    ingestor.close()
    await store.aclose()
    return elapsed, latencies, stored


def baseline(store_url: str, total: int) -> float:
    from collector.store import Store
    from collector.store.rows import RESULT_COLUMNS, result_row

    store = Store(store_url)
    received = datetime.now(UTC)
    rows = [result_row(r, received) for r in make_results("baseline", total)]
    start = time.perf_counter()
    for i in range(0, total, 10_000):
        store.insert("probe_results", rows[i : i + 10_000], RESULT_COLUMNS)
    elapsed = time.perf_counter() - start
    store.close()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--results", type=int, default=60_000, help="results per agent")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="probenet-bench-") as tmp:
        url = f"chdb://{tmp}/store"
        elapsed, latencies, stored = asyncio.run(run_collector_side(url, args.agents, args.results))
        direct = baseline(url, args.agents * args.results)
    rate = stored / elapsed
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    print(f"agents={args.agents} results={stored} ({PER_MESSAGE}/message), stored exactly once")
    print(f"end to end (gRPC -> collector -> chDB): {rate:,.0f} results/s  [target >= 100,000]")
    print(f"direct clickhouse-connect insert (10,000-row batches): {direct:,.0f} rows/s")
    print(f"ratio: {rate / direct:.2f}  [target >= 0.5]")
    print(
        f"send-to-ack: p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms  [target < 1000 ms]"
    )


if __name__ == "__main__":
    main()
