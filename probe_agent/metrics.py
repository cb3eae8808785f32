"""Prometheus metrics of a running agent, served on `metrics_listen` (host:port; empty = off).

Per-result values (probes by type and result, durations by phase) are recorded as results come
out of the scheduler; the spool and the stream are read at scrape time, so those modules carry
no metrics code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from probe_agent.errors import AgentError
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

log = logging.getLogger(__name__)

PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RESULT_NAMES = {Outcome.OUTCOME_SUCCESS: "success", Outcome.OUTCOME_PARTIAL: "partial"}


def result_label(result: ProbeResult) -> str:
    return _RESULT_NAMES.get(result.outcome, "failed")


def failure_label(result: ProbeResult) -> str:
    if not result.failure_class:
        return ""
    try:
        return FailureClass.Name(result.failure_class).lower()
    except ValueError:
        return f"unknown_{result.failure_class}"


class SpoolHealth(Protocol):
    """What the spool tells about its disk (probe_agent.spool.Spool is one)."""

    @property
    def file_bytes(self) -> int: ...
    @property
    def full(self) -> bool: ...
    @property
    def write_errors(self) -> int: ...
    @property
    def resets(self) -> int: ...


@dataclass(frozen=True)
class LiveSources:
    """What is read at scrape time: spool depth, dropped results, stream state and sessions."""

    spool_depth: Callable[[], int]
    dropped_results: Callable[[], int]
    connected: Callable[[], bool]
    sessions: Callable[[], int]
    spool: SpoolHealth | None = None


class AgentMetrics:
    def __init__(self, live: LiveSources, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.probes = Counter(
            "probenet_agent_probes",
            "Probes run, by probe type, result and failure class.",
            ["probe", "result", "failure_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "probenet_agent_probe_phase_duration_seconds",
            "Probe duration by phase (dns, connect, tls, ttfb, transfer, total); phases that did not happen "
            "are not observed.",
            ["probe", "phase"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Live(live))
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def observe(self, result: ProbeResult) -> None:
        self.probes.labels(result.probe, result_label(result), failure_label(result)).inc()
        timings = result.timings
        for phase in PHASES:
            ms = getattr(timings, f"{phase}_ms")
            if ms > 0:
                self.duration.labels(result.probe, phase).observe(ms / 1000.0)

    def serve(self, listen: str) -> int:
        """Start the /metrics HTTP server on host:port in a thread; return the bound port."""
        host, _, port = listen.rpartition(":")
        try:
            self._server, self._thread = start_http_server(
                int(port), host.strip("[]") or "0.0.0.0", registry=self.registry
            )
        except (ValueError, OSError) as exc:
            raise AgentError(f"metrics_listen: cannot listen on {listen!r}: {exc}") from exc
        bound = int(self._server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host or "0.0.0.0", bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Live(PromCollector):
    def __init__(self, live: LiveSources) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        live = self._live
        yield GaugeMetricFamily(
            "probenet_agent_spool_depth",
            "Results in the spool, not yet acknowledged.",
            value=live.spool_depth(),
        )
        yield CounterMetricFamily(
            "probenet_agent_dropped_results",
            "Results lost: dropped because the spool was full, or in a spool file that was corrupt.",
            value=live.dropped_results(),
        )
        yield GaugeMetricFamily(
            "probenet_agent_stream_connected",
            "1 while the stream to the collector is up.",
            value=int(live.connected()),
        )
        yield CounterMetricFamily(
            "probenet_agent_stream_sessions", "Streams opened to the collector.", value=live.sessions()
        )
        if live.spool is not None:
            yield from _spool_metrics(live.spool)


def _spool_metrics(spool: SpoolHealth) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "probenet_agent_spool_bytes",
        "Bytes the spool occupies on disk (database, WAL, reserve).",
        value=spool.file_bytes,
    )
    yield GaugeMetricFamily(
        "probenet_agent_spool_full",
        "1 while the spool drops its oldest results for room (max_bytes reached or its disk full).",
        value=int(spool.full),
    )
    yield CounterMetricFamily(
        "probenet_agent_spool_write_errors",
        "Spool writes that failed even after freeing room (the result, if any, counted dropped).",
        value=spool.write_errors,
    )
    yield CounterMetricFamily(
        "probenet_agent_spool_resets",
        "Spool files found corrupt or empty and moved aside.",
        value=spool.resets,
    )
