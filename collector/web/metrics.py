"""Prometheus metrics of a running collector, served at /metrics on the API.

Most values already live as plain counters on the ingestor, the stream service and the verdict
engine; they are read at scrape time by a custom collector instead of being mirrored by
instrument calls in those modules. The two histograms (rows per insert, insert latency) need
every insert, so the ingestor's insert step is wrapped once on this collector's instance.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from collector.config import MetricsConfig
from collector.web.base import STATE_KEY, error
from collector.web.status_cache import open_events_of
from collector.web.verdict_metrics import verdict_families

if TYPE_CHECKING:
    from collector.ingest import CollectorService, Ingestor
    from collector.verdicts import Evaluator

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 10, 50, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RATE_WINDOW_S = 10.0
SCOPES = ("global", "regional", "undetermined")


class CollectorMetrics:
    """One registry per running collector (tests run several in one process)."""

    def __init__(
        self,
        ingestor: Ingestor,
        service: CollectorService,
        evaluator: Evaluator | None = None,
        max_check_series: Callable[[], int] = lambda: MetricsConfig.max_check_series,
    ) -> None:
        self.ingestor = ingestor
        self.service = service
        self.evaluator = evaluator
        self.max_check_series = max_check_series
        self.registry = CollectorRegistry(auto_describe=True)
        self.batch_rows = Histogram(
            "probenet_ingest_batch_rows",
            "Rows per insert into probe_results.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.insert_seconds = Histogram(
            "probenet_ingest_insert_duration_seconds",
            "Time the store took to accept one insert.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "probenet_evaluation_tick_duration_seconds",
            "Time one verdict evaluation tick took.",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self._caught_up: dict[tuple[str, str], float] = {}
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)
        self.registry.register(_LiveValues(self))
        ingestor.on_insert = self._observe_insert

    def _observe_insert(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.insert_seconds.observe(seconds)

    def open_events_by_scope(self) -> dict[str, int]:
        if self.evaluator is None:
            return {}
        return dict(Counter(event.scope for event in open_events_of(self.evaluator)))

    def rows_per_second(self, now: float) -> float:
        rows = self.ingestor.rows_committed
        self._samples.append((now, rows))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        first_t, first_rows = self._samples[0]
        return (rows - first_rows) / (now - first_t) if now - first_t > 0 else 0.0

    def ack_lag(self, now: float) -> dict[tuple[str, str], tuple[int, float]]:
        """Per agent (region, agent id): results received but not yet acknowledged, and for how
        long there were some."""
        ingestor = self.ingestor
        lags: dict[tuple[str, str], tuple[int, float]] = {}
        for who, committed in list(ingestor.committed.items()):
            behind = max(0, ingestor.submitted_mark(who) - committed)
            if behind == 0:
                self._caught_up[who] = now
            lags[who] = (behind, now - self._caught_up.setdefault(who, now))
        return lags


class _LiveValues(PromCollector):
    """Values read from the running collector at scrape time."""

    def __init__(self, metrics: CollectorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        ingestor = m.ingestor
        now = time.monotonic()
        yield _counter("probenet_ingest_rows", "Result rows committed to the store.", ingestor.rows_committed)
        yield _counter("probenet_ingest_inserts", "Inserts committed to the store.", ingestor.inserts)
        yield _counter(
            "probenet_ingest_duplicates_dropped",
            "Replayed results dropped before insert.",
            ingestor.duplicates_dropped,
        )
        yield _gauge(
            "probenet_ingest_rows_per_second",
            "Rows committed per second over the last ~10 s.",
            m.rows_per_second(now),
        )
        yield _gauge(
            "probenet_ingest_pending_rows", "Rows received and not yet committed.", ingestor.pending_rows
        )
        yield _gauge(
            "probenet_ingest_pending_bytes",
            "Encoded size of the results received and not yet committed.",
            ingestor.pending_bytes,
        )
        yield _gauge(
            "probenet_ingest_stalled_seconds",
            "How long pending rows have not moved, once ingest counts as stuck (else 0).",
            ingestor.stalled(now),
        )
        yield _gauge("probenet_store_up", "1 if the last insert succeeded.", int(ingestor.store_ok))
        yield _gauge("probenet_agents_connected", "Agents with an open stream.", len(m.service.streams))
        yield _counter(
            "probenet_tls_handshakes",
            "TLS handshakes begun on the agents' port (minus connections: the refused ones).",
            m.service.tls_handshakes,
        )
        yield _counter(
            "probenet_agent_connections",
            "Agent connections that opened a stream (so passed the TLS handshake, if any).",
            m.service.connections,
        )
        lag_results = GaugeMetricFamily(
            "probenet_agent_ack_lag_results",
            "Results received from the agent and not yet acknowledged.",
            labels=["region", "agent_id"],
        )
        lag_seconds = GaugeMetricFamily(
            "probenet_agent_ack_lag_seconds",
            "Time the agent has had unacknowledged results.",
            labels=["region", "agent_id"],
        )
        for who, (behind, seconds) in sorted(m.ack_lag(now).items()):
            lag_results.add_metric(list(who), behind)
            lag_seconds.add_metric(list(who), seconds)
        yield lag_results
        yield lag_seconds
        yield _open_events(m)
        yield _validation(m)
        evaluator = m.evaluator
        if evaluator is not None:
            yield _counter(
                "probenet_evaluation_ticks",
                "Verdict evaluation ticks completed.",
                getattr(evaluator, "ticks", 0),
            )
            yield from verdict_families(evaluator.latest, m.max_check_series())


def _open_events(m: CollectorMetrics) -> Metric:
    family = GaugeMetricFamily("probenet_open_events", "Open outage events by scope.", labels=["scope"])
    counts: dict[str, int] = {}
    try:
        counts = m.open_events_by_scope()
    except Exception:
        # A scrape must not fail because one source did.
        log.debug("open events not available", exc_info=True)
    for scope in sorted(set(SCOPES) | set(counts)):
        family.add_metric([scope], counts.get(scope, 0))
    return family


def _validation(m: CollectorMetrics) -> Metric:
    """What the validator refused, clamped or throttled, and streams refused outright."""
    family = CounterMetricFamily(
        "probenet_ingest_rejected",
        "Results or streams refused, clamped or throttled, by reason.",
        labels=["reason"],
    )
    service = m.service
    for reason, count in sorted(service.validator.counts.items()):
        family.add_metric([reason], count)
    for code, count in sorted(service.refused_streams.items()):
        family.add_metric([f"stream_{code.lower()}"], count)
    return family


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.registry is None:
        return error(503, "metrics are not set up")
    body = generate_latest(state.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
