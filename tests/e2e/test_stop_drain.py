"""Stops as Kubernetes does them, with real processes: an agent run as a StatefulSet pod runs it
(same id, same spool directory, SIGTERM with a grace period, restart), and a loaded collector
stopped and started over and over. Each ends with SQL proving every result arrived exactly once."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.procs import (
    Collector,
    Proc,
    refused_checks,
    spool_state,
    start_agent,
    stopped_on_exit,
    stored_seqs,
    wait_until,
)

pytestmark = pytest.mark.e2e

# The pod name a StatefulSet gives the first agent of region "it": the chart's agent id.
POD = "pn-probenet-agent-it-0"
GRACE_S = 6.0
# Room on top of a grace for the process to close down, as the chart's 5 s margin gives it.
MARGIN_S = 5.0
# The bound on a collector's graceful stop; the process wait's timeout enforces it.
COLLECTOR_STOP_S = 5.0
CYCLES = 30


def _exactly_once(collector: Collector, workdir: Path, agent_id: str) -> int:
    """The agent's spool is empty and the store holds each seq 1..last once; returns last."""
    last, depth, dropped = spool_state(workdir, agent_id)
    assert depth == 0 and dropped == 0 and last > 0
    assert stored_seqs(collector, agent_id) == {"n": last, "distinct_seqs": last, "lo": 1, "hi": last}
    return last


def _pod(workdir: Path, collector: Collector) -> Proc:
    """The agent as the StatefulSet runs it: the same id and spool directory at every start."""
    return start_agent(workdir, POD, "it", collector.address, refused_checks(), shutdown_grace=f"{GRACE_S}s")


def test_statefulset_agent_stopped_while_the_collector_is_down_loses_nothing(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    agent = _pod(tmp_path, collector)
    with stopped_on_exit(collector, agent):
        wait_until(lambda: stored_seqs(collector, POD)["n"] > 20, 60, "agent delivering")
        assert collector.stop() == 0
        wait_until(
            lambda: spool_state(tmp_path, POD)[1] > 100, 60, "agent spooling while the collector is down"
        )
        # Kubernetes' stop: SIGTERM, then SIGKILL after the grace period (the timeout here).
        assert agent.stop(signal.SIGTERM, timeout=GRACE_S + MARGIN_S) == 0
        last_at_stop, left, _ = spool_state(tmp_path, POD)
        assert left > 100, "what could not be delivered stays in the spool"
        log = agent.output()
        assert "draining" in log and f"agent stopped; {left} results left in the spool" in log

        # Rescheduled: same id, same spool; the collector comes back while it runs.
        agent = _pod(tmp_path, collector)
        wait_until(lambda: spool_state(tmp_path, POD)[0] > last_at_stop + 20, 60, "probing again")
        collector.start()
        delivered_before = stored_seqs(collector, POD)["n"]
        wait_until(lambda: stored_seqs(collector, POD)["n"] > delivered_before, 60, "replay under way")
        # Stopped again at once: the drain must deliver the rest of the backlog within the grace.
        assert agent.stop(signal.SIGTERM, timeout=GRACE_S + MARGIN_S) == 0
        last = _exactly_once(collector, tmp_path, POD)
    print(
        f"\nstatefulset agent: {last} results, each stored once; {left} waited in the spool across the stop"
    )


def _all_connected(collector: Collector, ids: tuple[str, ...]) -> bool:
    """Every agent has opened its stream to this run of the collector (its log starts afresh)."""
    log = collector.proc.output() if collector.proc else ""
    return all(f"agent {a} ({a[:2]}) connected" in log for a in ids)


# Thirty collector starts dominate (2-7 s each on a busy 2-core machine): bounded above the
# suite's 300 s default.
@pytest.mark.timeout(600)
def test_thirty_stops_of_a_loaded_collector_are_quick_clean_and_lose_nothing(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    ids = ("it-0", "fr-0", "de-0")
    agents = [
        start_agent(tmp_path, a, a[:2], collector.address, refused_checks(6), shutdown_grace="20s")
        for a in ids
    ]
    durations: list[float] = []
    errors = 0
    with stopped_on_exit(collector, *agents):
        for cycle in range(CYCLES):
            # Under load: every agent is streaming (first what it spooled while the collector was
            # down) into this run of the collector when it is stopped.
            wait_until(lambda: _all_connected(collector, ids), 60, f"cycle {cycle}: agents streaming", 0.05)
            started = time.monotonic()
            code = collector.stop(signal.SIGTERM, timeout=COLLECTOR_STOP_S)
            durations.append(time.monotonic() - started)
            assert code == 0, (
                f"cycle {cycle}: exit {code}\n{collector.proc.output() if collector.proc else ''}"
            )
            errors += len(re.findall(r" ERROR ", collector.proc.output() if collector.proc else ""))
            collector.start()
        for agent in agents:
            assert agent.stop(signal.SIGTERM, timeout=20 + MARGIN_S) == 0
        delivered = {a: _exactly_once(collector, tmp_path, a) for a in ids}
    durations.sort()
    print(
        f"\n{CYCLES} collector stops under load: min {durations[0]:.2f}s, "
        f"median {durations[len(durations) // 2]:.2f}s, max {durations[-1]:.2f}s; "
        f"ERROR lines in the collector logs: {errors}; results delivered once each: {delivered}"
    )
