"""The composition root: build the collector's parts, wire them, start each, stop gracefully.

Parts: the store, the ingestor, the gRPC stream service, the verdict evaluator and the
notifier (with the maintenance book it shares with the API), the config watcher, the HTTP
API and the hourly compaction of the slot rollup. Each gets what it uses (the store, a config
getter, callbacks), never the whole collector; nothing imports this module but the commands.

Shutdown order (like uvicorn's): stop taking new streams and stop reading the open ones,
commit what is pending (no agent adds to it any more, so it is one insert), send each stream
its last ack and end it, close the store. Under load this takes about one insert, not the
flush timeout: reading on while draining used to keep pending rows from ever reaching zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from collector.config import CollectorConfig
from collector.ingest import CollectorService, Identity, Ingestor, add_to_server
from collector.reload import watch_config
from collector.store import Store
from collector.store.history import compact_forever
from collector.store.paths import TRACE_COLUMNS, trace_rows
from collector.verdicts import Evaluator, Notifier, evaluate_forever
from collector.verdicts.events import Event
from collector.verdicts.evidence import Widening, trace_request
from collector.verdicts.maintenance import MaintenanceBook
from collector.verdicts.slo_alerts import SloAlerts
from collector.web import ApiState, CollectorMetrics, make_app
from probenet.v1.stream_pb2 import PathTrace

log = logging.getLogger(__name__)

FLUSH_ON_STOP_S = 10.0
STREAM_GRACE_S = 2.0


def split_hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class Collector:
    """A running collector's parts; the active config is swapped in place by a reload."""

    config: CollectorConfig
    store: Store
    ingestor: Ingestor
    service: CollectorService
    api_state: ApiState
    background: list[asyncio.Task[None]] = field(default_factory=list)
    grpc_port: int = 0
    api_port: int = 0

    def current_config(self) -> CollectorConfig:
        return self.config

    async def apply_config(self, config: CollectorConfig) -> None:
        """A reloaded config: active from now on, and every agent stream is told."""
        self.config = config
        await self.service.notify_config_changed()


async def serve(config: CollectorConfig, stop: asyncio.Event) -> None:
    store = Store(config.store.url, config.store.cluster, config.store.ttl_days)
    ingestor = Ingestor(
        store,
        config.store.batch_rows,
        config.store.flush_interval,
        config.store.max_pending_rows,
        config.store.max_pending_bytes,
    )
    # An unreachable store must not stop the collector: agents are held off and keep spooling.
    await ingestor.prepare()
    collector = Collector(
        config,
        store,
        ingestor,
        CollectorService(ingestor, lambda: collector.config, config.limits),
        ApiState(store, token=config.api.token, query_url=config.store.query_url),
    )
    maintenance = MaintenanceBook(store, lambda: collector.config.maintenance)
    notifier = Notifier(store, config.notify, maintenance=maintenance)
    evaluator = Evaluator(store, config.checks, float(config.evaluate_every), notifier)
    _wire_api(collector, evaluator)
    collector.api_state.maintenance = maintenance
    _wire_path_evidence(collector, evaluator)
    server = grpc.aio.server(options=collector.service.grpc_options())
    add_to_server(collector.service, server)
    if config.insecure:
        log.warning("insecure: true - agents connect in plaintext and their hello is trusted")
        collector.grpc_port = server.add_insecure_port(config.listen)
    else:
        collector.grpc_port = server.add_secure_port(
            config.listen, collector.service.server_credentials(config.tls)
        )
    runner = web.AppRunner(make_app(collector.api_state), access_log=None)
    await runner.setup()
    api_host, api_port = split_hostport(config.api.listen)
    site = web.TCPSite(runner, api_host, api_port)
    await site.start()
    collector.api_port = runner.addresses[0][1] if runner.addresses else api_port
    ingest_task = asyncio.create_task(ingestor.run(), name="ingest")
    services: dict[str, Coroutine[Any, Any, None]] = {
        "verdicts": evaluate_forever(evaluator, collector.current_config),
        "notify": notifier.run(),
        "slo-alerts": SloAlerts(store, collector.current_config, notifier).run(),
        "config-reload": watch_config(collector.current_config, collector.apply_config),
        "rollup-compaction": compact_forever(store),
    }
    collector.background = [asyncio.create_task(svc, name=name) for name, svc in services.items()]
    await server.start()
    collector.api_state.ready = True
    print(
        f"collector ready grpc={config.listen.rpartition(':')[0]}:{collector.grpc_port} "
        f"api=http://{api_host}:{collector.api_port} store={store.display_url}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await _shutdown(collector, server, runner, ingest_task)


def _wire_api(collector: Collector, evaluator: Evaluator) -> None:
    """What the HTTP API reads: the ingestor's state, the open streams, the evaluator, metrics."""
    state, ingestor, service = collector.api_state, collector.ingestor, collector.service
    metrics = CollectorMetrics(
        ingestor, service, evaluator, lambda: collector.config.metrics.max_check_series
    )
    evaluator.on_tick = metrics.tick_seconds.observe
    state.registry = metrics.registry
    state.config = collector.current_config
    state.evaluator = evaluator
    state.store_ok = lambda: ingestor.store_ok
    state.committed_seq = lambda region, agent_id: ingestor.committed.get(Identity(region, agent_id), 0)
    state.ingest_stalled = ingestor.stalled
    state.connected_agents = service.streams.keys
    state.impaired_agents = lambda: evaluator.latest.impaired_agents if evaluator.latest else ()


def _wire_path_evidence(collector: Collector, evaluator: Evaluator) -> None:
    """An event that opens or widens asks the agents of its new regions (connected here) for a
    path trace to the failing host; the traces they send back are stored with the event."""
    widening, store, service = Widening(), collector.store, collector.service

    def on_changes(events: list[Event]) -> None:
        for event, regions in widening.new_regions(events):
            check = next((c for c in collector.config.checks if c.id == event.check), None)
            request = trace_request(event, check)
            if request is None:
                continue
            asked = service.request_path_traces(regions, request)
            log.info(
                "event %s: path traces to %s asked of %s",
                event.id,
                request.host,
                ", ".join(asked) or "no agent",
            )

    async def store_trace(who: Identity, trace: PathTrace) -> None:
        await store.run(
            store.insert, "path_traces", trace_rows(who.agent_id, who.region, trace), TRACE_COLUMNS
        )

    evaluator.on_changes = on_changes
    service.on_path_trace = store_trace


async def _shutdown(
    collector: Collector, server: grpc.aio.Server, runner: web.AppRunner, ingest_task: asyncio.Task[None]
) -> None:
    collector.api_state.ready = False
    for task in collector.background:
        task.cancel()
    collector.service.stop_reading()
    # No new streams from here; the open ones end when close_streams tells them.
    refuse_new = asyncio.create_task(server.stop(FLUSH_ON_STOP_S + STREAM_GRACE_S))
    log.info("stopping: committing %d pending rows", collector.ingestor.pending_rows)
    if not await collector.ingestor.drain(FLUSH_ON_STOP_S):
        log.error(
            "store did not take %d pending rows; agents keep them in their spools",
            collector.ingestor.pending_rows,
        )
    await collector.service.close_streams(STREAM_GRACE_S)
    ingest_task.cancel()
    await refuse_new
    await runner.cleanup()
    for task in [ingest_task, *collector.background]:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    collector.ingestor.close()
    await collector.store.aclose()
    log.info("collector stopped")


async def run_until_signal(config: CollectorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop)
