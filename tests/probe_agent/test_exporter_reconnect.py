"""Reconnect backoff over a real gRPC stream: a collector that ends a stream it accepted (its
graceful stop, a restart on the way) is dialled again from the minimum backoff every time, while
a collector that cannot be reached at all is backed off exponentially."""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from pathlib import Path
from typing import Any

import pytest

from probe_agent import exporter as exporter_module
from probe_agent.exporter import MIN_BACKOFF_S, Exporter, StreamSettings
from probe_agent.spool import Spool
from tests.e2e.procs import free_port
from tests.probe_agent.fake_collector import Session, fake_collector

SESSIONS = 5


def _recording_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the exporter sleeps for (recorded, then slept as 0 s so the test is quick)."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        delays.append(delay)
        return await real_sleep(0, result)

    proxy = types.SimpleNamespace(
        **{name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("_")}
    )
    proxy.sleep = sleep
    monkeypatch.setattr(exporter_module, "asyncio", proxy)
    return delays


async def _graceful_end(session: Session) -> None:
    await session.ack(0)  # welcomed...
    # ...then the stream ends cleanly, as a stopping collector ends it


def _exporter(tmp_path: Path, address: str) -> tuple[Exporter, Spool]:
    spool = Spool(tmp_path / "spool")
    settings = StreamSettings(
        collector=address, agent_id="rc-1", region="it", capabilities=("http",), insecure=True
    )
    return Exporter(settings, spool, lambda config: None), spool


def test_a_graceful_end_reconnects_from_the_minimum_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays = _recording_sleeps(monkeypatch)

    async def scenario() -> None:
        async with fake_collector([_graceful_end] * SESSIONS) as (fake, address):
            exporter, spool = _exporter(tmp_path, address)
            task = asyncio.create_task(exporter.run())
            deadline = time.monotonic() + 30
            while len(fake.sessions) < SESSIONS:  # the last one is held open by the fake
                assert time.monotonic() < deadline, "sessions did not follow each other"
                await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            spool.close()

    asyncio.run(scenario())
    reconnects = delays[: SESSIONS - 1]
    assert len(reconnects) == SESSIONS - 1 and all(d <= MIN_BACKOFF_S for d in reconnects), delays


def test_an_unreachable_collector_is_backed_off_exponentially(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays = _recording_sleeps(monkeypatch)

    async def scenario() -> None:
        exporter, spool = _exporter(tmp_path, f"127.0.0.1:{free_port()}")
        task = asyncio.create_task(exporter.run())
        deadline = time.monotonic() + 30
        while len(delays) < SESSIONS:
            assert time.monotonic() < deadline, "no reconnect attempts"
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        spool.close()

    asyncio.run(scenario())
    # Jittered in [0.5, 1] x the backoff, which doubles: the fifth wait is at least 4 s.
    assert delays[SESSIONS - 1] >= MIN_BACKOFF_S * 2 ** (SESSIONS - 1) * 0.5, delays
