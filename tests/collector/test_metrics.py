"""Collector metrics on /metrics, scraped from a real collector fed through the agents' stream."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.collector.feed import FakeAgent, feed, regional_outage
from tests.e2e.procs import Collector, stopped_on_exit, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CHECKS = [
    {"id": c, "probe": "http", "target": f"https://{c}.test/", "interval": "60s"}
    for c in ("shop", "api", "assets")
]


def scrape(api: str) -> Samples:
    with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    running = Collector(tmp_path_factory.mktemp("metrics"), extra={"checks": CHECKS, "evaluate_every": "1s"})
    running.start()
    with stopped_on_exit(running):
        # One feed (one event loop) for everything: grpc.aio binds to the first loop it sees.
        now = time.time()
        feed(running.address, *regional_outage(now, minutes=3, step=20), refused_only_agent(now))
        yield running
        assert running.stop() == 0, running.proc.output() if running.proc else ""


def test_ingest_counters_and_histograms(collector: Collector) -> None:
    samples = scrape(collector.api)
    rows = samples[("probenet_ingest_rows_total", ())]
    assert rows == 6 * 9 * 3  # 6 agents, 9 rounds, 3 checks
    assert samples[("probenet_ingest_inserts_total", ())] >= 1
    assert samples[("probenet_ingest_batch_rows_sum", ())] == rows
    assert samples[("probenet_ingest_batch_rows_count", ())] == samples[("probenet_ingest_inserts_total", ())]
    assert samples[("probenet_ingest_insert_duration_seconds_count", ())] >= 1
    assert samples[("probenet_ingest_insert_duration_seconds_sum", ())] > 0
    assert samples[("probenet_ingest_pending_rows", ())] == 0
    assert samples[("probenet_store_up", ())] == 1
    assert ("probenet_ingest_rows_per_second", ()) in samples
    # Every agent was acknowledged up to its last result.
    for agent in ("de-1", "fr-2", "it-1"):
        labels = (("agent_id", agent), ("region", agent[:2]))
        assert samples[("probenet_agent_ack_lag_results", labels)] == 0
        assert ("probenet_agent_ack_lag_seconds", labels) in samples


def test_open_events_by_scope_and_evaluation_ticks(collector: Collector) -> None:
    def regional_open() -> Samples | None:
        samples = scrape(collector.api)
        ticks = samples.get(("probenet_evaluation_tick_duration_seconds_count", ()), 0)
        regional = samples.get(("probenet_open_events", (("scope", "regional"),)), 0)
        return samples if ticks >= 1 and regional >= 1 else None

    samples = wait_until(regional_open, 30, "an open regional event and a timed evaluation tick")
    assert samples[("probenet_open_events", (("scope", "regional"),))] == 1  # shop, in it
    assert samples[("probenet_open_events", (("scope", "global"),))] == 1  # assets, partial everywhere
    assert samples[("probenet_open_events", (("scope", "undetermined"),))] == 0
    assert samples[("probenet_evaluation_tick_duration_seconds_sum", ())] > 0
    assert samples[("probenet_evaluation_ticks_total", ())] >= 1


def refused_only_agent(now: float) -> FakeAgent:
    """Results the collector must refuse (and count) without storing any row."""
    agent = FakeAgent("us-9", "us")
    agent.add("shop", now).check_id = ""
    agent.add("shop", now - 90 * 86_400)
    return agent


def test_refused_results_are_counted_by_reason(collector: Collector) -> None:
    samples = scrape(collector.api)
    assert samples[("probenet_ingest_rejected_total", (("reason", "refused_empty_check_id"),))] == 1
    assert samples[("probenet_ingest_rejected_total", (("reason", "refused_too_old"),))] == 1
