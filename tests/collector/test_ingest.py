"""Ingest: commits in order, acks only after commit, drops replays, survives a restart, holds
results (bounded) while the store is down. Counts are read back with SQL."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from collector.ingest import Ingestor
from collector.store import Store
from tests.collector.stream_kit import result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"chdb://{tmp_path_factory.mktemp('store')}")
    s.migrate()
    yield s
    s.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(store: Store, agent_id: str) -> tuple[int, int, int]:
    _, rows = store.query(
        "SELECT count(), uniqExact(seq), max(seq) FROM probe_results WHERE agent_id = {a:String}", {"a": agent_id}
    )
    return rows[0]  # type: ignore[return-value]


def _batch(agent_id: str, first: int, last: int) -> list:  # type: ignore[type-arg]
    return [result(s, agent_id=agent_id, region="it") for s in range(first, last + 1)]


def test_commit_then_ack_and_replays_are_dropped(store: Store) -> None:
    async def scenario() -> Ingestor:
        ingestor = Ingestor(store, batch_rows=100, flush_interval=0.05)
        assert await ingestor.prepare()
        assert await ingestor.open_agent("a1") == 0
        assert ingestor.submit("a1", _batch("a1", 1, 150)) == 150
        assert ingestor.committed["a1"] == 0  # nothing acknowledged before the store has it
        assert ingestor.submit("a1", _batch("a1", 100, 160)) == 10  # overlap with what is queued
        await ingestor.flush_once()
        assert await ingestor.wait_committed("a1", 0, 1.0) == 160
        assert ingestor.submit("a1", _batch("a1", 1, 160)) == 0
        assert ingestor.duplicates_dropped == 51 + 160
        ingestor.close()
        return ingestor

    asyncio.run(scenario())
    assert _stored(store, "a1") == (160, 160, 160)


def test_restarted_ingestor_reads_the_high_water_mark_from_the_store(store: Store) -> None:
    async def scenario() -> None:
        first = Ingestor(store, flush_interval=0.05)
        await first.prepare()
        await first.open_agent("a2")
        first.submit("a2", _batch("a2", 1, 40))
        await first.flush_once()
        first.close()
        # A new collector process: it knows nothing but what the store says.
        second = Ingestor(store, flush_interval=0.05)
        await second.prepare()
        assert await second.open_agent("a2") == 40
        assert second.submit("a2", _batch("a2", 1, 60)) == 20
        await second.flush_once()
        second.close()

    asyncio.run(scenario())
    assert _stored(store, "a2") == (60, 60, 60)


def test_refused_tail_moves_the_mark(store: Store) -> None:
    async def scenario() -> int:
        ingestor = Ingestor(store, flush_interval=0.05)
        await ingestor.prepare()
        await ingestor.open_agent("a3")
        ingestor.submit("a3", _batch("a3", 1, 5), last_seq=9)  # 6..9 refused by validation
        ingestor.submit("a3", [], last_seq=12)
        await ingestor.flush_once()
        ingestor.close()
        return ingestor.committed["a3"]

    assert asyncio.run(scenario()) == 12
    assert _stored(store, "a3") == (5, 5, 5)


def test_same_chunk_retried_is_stored_once(store: Store) -> None:
    """A retried insert (the first one did reach the store) is deduplicated by its token."""
    async def scenario() -> None:
        ingestor = Ingestor(store, flush_interval=0.05)
        await ingestor.prepare()
        await ingestor.open_agent("a4")
        ingestor.submit("a4", _batch("a4", 1, 30))
        chunk = ingestor._take_chunk()
        assert chunk is not None
        table = await ingestor._converted(chunk)
        for _ in range(2):
            await store.run(store.insert_arrow, "probe_results", table,
                            {"insert_deduplication_token": chunk.token()})
        ingestor.close()

    asyncio.run(scenario())
    assert _stored(store, "a4") == (30, 30, 30)


def test_store_down_holds_acks_and_bounds_memory() -> None:
    down = Store(f"http://127.0.0.1:{_closed_port()}/")

    async def scenario() -> None:
        ingestor = Ingestor(down, batch_rows=100, flush_interval=0.05, max_pending_rows=300)
        assert not await ingestor.prepare()
        assert not ingestor.store_ok
        run = asyncio.create_task(ingestor.run())
        for first in range(1, 400, 100):
            ingestor.submit("a5", _batch("a5", first, first + 99))
        assert ingestor.overloaded
        await ingestor.wait_for_room(0.3)
        assert ingestor.overloaded and ingestor.committed.get("a5", 0) == 0
        assert ingestor.rows_committed == 0
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        ingestor.close()

    asyncio.run(scenario())
    down.close()
