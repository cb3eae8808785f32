"""Ingest: commits in order, acks only after commit, drops replays, survives a restart, holds
results (bounded) while the store is down. Counts are read back with SQL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from collector.ingest.ingestor import Identity, Ingestor
from collector.store import Store
from collector.store.rows import RESULT_COLUMNS, frame_rows, result_row
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.collector.stream_kit import result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"chdb://{tmp_path_factory.mktemp('store')}")
    s.migrate()
    yield s
    s.close()


A1, A2, A3, A4, A5 = (Identity("it", f"a{n}") for n in range(1, 6))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(store: Store, agent_id: str) -> tuple[int, int, int]:
    _, rows = store.query(
        "SELECT count(), uniqExact(seq), max(seq) FROM probe_results WHERE agent_id = {a:String}",
        {"a": agent_id},
    )
    return rows[0]  # type: ignore[return-value]


def _batch(agent_id: str, first: int, last: int) -> list:  # type: ignore[type-arg]
    return [result(s, agent_id=agent_id, region="it") for s in range(first, last + 1)]


def test_commit_then_ack_and_replays_are_dropped(store: Store) -> None:
    async def scenario() -> Ingestor:
        ingestor = Ingestor(store, batch_rows=100, flush_interval=0.05)
        assert await ingestor.prepare()
        assert await ingestor.open_agent(A1) == 0
        assert ingestor.submit(A1, _batch("a1", 1, 150)) == 150
        assert ingestor.committed[A1] == 0  # nothing acknowledged before the store has it
        assert ingestor.submit(A1, _batch("a1", 100, 160)) == 10  # overlap with what is queued
        await ingestor.flush_once()
        assert await ingestor.wait_committed(A1, 0, 1.0) == 160
        assert ingestor.submit(A1, _batch("a1", 1, 160)) == 0
        assert ingestor.duplicates_dropped == 51 + 160
        ingestor.close()
        return ingestor

    asyncio.run(scenario())
    assert _stored(store, "a1") == (160, 160, 160)


def test_restarted_ingestor_reads_the_high_water_mark_from_the_store(store: Store) -> None:
    async def scenario() -> None:
        first = Ingestor(store, flush_interval=0.05)
        await first.prepare()
        await first.open_agent(A2)
        first.submit(A2, _batch("a2", 1, 40))
        await first.flush_once()
        first.close()
        # A new collector process: it knows nothing but what the store says.
        second = Ingestor(store, flush_interval=0.05)
        await second.prepare()
        assert await second.open_agent(A2) == 40
        assert second.submit(A2, _batch("a2", 1, 60)) == 20
        await second.flush_once()
        second.close()

    asyncio.run(scenario())
    assert _stored(store, "a2") == (60, 60, 60)


def test_refused_tail_moves_the_mark(store: Store) -> None:
    async def scenario() -> int:
        ingestor = Ingestor(store, flush_interval=0.05)
        await ingestor.prepare()
        await ingestor.open_agent(A3)
        ingestor.submit(A3, _batch("a3", 1, 5), last_seq=9)  # 6..9 refused by validation
        ingestor.submit(A3, [], last_seq=12)
        await ingestor.flush_once()
        ingestor.close()
        return ingestor.committed[A3]

    assert asyncio.run(scenario()) == 12
    assert _stored(store, "a3") == (5, 5, 5)


def test_same_chunk_retried_is_stored_once(store: Store) -> None:
    """A retried insert (the first one did reach the store) is deduplicated by its token."""

    async def scenario() -> None:
        ingestor = Ingestor(store, flush_interval=0.05)
        await ingestor.prepare()
        await ingestor.open_agent(A4)
        ingestor.submit(A4, _batch("a4", 1, 30))
        chunk = ingestor._take_chunk()
        assert chunk is not None
        chunk.table = await ingestor._converted(chunk)
        for _ in range(2):
            await ingestor._insert(chunk)
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
            ingestor.submit(A5, _batch("a5", first, first + 99))
        assert ingestor.overloaded
        await ingestor.wait_for_room(0.3)
        assert ingestor.overloaded and ingestor.committed.get(A5, 0) == 0
        assert ingestor.rows_committed == 0
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        ingestor.close()

    asyncio.run(scenario())
    down.close()


_AT = time.time() - 60.123456


def _rich(agent_id: str, seq: int) -> ProbeResult:
    r = result(seq, check_id="shop-page", agent_id=agent_id, region="it", at=_AT)
    r.outcome, r.failure_class, r.error, r.failure_host = (
        Outcome.OUTCOME_PARTIAL,
        977,
        "boom \u00e9",
        "static.test",
    )
    r.timings.dns_ms, r.timings.ttfb_ms = 1.5, 40.25
    r.http.status_code, r.http.http_version, r.http.body_bytes = 200, "HTTP/2", 1234
    r.http.remote_addr, r.http.final_url = "192.0.2.1:443", "https://shop.test/x"
    r.http.redirects.add(url="https://a/", status_code=301)
    r.tls.version, r.tls.cipher, r.tls.verified, r.tls.days_left = (
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        True,
        12.5,
    )
    r.tls.chain.add(
        subject="CN=shop.test",
        issuer="CN=ca",
        sans=["shop.test", "www.shop.test"],
        sha256_fingerprint="ab" * 32,
    )
    r.tls.chain.add(subject="CN=ca", issuer="CN=root")
    r.tls.earliest_expiry.FromSeconds(1_900_000_000)
    r.page.resources_total, r.page.resources_failed = 30, 2
    r.page.failed_hosts.add(host="static.test", failure_class=FailureClass.TLS_CERT_EXPIRED, count=2)
    r.page.failed_hosts.add(host="cdn.test", failure_class=555, count=1)
    return r


def test_protobuf_ingest_stores_the_same_row_as_the_python_conversion(store: Store) -> None:
    """chDB decoding the wire bytes must give exactly the columns result_row gives."""
    received = datetime.now(UTC).replace(microsecond=0)
    store.insert("probe_results", [result_row(_rich("py-1", 1), received)], RESULT_COLUMNS)
    framed = frame_rows([([_rich("pb-1", 1)], int(received.timestamp() * 1000))])
    store.insert_results_protobuf(framed)
    plain = result(2, agent_id="pb-1", region="it", at=_AT)
    store.insert("probe_results", [result_row(plain, received)], RESULT_COLUMNS)
    store.insert_results_protobuf(frame_rows([([plain], int(received.timestamp() * 1000))]))
    columns = ", ".join(c for c in RESULT_COLUMNS if c not in ("agent_id", "raw"))
    rows = {}
    for agent_id in ("py-1", "pb-1"):
        _, got = store.query(
            f"SELECT {columns}, raw FROM probe_results WHERE agent_id = {{a:String}} ORDER BY seq",
            {"a": agent_id},
            column_formats={"raw": "bytes"},
        )
        rows[agent_id] = got
    assert rows["py-1"][0][:-1] == rows["pb-1"][0][:-1]
    assert ProbeResult.FromString(rows["pb-1"][0][-1]) == _rich("pb-1", 1)
    assert rows["pb-1"][0][columns.split(", ").index("failure_class")] == "unknown_977"
    _, plain_rows = store.query(
        f"SELECT {columns} FROM probe_results WHERE seq = 2 AND agent_id IN ('py-1', 'pb-1')"
    )
    assert len(plain_rows) == 2 and plain_rows[0] == plain_rows[1]


def test_pending_work_is_bounded_in_bytes_too(store: Store) -> None:
    """Issue 11: 200 results with big strings held gigabytes while the row bound was far away."""

    async def scenario() -> tuple[bool, bool, int]:
        ingestor = Ingestor(store, batch_rows=10_000, max_pending_rows=100_000, max_pending_bytes=256 << 10)
        await ingestor.prepare()
        who = Identity("it", "a6")
        await ingestor.open_agent(who)
        heavy = _batch("a6", 1, 100)
        for r in heavy:
            r.error = "e" * 4096
        ingestor.submit(who, heavy)
        over = ingestor.overloaded
        pending_bytes = ingestor.pending_bytes
        await ingestor.flush_once()
        after = ingestor.overloaded
        ingestor.close()
        return over, after, pending_bytes

    over, after, pending_bytes = asyncio.run(scenario())
    assert over and not after
    assert pending_bytes > 100 * 4096
    assert _stored(store, "a6") == (100, 100, 100)
