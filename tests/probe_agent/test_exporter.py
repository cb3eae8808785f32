"""The exporter against a real in-process collector: spool drains exactly once, across collector
restarts, over mTLS, and adapts its batch size when the collector refuses a batch."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from collector.config import CollectorConfig, Limits
from collector.store import Store
from probe_agent.exporter import Exporter, StreamSettings
from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import CheckSpec
from tests.collector.stream_kit import Pki, insecure_config, mtls_config, result, running_collector


def _stored(store: Store, agent_id: str) -> tuple[int, int, int]:
    _, rows = store.query(
        "SELECT count(), uniqExact(seq), max(seq) FROM probe_results WHERE agent_id = {a:String}",
        {"a": agent_id},
    )
    return rows[0]  # type: ignore[return-value]


def _spool(path: Path, agent_id: str, n: int) -> Spool:
    spool = Spool(path)
    for _ in range(n):
        spool.append(result(0, agent_id=agent_id, region="it"))
    return spool


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _exporting(settings: StreamSettings, spool: Spool, configs: list[list[str]]) -> Iterator[Exporter]:  # type: ignore[misc]
    exporter = Exporter(settings, spool, lambda config: configs.append([c.id for c in config.checks]))
    task = asyncio.create_task(exporter.run())
    exporter.notify()
    try:
        yield exporter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _settings(address: str, agent_id: str, **kw: object) -> StreamSettings:
    return StreamSettings(
        collector=address, agent_id=agent_id, region="it", capabilities=("http",), insecure=True, **kw
    )  # type: ignore[arg-type]


def test_spool_drains_once_and_central_config_arrives(tmp_path: Path, store: Store) -> None:
    spool = _spool(tmp_path, "ex-1", 1200)
    configs: list[list[str]] = []
    check = CheckSpec(id="shop", probe="http", target="https://shop.test/")

    async def scenario() -> None:
        async with (
            running_collector(store, insecure_config(checks=(check,))) as col,
            _exporting(_settings(col.address, "ex-1"), spool, configs),
        ):
            await _until(lambda: spool.depth == 0)

    asyncio.run(scenario())
    assert _stored(store, "ex-1") == (1200, 1200, 1200)
    assert configs == [["shop"]]
    spool.close()


def test_collector_restart_resends_only_what_was_not_acknowledged(tmp_path: Path, store: Store) -> None:
    spool = _spool(tmp_path, "ex-2", 300)

    async def scenario() -> None:
        async with running_collector(store, insecure_config()) as col:
            port = col.port
            async with _exporting(_settings(col.address, "ex-2"), spool, []) as exporter:
                await _until(lambda: spool.depth == 0)
                sessions = exporter.sessions
                await col_stop(col)
                for _ in range(300):
                    spool.append(result(0, agent_id="ex-2", region="it"))
                exporter.notify()
                await asyncio.sleep(0.3)
                async with running_collector(store, CollectorConfig(insecure=True), port=port):
                    await _until(lambda: spool.depth == 0)
                assert exporter.sessions > sessions

    asyncio.run(scenario())
    assert _stored(store, "ex-2") == (600, 600, 600)
    spool.close()


def test_mtls_identity_and_batch_size_follows_the_collector_limit(tmp_path: Path, store: Store) -> None:
    pki = Pki.create(tmp_path / "pki")
    issued = pki.agent("it", "ex-3")
    spool = _spool(tmp_path / "spool", "ex-3", 700)

    async def scenario() -> int:
        async with running_collector(store, mtls_config(pki), Limits(max_batch_results=100)) as col:
            settings = StreamSettings(
                collector=f"localhost:{col.port}",
                agent_id="ex-3",
                region="it",
                capabilities=("http",),
                ca_file=str(pki.dir / "ca.pem"),
                cert_file=str(issued.cert),
                key_file=str(issued.key),
            )
            async with _exporting(settings, spool, []) as exporter:
                await _until(lambda: spool.depth == 0)
                return exporter._batch_size

    assert asyncio.run(scenario()) <= 100
    assert _stored(store, "ex-3") == (700, 700, 700)
    spool.close()


async def col_stop(col: object) -> None:
    await col.server.stop(0)  # type: ignore[attr-defined]


def test_batches_stay_under_the_message_size_the_collector_states(tmp_path: Path, store: Store) -> None:
    """Large results (300 KB each, as a capped page result can be) go out in batches under half
    the collector's stated max_message_bytes: no batch is ever refused for its size."""
    spool = Spool(tmp_path / "spool")
    for _ in range(12):
        big = result(0, agent_id="ex-big", region="it")
        big.error = "e" * 300_000
        spool.append(big)

    async def scenario() -> tuple[int, dict[str, int], dict[str, int]]:
        limits = Limits(max_message_bytes=1 << 20)
        async with running_collector(store, insecure_config(), limits) as col:
            exporting = _exporting(_settings(col.address, "ex-big"), spool, [])
            async with exporting as exporter:
                await _until(lambda: spool.depth == 0)
                service = col.service
                return exporter._batch_size, dict(service.refused_streams), dict(service.validator.counts)

    batch_size, refused, counts = asyncio.run(scenario())
    assert refused == {} and "message_too_large" not in counts
    assert batch_size == 500  # never halved by a refusal
    assert _stored(store, "ex-big") == (12, 12, 12)
    spool.close()


def test_spool_reads_stop_before_the_byte_budget_but_always_return_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for size in (100, 100, 5_000, 100):
        r = result(0, agent_id="a", region="it")
        r.error = "e" * size
        spool.append(r)
    assert [len(r.error) for r in spool.read_after(0, 10, 400)] == [100, 100]
    assert [len(r.error) for r in spool.read_after(2, 10, 400)] == [5_000]  # alone over budget
    assert len(spool.read_after(0, 10)) == 4
    assert len(spool.read_after(0, 3, 1 << 20)) == 3
    spool.close()
