"""Hot reload: a changed or SIGHUP'd config file reaches connected agents; a bad one is refused."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc
import pytest
import yaml

from collector.app import Collector
from collector.config import load_config
from collector.reload import watch_config
from collector.store import Store
from collector.web import ApiState
from probenet.v1 import stream_pb2, stream_pb2_grpc
from tests.collector.stream_kit import batch, hello, insecure_config, result, running_collector


def _write(path: Path, checks: list[dict[str, object]], **extra: object) -> None:
    path.write_text(yaml.safe_dump({"insecure": True, "checks": checks, **extra}))
    # mtime granularity: make every rewrite visible to the poller.
    stamp = path.stat().st_mtime_ns + 1_000_000_000 * (1 + len(checks))
    os.utime(path, ns=(stamp, stamp))


def _check(check_id: str, regions: list[str] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "id": check_id,
        "probe": "http",
        "target": f"https://{check_id}.test/",
        "interval": "5s",
    }
    if regions:
        spec["regions"] = regions
    return spec


async def _next_config(call: grpc.aio.StreamStreamCall) -> stream_pb2.CheckConfig:  # type: ignore[type-arg]
    for _ in range(20):
        reply = await asyncio.wait_for(call.read(), 10)
        assert reply is not grpc.aio.EOF
        if reply.WhichOneof("msg") == "config":
            return reply.config
    raise AssertionError("no config message")


def test_agents_get_new_checks_on_change_and_on_sighup_and_bad_files_are_refused(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "collector.yaml"
    _write(path, [_check("shop")])

    async def scenario() -> list[list[str]]:
        config = load_config(path)
        async with running_collector(store, config) as col:
            ingestor = col.ingestor
            collector = Collector(config, store, ingestor, col.service, ApiState(store))
            col.holder["config"] = config
            # The service reads its config through the Collector from now on, as in serve().
            col.service._config = lambda: collector.config
            watcher = asyncio.create_task(
                watch_config(collector.current_config, collector.apply_config, 0.05)
            )
            seen: list[list[str]] = []
            async with grpc.aio.insecure_channel(col.address) as channel:
                call = stream_pb2_grpc.CollectorStub(channel).Stream()
                await call.write(hello("it-1", "it"))
                seen.append([c.id for c in (await _next_config(call)).checks])
                _write(path, [_check("shop"), _check("video", ["it"]), _check("blog", ["fr"])])
                seen.append([c.id for c in (await _next_config(call)).checks])
                with caplog.at_level(logging.ERROR):
                    _write(path, [_check("shop"), {"id": "broken", "probe": "smtp", "target": "x"}])
                    for _ in range(100):
                        if "config reload refused" in caplog.text:
                            break
                        await asyncio.sleep(0.05)
                assert [c.id for c in collector.config.checks] == ["shop", "video", "blog"]
                # Write without changing mtime, then SIGHUP: the signal alone triggers the reload.
                stamp = path.stat().st_mtime_ns
                path.write_text(yaml.safe_dump({"insecure": True, "checks": [_check("api")]}))
                os.utime(path, ns=(stamp, stamp))
                os.kill(os.getpid(), signal.SIGHUP)
                seen.append([c.id for c in (await _next_config(call)).checks])
                call.cancel()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            return seen

    seen = asyncio.run(scenario())
    assert seen == [["shop"], ["shop", "video"], ["api"]]
    assert f"file={path} key=checks[1].probe reason=unknown probe 'smtp'" in caplog.text


def test_limits_changes_apply_and_every_hello_gets_the_config_empty_included(
    tmp_path: Path, store: Store
) -> None:
    """Issue 11: `limits:` reloaded but not applied; an empty central config was never sent."""
    path = tmp_path / "collector.yaml"
    _write(path, [_check("shop")])

    async def scenario() -> tuple[list[str], list[str], int, grpc.StatusCode | None]:
        config = load_config(path)
        async with running_collector(store, config) as col:
            collector = Collector(config, store, col.ingestor, col.service, ApiState(store))
            col.service._config = lambda: collector.config
            watcher = asyncio.create_task(
                watch_config(collector.current_config, collector.apply_config, 0.05)
            )
            async with grpc.aio.insecure_channel(col.address) as channel:
                connected = stream_pb2_grpc.CollectorStub(channel).Stream()
                await connected.write(hello("it-7", "it"))
                before = [c.id for c in (await _next_config(connected)).checks]
                # Every central check removed, and a tighter batch limit.
                _write(path, [], limits={"max_batch_results": 3})
                after = [c.id for c in (await _next_config(connected)).checks]
                connected.cancel()
                # A new stream: its hello gets the (empty) config and the new limit, which applies.
                call = stream_pb2_grpc.CollectorStub(channel).Stream()
                await call.write(hello("it-8", "it"))
                first = await asyncio.wait_for(call.read(), 10)
                empty = await _next_config(call)
                assert empty.version and not empty.checks and not empty.use_local_checks
                await call.write(batch([result(s) for s in range(1, 5)]))
                code = None
                try:
                    while await asyncio.wait_for(call.read(), 10) is not grpc.aio.EOF:
                        pass
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            return before, after, first.ack.max_batch_results, code

    before, after, max_batch, code = asyncio.run(scenario())
    assert before == ["shop"]
    assert after == []
    assert max_batch == 3
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_collector_without_a_checks_key_tells_every_hello_to_use_local_checks(store: Store) -> None:
    async def scenario() -> stream_pb2.CheckConfig:
        async with (
            running_collector(store, insecure_config()) as col,
            grpc.aio.insecure_channel(col.address) as channel,
        ):
            call = stream_pb2_grpc.CollectorStub(channel).Stream()
            await call.write(hello("it-9", "it"))
            config = await _next_config(call)
            call.cancel()
            return config

    config = asyncio.run(scenario())
    assert config.use_local_checks and list(config.checks) == []
