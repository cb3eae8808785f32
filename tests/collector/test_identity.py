"""An agent is (region, agent id): another region's certificate cannot touch it (issue 11, item 3).

A hostile `fr` region certificate opens a stream as agent id `it-1`, sends seq +1,000,000 and
then 2^64-1; the real `it` agent `it-1` (its own agent certificate) keeps every result stored
and every ack right, also after a collector restart."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from collector import ca
from collector.ingest import Identity, Ingestor
from collector.ingest.validate import MAX_SEQ
from collector.store import Store
from collector.store.rows import RESULT_COLUMNS, result_row
from collector.web.agents import _AGENTS_SQL
from probenet.v1 import stream_pb2, stream_pb2_grpc
from tests.collector.stream_kit import (
    Pki,
    acks,
    batch,
    exchange,
    hello,
    insecure_config,
    mtls_config,
    result,
    running_collector,
)

REAL = Identity("it", "it-1")
HOSTILE = Identity("fr", "it-1")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def _stored(store: Store, who: Identity) -> tuple[int, int]:
    _, rows = store.query(
        "SELECT count(), max(seq) FROM probe_results WHERE region = {r:String} AND agent_id = {a:String}",
        {"r": who.region, "a": who.agent_id},
    )
    return int(rows[0][0]), int(rows[0][1])


async def _hostile(channel: grpc.aio.Channel) -> tuple[list[int], grpc.StatusCode | None]:
    """+1,000,000 is this (fr) agent's own business; 2^64-1 ends its stream, unsettled."""
    call = stream_pb2_grpc.CollectorStub(channel).Stream()
    await call.write(hello("it-1", ""))
    await call.write(batch([result(1_000_005)]))
    seen: list[int] = []
    code = None
    try:
        for _ in range(20):
            reply = await asyncio.wait_for(call.read(), 20)
            if reply is grpc.aio.EOF:
                break
            seen += acks([reply])
            if seen and seen[-1] == 1_000_005:
                await call.write(batch([result(2**64 - 1)]))
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    return seen, code


def test_another_regions_certificate_cannot_settle_or_poison_an_agent(pki: Pki, store: Store) -> None:
    real_creds = pki.credentials(pki.agent("it", "it-1"))
    hostile_creds = pki.credentials(ca.issue_region(pki.dir, pki.dir, "fr"))

    async def scenario() -> tuple[
        list[int], list[int], list[int], grpc.StatusCode | None, dict[Identity, int]
    ]:
        async with running_collector(store, mtls_config(pki)) as col:
            async with grpc.aio.secure_channel(col.address, real_creds) as channel:
                first = acks(
                    await exchange(channel, [hello("it-1", "it"), batch([result(s) for s in range(1, 6)])], 5)
                )
            async with grpc.aio.secure_channel(col.address, hostile_creds) as channel:
                hostile_acks, code = await _hostile(channel)
            async with grpc.aio.secure_channel(col.address, real_creds) as channel:
                second = acks(
                    await exchange(
                        channel, [hello("it-1", "it"), batch([result(s) for s in range(6, 11)])], 10
                    )
                )
            return first, hostile_acks, second, code, dict(col.ingestor.committed)

    first, hostile_acks, second, code, committed = asyncio.run(scenario())
    assert first[0] == 0 and first[-1] == 5
    assert hostile_acks[0] == 0 and hostile_acks[-1] == 1_000_005
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert all(a <= MAX_SEQ for a in first + hostile_acks + second)
    # The real it-1 was told its own mark on reconnect, and every result of it is stored.
    assert second[0] == 5 and second[-1] == 10
    assert _stored(store, REAL) == (10, 10)
    assert _stored(store, HOSTILE) == (1, 1_000_005)
    assert committed[REAL] == 10 and committed[HOSTILE] == 1_000_005

    async def restarted() -> tuple[int, int]:
        ingestor = Ingestor(store)
        await ingestor.prepare()
        marks = await ingestor.open_agent(REAL), await ingestor.open_agent(HOSTILE)
        ingestor.close()
        return marks

    assert asyncio.run(restarted()) == (10, 1_000_005)


def test_a_mark_poisoned_before_validation_is_not_read_back(store: Store) -> None:
    """A row with seq 2^64-1 stored by an older collector does not become the agent's mark."""
    poisoned = Identity("de", "de-9")
    row = result(2**64 - 1, agent_id=poisoned.agent_id, region=poisoned.region)
    store.migrate()
    store.insert("probe_results", [result_row(row, dt.datetime.now(dt.UTC))], RESULT_COLUMNS)
    store.insert(
        "probe_results",
        [result_row(result(7, agent_id="de-9", region="de"), dt.datetime.now(dt.UTC))],
        RESULT_COLUMNS,
    )

    async def mark() -> int:
        ingestor = Ingestor(store)
        await ingestor.prepare()
        value = await ingestor.open_agent(poisoned)
        ingestor.close()
        return value

    assert asyncio.run(mark()) == 7


def test_agents_table_and_api_keep_both_regions_and_refuse_impossible_heartbeats(store: Store) -> None:
    async def scenario() -> None:
        async with (
            running_collector(store, insecure_config()) as col,
            grpc.aio.insecure_channel(col.address) as channel,
        ):
            good = stream_pb2.AgentMessage(heartbeat=stream_pb2.Heartbeat(spool_depth=5, dropped_results=1))
            liar = stream_pb2.AgentMessage(
                heartbeat=stream_pb2.Heartbeat(spool_depth=2**64 - 1, dropped_results=2**64 - 1)
            )
            await exchange(channel, [hello("it-5", "it"), good, batch([result(1)])], 1)
            await exchange(channel, [hello("it-5", "fr"), liar, batch([result(1)])], 1)
            await col.ingestor._flush_agents()

    asyncio.run(scenario())
    _, rows = store.query(_AGENTS_SQL.replace("FROM agents", "FROM agents WHERE agent_id = 'it-5'"))
    by_region = {r[1]: (r[0], r[5], r[6], r[7]) for r in rows}
    assert by_region == {"it": ("it-5", 5, 1, 1), "fr": ("it-5", 0, 0, 1)}
