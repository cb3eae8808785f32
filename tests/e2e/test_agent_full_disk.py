"""A real agent process whose spool sits on a nearly full 2 MiB tmpfs mounted by the test keeps
probing, drops and counts its oldest results, says so in its log and in /metrics, and stops
cleanly (issue 11 item 4: before, every check task died on its first failed write, silently)."""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SMALL_DISK_BYTES as VOLUME
from tests.e2e.procs import free_port, start_agent, stopped_on_exit, wait_until


def _scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


@pytest.mark.e2e
def test_agent_on_a_full_disk_keeps_probing_and_says_so(tmp_path: Path, small_disk: Path) -> None:
    # Someone else took most of the volume: ~350 KB are left for the spool.
    with (small_disk / "filler").open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, VOLUME - (350 << 10))
    closed = free_port()
    checks = [
        {
            "id": f"c{i}",
            "probe": "http",
            "target": f"http://127.0.0.1:{closed}/{'p' * 300}",
            "interval": "100ms",
            "timeout": "100ms",
        }
        for i in range(10)
    ]
    port = free_port()
    agent = start_agent(
        tmp_path,
        "full-1",
        "it",
        f"127.0.0.1:{free_port()}",  # no collector: everything stays in the spool
        checks,
        spool={"dir": str(small_disk / "spool")},
        metrics_listen=f"127.0.0.1:{port}",
    )
    with stopped_on_exit(agent):
        full = wait_until(
            lambda: (m := _scrape(port)) and m.get("probenet_agent_spool_full") == 1 and m,
            90,
            "the spool to report full",
        )
        assert full["probenet_agent_dropped_results_total"] > 0
        later = wait_until(
            lambda: (
                (m := _scrape(port))
                and m.get("probenet_agent_probes_total", 0) > full["probenet_agent_probes_total"] + 100
                and m
            ),
            60,
            "probes to go on after the disk filled",
        )
        assert later["probenet_agent_dropped_results_total"] > full["probenet_agent_dropped_results_total"]
        assert later["probenet_agent_spool_write_errors_total"] == 0
        assert later["probenet_agent_spool_bytes"] <= 350 << 10
        with contextlib.suppress(OSError):
            (small_disk / "filler").unlink()
        assert agent.stop(signal.SIGTERM) == 0
    log = agent.output()
    assert "is full" in log and "dropping the" in log
    assert "Traceback" not in log
    print(
        f"\nfull-disk agent: {later['probenet_agent_probes_total']:.0f} probes, "
        f"{later['probenet_agent_dropped_results_total']:.0f} dropped, spool {later['probenet_agent_spool_bytes']:.0f} bytes"
    )
