"""Agent metrics: recorded from real probe results, scraped over HTTP from a running agent."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probe_agent.metrics import AgentMetrics, LiveSources
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.e2e.procs import Collector, free_port, start_agent, stopped_on_exit, wait_until
from tests.web import serving


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_results_are_counted_by_type_result_and_class() -> None:
    state = {"depth": 7, "dropped": 2, "connected": False}
    metrics = AgentMetrics(
        LiveSources(lambda: state["depth"], lambda: state["dropped"], lambda: state["connected"], lambda: 3)
    )
    ok = ProbeResult(probe="http", outcome=Outcome.OUTCOME_SUCCESS)
    ok.timings.dns_ms, ok.timings.ttfb_ms, ok.timings.total_ms = 3.0, 40.0, 60.0
    refused = ProbeResult(probe="tls", outcome=Outcome.OUTCOME_FAILED, failure_class=FailureClass.TCP_REFUSED)
    refused.timings.total_ms = 1.0
    for result in (ok, ok, refused):
        metrics.observe(result)
    from prometheus_client import generate_latest

    samples = _samples(generate_latest(metrics.registry).decode())
    ok_key = (
        "probenet_agent_probes_total",
        (("failure_class", ""), ("probe", "http"), ("result", "success")),
    )
    assert samples[ok_key] == 2
    refused_labels = (("failure_class", "tcp_refused"), ("probe", "tls"), ("result", "failed"))
    assert samples[("probenet_agent_probes_total", refused_labels)] == 1
    ttfb = ("probenet_agent_probe_phase_duration_seconds_sum", (("phase", "ttfb"), ("probe", "http")))
    assert samples[ttfb] == pytest.approx(0.08)
    # A phase that did not happen (no TLS on this probe) is not observed as zero.
    assert (
        "probenet_agent_probe_phase_duration_seconds_count",
        (("phase", "tls"), ("probe", "http")),
    ) not in samples
    assert samples[("probenet_agent_spool_depth", ())] == 7
    assert samples[("probenet_agent_dropped_results_total", ())] == 2
    assert samples[("probenet_agent_stream_connected", ())] == 0
    state["connected"] = True
    assert _samples(generate_latest(metrics.registry).decode())[("probenet_agent_stream_connected", ())] == 1


@pytest.fixture
def target() -> Iterator[int]:
    with serving(lambda path: (200, b"ok\n", "")) as port:
        yield port


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return _samples(response.read().decode())
    except OSError:
        return {}


@pytest.mark.e2e
def test_a_running_agent_serves_metrics_on_metrics_listen(tmp_path: Path, target: int) -> None:
    collector = Collector(tmp_path).start()
    port = free_port()
    checks = [
        {
            "id": "web",
            "probe": "http",
            "target": f"http://127.0.0.1:{target}/",
            "interval": "300ms",
            "timeout": "300ms",
        },
        {
            "id": "closed",
            "probe": "http",
            "target": f"http://127.0.0.1:{free_port()}/",
            "interval": "300ms",
            "timeout": "300ms",
        },
    ]
    agent = start_agent(tmp_path, "it-1", "it", collector.address, checks, metrics_listen=f"127.0.0.1:{port}")
    with stopped_on_exit(collector, agent):
        ok = (
            "probenet_agent_probes_total",
            (("failure_class", ""), ("probe", "http"), ("result", "success")),
        )
        refused = (
            "probenet_agent_probes_total",
            (("failure_class", "tcp_refused"), ("probe", "http"), ("result", "failed")),
        )
        samples = wait_until(
            lambda: (
                (s := _scrape(port)).get(ok, 0) >= 2
                and s.get(refused, 0) >= 2
                and s.get(("probenet_agent_stream_connected", ())) == 1
                and s
            ),
            30,
            f"agent metrics on {port}; agent log:\n{agent.output()}",
        )
        connect = (
            "probenet_agent_probe_phase_duration_seconds_count",
            (("phase", "connect"), ("probe", "http")),
        )
        assert samples[connect] >= 2
        assert ("probenet_agent_spool_depth", ()) in samples
        assert samples[("probenet_agent_dropped_results_total", ())] == 0
        assert samples[("probenet_agent_stream_sessions_total", ())] >= 1
        assert agent.stop() == 0, agent.output()
        assert collector.stop() == 0


def test_spool_disk_condition_is_exported(tmp_path: Path) -> None:
    """A full spool disk is visible in /metrics, not only in the log (issue 11 item 4)."""
    from prometheus_client import generate_latest

    from probe_agent.spool import Spool

    spool = Spool(tmp_path, max_results=10, max_bytes=1 << 20)
    for i in range(5):
        spool.append(ProbeResult(check_id=f"c{i}"))
    metrics = AgentMetrics(
        LiveSources(lambda: spool.depth, lambda: spool.dropped, lambda: False, lambda: 0, spool=spool)
    )
    samples = _samples(generate_latest(metrics.registry).decode())
    assert samples[("probenet_agent_spool_bytes", ())] == spool.file_bytes > 0
    assert samples[("probenet_agent_spool_full", ())] == 0
    assert samples[("probenet_agent_spool_write_errors_total", ())] == 0
    assert samples[("probenet_agent_spool_resets_total", ())] == 0
    spool._mark_full()
    assert _samples(generate_latest(metrics.registry).decode())[("probenet_agent_spool_full", ())] == 1
    spool.close()
