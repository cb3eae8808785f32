"""Scheduler: cadence, bounded concurrency, hard deadline, hot swap of checks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.context import ProbeContext
from probe_agent.scheduler import Scheduler
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

STATE = {"running": 0, "peak": 0}


async def _slow_probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    STATE["running"] += 1
    STATE["peak"] = max(STATE["peak"], STATE["running"])
    try:
        await asyncio.sleep(0.05 if spec.target != "hang" else 3600)
    finally:
        STATE["running"] -= 1


@pytest.fixture(autouse=True)
def test_probe() -> Iterator[None]:
    PROBE_TYPES["test"] = _slow_probe
    STATE.update(running=0, peak=0)
    yield
    del PROBE_TYPES["test"]


def spec(check_id: str, interval_ms: int = 100, timeout_ms: int = 80, target: str = "t") -> CheckSpec:
    s = CheckSpec(id=check_id, probe="test", target=target)
    s.interval.FromMilliseconds(interval_ms)
    s.timeout.FromMilliseconds(timeout_ms)
    return s


async def run_for(scheduler: Scheduler, checks: list[CheckSpec], seconds: float) -> None:
    scheduler.set_checks(checks)
    await asyncio.sleep(seconds)
    await scheduler.stop()


def test_each_check_runs_once_per_interval() -> None:
    results: list[ProbeResult] = []
    scheduler_box: list[Scheduler] = []

    async def main() -> None:
        scheduler = Scheduler(ProbeContext(), results.append, rng=random.Random(1))
        scheduler_box.append(scheduler)
        await run_for(scheduler, [spec("a"), spec("b", interval_ms=200)], 1.05)

    asyncio.run(main())
    counts = {cid: sum(r.check_id == cid for r in results) for cid in ("a", "b")}
    # ~10 and ~5 slots in 1 s; the first run is spread over the first interval.
    assert 7 <= counts["a"] <= 11, counts
    assert 3 <= counts["b"] <= 6, counts
    assert all(r.outcome == Outcome.OUTCOME_SUCCESS for r in results)


def test_concurrency_is_bounded() -> None:
    async def main() -> None:
        scheduler = Scheduler(ProbeContext(), lambda r: None, max_concurrency=2)
        await run_for(scheduler, [spec(f"c{i}", interval_ms=60, timeout_ms=60) for i in range(10)], 0.5)

    asyncio.run(main())
    assert STATE["peak"] == 2


def test_a_hanging_probe_ends_at_its_deadline_as_a_timeout() -> None:
    results: list[ProbeResult] = []

    async def main() -> None:
        scheduler = Scheduler(ProbeContext(), results.append)
        await run_for(scheduler, [spec("h", interval_ms=200, timeout_ms=100, target="hang")], 0.7)

    asyncio.run(main())
    assert results, "no result from a hanging probe"
    for result in results:
        assert result.outcome == Outcome.OUTCOME_FAILED
        assert result.failure_class == FailureClass.TIMEOUT
        assert 90 <= result.timings.total_ms < 1000


def test_set_checks_keeps_unchanged_restarts_changed_and_stops_removed() -> None:
    results: list[ProbeResult] = []

    async def main() -> None:
        scheduler = Scheduler(ProbeContext(), results.append)
        scheduler.set_checks([spec("keep"), spec("drop"), spec("change")])
        await asyncio.sleep(0.05)
        tasks = dict(scheduler._tasks)
        scheduler.set_checks([spec("keep"), spec("change", interval_ms=150), spec("new")])
        assert scheduler.check_ids == ["change", "keep", "new"]
        assert scheduler._tasks["keep"][1] is tasks["keep"][1]
        assert scheduler._tasks["change"][1] is not tasks["change"][1]
        await asyncio.sleep(0)
        assert tasks["drop"][1].cancelled() or tasks["drop"][1].done()
        results.clear()
        await asyncio.sleep(0.4)
        await scheduler.stop()

    asyncio.run(main())
    assert "drop" not in {r.check_id for r in results}
    assert {"keep", "change", "new"} <= {r.check_id for r in results}


def test_unknown_probe_types_are_not_scheduled() -> None:
    async def main() -> list[str]:
        scheduler = Scheduler(ProbeContext(), lambda r: None)
        other = spec("x")
        other.probe = "smtp"
        scheduler.set_checks([other, spec("y")])
        ids = scheduler.check_ids
        await scheduler.stop()
        return ids

    assert asyncio.run(main()) == ["y"]


def test_a_failing_sink_never_stops_a_check(caplog: pytest.LogCaptureFixture) -> None:
    """A spool write that raises must not kill the check's task (issue 11 item 4)."""
    calls: list[ProbeResult] = []
    enough = asyncio.Event()

    def broken(result: ProbeResult) -> None:
        calls.append(result)
        if len(calls) >= 4:
            enough.set()
        raise OSError(28, "No space left on device")

    async def scenario() -> Scheduler:
        scheduler = Scheduler(ProbeContext(), broken, rng=random.Random(1))
        scheduler.set_checks([spec("a", interval_ms=50, timeout_ms=40)])
        await asyncio.wait_for(enough.wait(), 30)
        await scheduler.stop()
        return scheduler

    scheduler = asyncio.run(scenario())
    assert len(calls) >= 4 and scheduler.sink_errors == len(calls)
    lines = [r for r in caplog.records if "could not be stored" in r.getMessage()]
    assert len(lines) == 1  # rate-limited
    assert "No space left on device" in caplog.text


@pytest.mark.parametrize(
    ("phase", "first", "second"), [(0.25, 52.2, 54.7), (0.01, 59.8, 52.3), (0.0, 59.7, 52.2)]
)
def test_a_fixed_phase_puts_the_first_slot_at_that_share_of_the_wall_clock_interval(
    monkeypatch: pytest.MonkeyPatch, phase: float, first: float, second: float
) -> None:
    """Wall clock 1000.3 s, monotonic 50 s, interval 10 s: the slot is the next 1000 + k*10 +
    phase*10 (so agents given different phases probe at fixed, different points of the interval)."""
    monkeypatch.setattr("probe_agent.scheduler.time.time", lambda: 1000.3)
    monkeypatch.setattr("probe_agent.scheduler.time.monotonic", lambda: 50.0)
    scheduler = Scheduler(ProbeContext(), lambda r: None, phase=phase)
    assert scheduler._first_slot(10.0) == pytest.approx(first)
    # The agent's second of four checks takes its turn a quarter of the interval later.
    assert scheduler._first_slot(10.0, 0.25) == pytest.approx(second)
