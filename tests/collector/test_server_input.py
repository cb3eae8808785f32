"""Bad input on one agent's stream gets a clear status there, and every other agent is served."""

from __future__ import annotations

import asyncio
import socket

import grpc

from collector.config import Limits
from collector.ingest import validate
from collector.store import Store
from probenet.v1 import stream_pb2
from tests.collector.stream_kit import (
    acks,
    batch,
    exchange,
    hello,
    insecure_config,
    result,
    running_collector,
)


def _count(store: Store, agent_id: str) -> int:
    _, rows = store.query("SELECT count() FROM probe_results WHERE agent_id = {a:String}", {"a": agent_id})
    return int(rows[0][0])


async def _raw_stream(channel: grpc.aio.Channel, frames: list[bytes]) -> grpc.StatusCode:
    return (await _refusal(channel, frames)).code()


async def _refusal(channel: grpc.aio.Channel, frames: list[bytes]) -> grpc.aio.AioRpcError:
    call = channel.stream_stream(
        "/probenet.v1.Collector/Stream",
        request_serializer=lambda b: b,
        response_deserializer=stream_pb2.CollectorMessage.FromString,
    )()
    for frame in frames:
        try:
            await call.write(frame)
        except grpc.aio.AioRpcError:
            break
    try:
        for _ in range(10):
            if await asyncio.wait_for(call.read(), 10) is grpc.aio.EOF:
                break
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the stream was not refused")


def _message_of(nbytes: int) -> bytes:
    """An AgentMessage (a batch of one result) that encodes to about `nbytes`."""
    big = result(1)
    big.error = "x" * nbytes
    return batch([big]).SerializeToString()


def test_a_message_over_max_message_bytes_is_refused_by_the_collector_and_counted(store: Store) -> None:
    """gRPC's own refusal reaches the handler as a plain end of stream (uncountable): the decoder
    refuses first, below gRPC's cap of twice the limit, with a status that names the limit."""
    limit = 1 << 20

    async def scenario() -> tuple[
        grpc.aio.AioRpcError, grpc.aio.AioRpcError, list[stream_pb2.CollectorMessage], dict[str, int]
    ]:
        async with running_collector(store, insecure_config(), Limits(max_message_bytes=limit)) as col:
            async with grpc.aio.insecure_channel(col.address) as channel:
                first = hello("big-1", "it").SerializeToString()
                ours = await _refusal(channel, [first, _message_of(limit + limit // 2)])
                grpcs = await _refusal(channel, [first, _message_of(3 * limit)])
                good = await exchange(channel, [hello("good-1", "it"), batch([result(1)])], until_ack=1)
            return ours, grpcs, good, dict(col.service.validator.counts)

    ours, grpcs, good, counts = asyncio.run(scenario())
    assert ours.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"exceeds limits.max_message_bytes {limit}" in (ours.details() or "")
    assert counts[validate.MESSAGE_TOO_LARGE] == 1
    # Over twice the limit gRPC refuses from the length prefix alone, before buffering it.
    assert grpcs.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (grpcs.details() or "")
    assert good[0].ack.max_message_bytes == limit
    assert acks(good)[-1] == 1 and _count(store, "big-1") == 0


def test_malformed_and_oversized_messages_end_only_that_stream(store: Store) -> None:
    async def scenario() -> tuple[
        grpc.StatusCode, grpc.StatusCode, grpc.StatusCode, list[int], dict[str, int]
    ]:
        async with running_collector(store, insecure_config(), Limits(max_batch_results=50)) as col:
            async with grpc.aio.insecure_channel(col.address) as channel:
                garbage = await _raw_stream(channel, [b"\xff\xff\xff\xff"])
                hello_then_garbage = await _raw_stream(
                    channel, [hello("bad-1", "it").SerializeToString(), b"\x12\x05\x0a\x03\xff\xff"]
                )
                oversized = await _raw_stream(
                    channel,
                    [
                        hello("bad-2", "it").SerializeToString(),
                        batch([result(s) for s in range(1, 52)]).SerializeToString(),
                    ],
                )
                good = await exchange(
                    channel, [hello("good-1", "it"), batch([result(1), result(2)])], until_ack=2
                )
            return garbage, hello_then_garbage, oversized, acks(good), dict(col.service.validator.counts)

    garbage, hello_then_garbage, oversized, good_acks, counts = asyncio.run(scenario())
    assert garbage == grpc.StatusCode.INVALID_ARGUMENT
    assert hello_then_garbage == grpc.StatusCode.INVALID_ARGUMENT
    assert oversized == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert good_acks[-1] == 2
    assert counts[validate.MALFORMED] == 2 and counts[validate.BATCH_TOO_LARGE] == 1
    assert _count(store, "good-1") == 2
    assert _count(store, "bad-1") == 0 and _count(store, "bad-2") == 0


def test_flooding_agent_is_slowed_down_and_loses_nothing(store: Store) -> None:
    async def scenario() -> tuple[list[stream_pb2.CollectorMessage], list[int], int]:
        limits = Limits(rate_per_agent=400.0, burst_per_agent=200.0)
        async with running_collector(store, insecure_config(), limits) as col:
            async with grpc.aio.insecure_channel(col.address) as channel:
                flood = [
                    batch([result(s) for s in range(first, first + 100)]) for first in range(1, 600, 100)
                ]
                flooding = asyncio.create_task(
                    exchange(channel, [hello("flood-1", "it"), *flood], until_ack=600)
                )
                calm = await exchange(channel, [hello("calm-1", "fr"), batch([result(1)])], until_ack=1)
                replies = await flooding
            return replies, acks(calm), col.service.validator.counts[validate.RATE_LIMITED]

    replies, calm_acks, limited = asyncio.run(scenario())
    slow = [r.slow_down for r in replies if r.WhichOneof("msg") == "slow_down"]
    assert slow and slow[0].reason == "rate limit" and slow[0].pause_ms > 0
    assert acks(replies)[-1] == 600
    assert calm_acks[-1] == 1
    assert limited > 0
    assert _count(store, "flood-1") == 600


def test_bad_results_are_counted_and_settled(store: Store) -> None:
    async def scenario() -> list[int]:
        async with (
            running_collector(store, insecure_config()) as col,
            grpc.aio.insecure_channel(col.address) as channel,
        ):
            mixed = [result(1), result(2, check_id=""), result(3, at=0), result(4)]
            return acks(await exchange(channel, [hello("mixed-1", "it"), batch(mixed)], until_ack=4))

    assert asyncio.run(scenario())[-1] == 4
    assert _count(store, "mixed-1") == 2


def test_store_unavailable_holds_acks_and_asks_agents_to_slow_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Store(f"http://127.0.0.1:{port}/")

    async def scenario() -> list[stream_pb2.CollectorMessage]:
        async with running_collector(down, insecure_config()) as col:
            assert not col.ingestor.store_ok
            async with grpc.aio.insecure_channel(col.address) as channel:
                call = channel.stream_stream(
                    "/probenet.v1.Collector/Stream",
                    request_serializer=stream_pb2.AgentMessage.SerializeToString,
                    response_deserializer=stream_pb2.CollectorMessage.FromString,
                )()
                await call.write(hello("held-1", "it"))
                await call.write(batch([result(1)]))
                first = await asyncio.wait_for(call.read(), 10)
                call.cancel()
                return [first]

    replies = asyncio.run(scenario())
    down.close()
    assert replies[0].WhichOneof("msg") == "slow_down"
    assert replies[0].slow_down.reason == "store unavailable"
