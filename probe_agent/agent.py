"""Wire an agent together: config -> scheduler -> spool -> exporter, and back for pushed config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from probe_agent.config import AgentConfig
from probe_agent.exporter import Exporter, StreamSettings
from probe_agent.limits import cap_result
from probe_agent.metrics import AgentMetrics, LiveSources
from probe_agent.pathtrace import PathTracer
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.context import ProbeContext
from probe_agent.probes.icmp import IcmpNotPermitted, require_icmp
from probe_agent.scheduler import Scheduler
from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import CheckSpec, ProbeResult
from probenet.v1.stream_pb2 import CheckConfig, PathTraceRequest

log = logging.getLogger(__name__)

LOCAL_VERSION = "local"
# How often a draining agent looks at the spool's depth (acks shrink it from the stream's task).
DRAIN_POLL_S = 0.05


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.unavailable = _unavailable_probes(config.checks)
        self.spool = Spool(config.spool.dir, config.spool.max_results, config.spool.max_bytes)
        self.context = ProbeContext(dns_server=config.dns_server)
        self.scheduler = Scheduler(self.context, self._accept, config.max_concurrency, phase=config.phase)
        settings = StreamSettings(
            collector=config.collector,
            agent_id=config.agent_id,
            region=config.region,
            capabilities=tuple(sorted(set(PROBE_TYPES) - set(self.unavailable))),
            batch_size=config.batch_size,
            insecure=config.insecure,
            ca_file=config.tls.ca,
            cert_file=config.tls.cert,
            key_file=config.tls.key,
        )
        self.exporter = Exporter(settings, self.spool, self._apply_central_config, self._trace_requested)
        self.tracer = PathTracer(self.context)
        self._traces: set[asyncio.Task[None]] = set()
        self.config_version = LOCAL_VERSION
        self.stopping = False
        self.metrics = AgentMetrics(
            LiveSources(
                lambda: self.spool.depth,
                lambda: self.spool.dropped,
                lambda: self.exporter.connected,
                lambda: self.exporter.sessions,
                spool=self.spool,
            )
        )

    def _accept(self, result: ProbeResult) -> None:
        result.agent_id = self.config.agent_id
        result.region = self.config.region
        self.spool.append(cap_result(result))
        self.metrics.observe(result)
        self.exporter.notify()

    def _trace_requested(self, request: PathTraceRequest) -> None:
        """The collector asks for a path trace (an event opened or widened): run it in the background."""
        task = asyncio.create_task(self._trace(request), name=f"trace {request.host}")
        self._traces.add(task)
        task.add_done_callback(self._traces.discard)

    async def _trace(self, request: PathTraceRequest) -> None:
        trace = await self.tracer.answer(request)
        if trace is not None:
            log.info(
                "path trace to %s for event %s: %d hops", request.host, request.event_id, len(trace.hops)
            )
            self.exporter.send_trace(trace)

    def _apply_central_config(self, config: CheckConfig) -> None:
        """The collector's word on this agent's checks: its whole set, an empty one included, or
        "no central checks", which brings back the checks of the agent's own file."""
        if config.use_local_checks:
            version, checks = LOCAL_VERSION, list(self.config.checks)
        else:
            version, checks = config.version, list(config.checks)
        # A config pushed while draining must not start probing again.
        if version == self.config_version or self.stopping:
            return
        source = "local checks" if config.use_local_checks else f"central config {version}"
        log.info("applying %s: %d checks", source, len(checks))
        self.config_version = version
        for probe in sorted({c.probe for c in checks} & set(self.unavailable)):
            ids = ", ".join(c.id for c in checks if c.probe == probe)
            log.error("not running %s checks %s: %s", probe, ids, self.unavailable[probe])
        self.scheduler.set_checks([c for c in checks if c.probe not in self.unavailable])

    async def run(self, stop: asyncio.Event, give_up: asyncio.Event | None = None) -> None:
        """Probe and stream until `stop`, then drain the spool (see `_drain`) and close."""
        if self.config.insecure:
            log.warning("insecure: true - results travel in plaintext without client identity")
        if self.config.metrics_listen:
            self.metrics.serve(self.config.metrics_listen)
        self.scheduler.set_checks(self.config.checks)
        exporter = asyncio.create_task(self.exporter.run(), name="exporter")
        await stop.wait()
        self.stopping = True
        deadline = asyncio.get_running_loop().time() + self.config.shutdown_grace
        await self.scheduler.stop()
        await self._drain(deadline, give_up or asyncio.Event())
        exporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await exporter
        self.spool.close()
        self.metrics.close()
        log.info("agent stopped; %d results left in the spool for next time", self.spool.depth)

    async def _drain(self, deadline: float, give_up: asyncio.Event) -> None:
        """Keep streaming (and reconnecting) until the collector acknowledged the whole spool,
        the deadline passed or `give_up` is set; what is left stays on disk for the next start."""
        left = deadline - asyncio.get_running_loop().time()
        if not self.spool.depth or left <= 0:
            return
        log.info("draining %d spooled results for up to %.1fs", self.spool.depth, left)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                # Polled: acks arrive on the stream's task and a second signal may cut the
                # drain short; no single event covers both.
                while self.spool.depth and not give_up.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(DRAIN_POLL_S)


def _unavailable_probes(local_checks: tuple[CheckSpec, ...]) -> dict[str, str]:
    """Probe types this process may not run, with why; said once at start, not in every result.

    A local check of such a type is a start-up error (IcmpNotPermitted); centrally pushed ones
    are left out of the hello's capabilities and not scheduled.
    """
    try:
        require_icmp()
    except IcmpNotPermitted as exc:
        if any(c.probe == "icmp" for c in local_checks):
            raise
        log.error("%s", exc)
        return {"icmp": str(exc)}
    return {}


async def run_agent(config: AgentConfig) -> None:
    """Run until SIGTERM/SIGINT; a second signal ends the drain at once (as uvicorn does)."""
    stop, give_up = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: leaving the rest of the spool for next time")
            give_up.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await Agent(config).run(stop, give_up)
