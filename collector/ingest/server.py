"""The agents' gRPC endpoint: one bidirectional stream per agent.

Per stream: read the hello, fix the agent's identity (from the verified client certificate
with mTLS, from the hello only with `insecure: true`), send its high-water mark as a first ack
(so it drops what is already stored) and its checks; then read batches through the validator
into the ingestor and, from a single writer, send acks as commits land, config when it
changes, and slow-down requests while the store lags.

Status codes an agent may see, each logged here:

    INVALID_ARGUMENT    first message not a hello, or a message that does not decode
    UNAUTHENTICATED     no usable client certificate (no probenet identity, expired)
    PERMISSION_DENIED   the hello claims another agent or region than the certificate
    RESOURCE_EXHAUSTED  a batch over the size limit
    (TLS handshake)     a certificate not signed by the collector's CA, or none at all
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from collector.ca import IdentityError, identity_from_pem
from collector.config import CollectorConfig, Limits
from collector.errors import StoreError
from collector.ingest.ingestor import AgentStatus, Ingestor
from collector.ingest.validate import MALFORMED, Malformed, Validator, decode
from probenet.v1 import stream_pb2, stream_pb2_grpc

log = logging.getLogger(__name__)

ACK_WAIT_S = 1.0
SLOW_DOWN_MS = 2000
OPEN_RETRY_S = 2.0
MAX_TRACE_HOPS = 64
Outbox = asyncio.Queue[stream_pb2.CollectorMessage]


@dataclass(frozen=True)
class Identity:
    agent_id: str
    region: str


def add_to_server(service: CollectorService, server: grpc.aio.Server) -> None:
    """Register the stream with a decoder that never raises, so bad bytes get our own status."""
    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(
            service.Stream,
            request_deserializer=decode,
            response_serializer=stream_pb2.CollectorMessage.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("probenet.v1.Collector", handlers),)
    )


def _slow_down(reason: str, pause_ms: int = SLOW_DOWN_MS) -> stream_pb2.CollectorMessage:
    return stream_pb2.CollectorMessage(slow_down=stream_pb2.SlowDown(pause_ms=pause_ms, reason=reason))


class CollectorService(stream_pb2_grpc.CollectorServicer):
    def __init__(
        self, ingestor: Ingestor, config: Callable[[], CollectorConfig], limits: Limits | None = None
    ) -> None:
        self._ingestor = ingestor
        self._config = config
        self.validator = Validator(limits)
        self.streams: dict[str, Identity] = {}
        self._outboxes: dict[str, tuple[Identity, Outbox]] = {}
        self.refused_streams: dict[str, int] = {}
        # Where path traces sent by agents go (the composition root stores them); None: dropped.
        self.on_path_trace: Callable[[Identity, stream_pb2.PathTrace], Awaitable[None]] | None = None
        self._config_generation = 0
        self._config_changed = asyncio.Condition()

    async def notify_config_changed(self) -> None:
        async with self._config_changed:
            self._config_generation += 1
            self._config_changed.notify_all()

    async def _refuse(self, context: Any, code: grpc.StatusCode, why: str) -> None:
        self.refused_streams[code.name] = self.refused_streams.get(code.name, 0) + 1
        log.warning("refused agent stream from %s: %s %s", context.peer(), code.name, why)
        await context.abort(code, why)

    async def identify(self, hello: stream_pb2.Hello, context: Any) -> Identity:
        """Who is on the other end: the certificate decides; the hello is believed only when insecure."""
        if self._config().insecure:
            if not hello.agent_id or not hello.region:
                await self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "hello must carry agent_id and region"
                )
            return Identity(hello.agent_id, hello.region)
        pems = context.auth_context().get("x509_pem_cert") or []
        if not pems:
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        try:
            cert = identity_from_pem(pems[0])
        except IdentityError as exc:
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise
        try:
            agent_id, region = cert.resolve(hello.agent_id, hello.region)
        except IdentityError as exc:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
            raise
        return Identity(agent_id, region)

    async def Stream(self, request_iterator: object, context: Any) -> None:  # type: ignore[override]
        first = await context.read()
        if isinstance(first, Malformed):
            self.validator.count(MALFORMED)
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, first.reason)
        if first is grpc.aio.EOF or first.WhichOneof("msg") != "hello":
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a hello")
        hello = first.hello
        who = await self.identify(hello, context)
        self._note(who, hello)
        outbox: Outbox = asyncio.Queue()
        hwm = await self._open(who, context)
        log.info("agent %s (%s) connected; stored up to seq %d", who.agent_id, who.region, hwm)
        self.streams[who.agent_id] = who
        self._outboxes[who.agent_id] = (who, outbox)
        first_ack = stream_pb2.Ack(up_to_seq=hwm, max_batch_results=self.validator.limits.max_batch_results)
        await context.write(stream_pb2.CollectorMessage(ack=first_ack))
        tasks = [
            asyncio.create_task(self._read(who, hello, context, outbox)),
            asyncio.create_task(self._acks(who, hwm, outbox)),
            asyncio.create_task(self._configs(who, outbox)),
        ]
        get: asyncio.Task[stream_pb2.CollectorMessage] | None = None
        try:
            while not tasks[0].done():
                get = asyncio.create_task(outbox.get())
                done, _ = await asyncio.wait({get, tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    await context.write(get.result())
            tasks[0].result()
        finally:
            for task in [*tasks, *([get] if get else [])]:
                task.cancel()
            # return_exceptions collects the tasks' own errors; our own cancellation must propagate.
            await asyncio.gather(*tasks, *([get] if get else []), return_exceptions=True)
            if self.streams.get(who.agent_id) is who:
                del self.streams[who.agent_id]
            if self._outboxes.get(who.agent_id, (None,))[0] is who:
                del self._outboxes[who.agent_id]
            log.info("agent %s disconnected", who.agent_id)

    async def _open(self, who: Identity, context: Any) -> int:
        """The agent's stored high-water mark; while the store is down, hold the agent off."""
        while True:
            try:
                return await self._ingestor.open_agent(who.agent_id)
            except StoreError as exc:
                log.warning("agent %s waits: store unavailable (%s)", who.agent_id, exc)
                await context.write(_slow_down("store unavailable", int(OPEN_RETRY_S * 1000)))
                await asyncio.sleep(OPEN_RETRY_S)

    def _note(self, who: Identity, hello: stream_pb2.Hello) -> None:
        self._ingestor.note_agent(
            AgentStatus(
                agent_id=who.agent_id,
                region=who.region,
                version=hello.version,
                capabilities=tuple(hello.capabilities),
                spool_depth=hello.spool_depth,
                dropped_results=hello.dropped_results,
            )
        )

    async def _read(self, who: Identity, hello: stream_pb2.Hello, context: Any, outbox: Outbox) -> None:
        while True:
            await self._wait_for_room(outbox)
            message = await context.read()
            if message is grpc.aio.EOF:
                return
            if isinstance(message, Malformed):
                self.validator.count(MALFORMED)
                await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message.reason)
            kind = message.WhichOneof("msg")
            if kind == "batch":
                await self._batch(who, context, message.batch, outbox)
            elif kind == "path_trace":
                await self._path_trace(who, message.path_trace)
            elif kind == "heartbeat":
                hello.spool_depth = message.heartbeat.spool_depth
                hello.dropped_results = message.heartbeat.dropped_results
                self._note(who, hello)

    def request_path_traces(self, regions: Sequence[str], request: stream_pb2.PathTraceRequest) -> list[str]:
        """Ask every agent connected here from `regions` for a path trace; the agents asked."""
        asked = []
        for agent_id, (who, outbox) in sorted(self._outboxes.items()):
            if who.region in regions:
                outbox.put_nowait(stream_pb2.CollectorMessage(path_trace_request=request))
                asked.append(agent_id)
        return asked

    async def _path_trace(self, who: Identity, trace: stream_pb2.PathTrace) -> None:
        if not trace.event_id or len(trace.hops) > MAX_TRACE_HOPS:
            log.info(
                "agent %s: path trace refused (no event id or over %d hops)", who.agent_id, MAX_TRACE_HOPS
            )
            return
        if self.on_path_trace is None:
            return
        try:
            await self.on_path_trace(who, trace)
        except StoreError as exc:  # evidence, not results: not worth holding the stream for
            log.warning("agent %s: path trace for %s not stored: %s", who.agent_id, trace.event_id, exc)

    async def _batch(
        self, who: Identity, context: Any, batch: stream_pb2.ResultBatch, outbox: Outbox
    ) -> None:
        results = list(batch.results)
        too_large = self.validator.batch_too_large(len(results))
        if too_large:
            await self._refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, too_large)
        checked = self.validator.check(
            who.agent_id, who.region, results, self._ingestor.submitted_mark(who.agent_id)
        )
        if checked.counts:
            log.info("agent %s batch: %s", who.agent_id, dict(checked.counts))
        self._ingestor.submit(who.agent_id, checked.accepted, checked.last_seq)
        pause = self.validator.throttle(who.agent_id, len(results))
        if pause > 0:
            # Not reading the stream is what holds a flood back; the message tells an honest agent.
            outbox.put_nowait(_slow_down("rate limit", int(pause * 1000) + 1))
            await asyncio.sleep(pause)

    async def _wait_for_room(self, outbox: Outbox) -> None:
        """While the ingestor holds max_pending_rows, stop reading: memory stays bounded."""
        while self._ingestor.overloaded:
            reason = "store is behind" if self._ingestor.store_ok else "store unavailable"
            outbox.put_nowait(_slow_down(reason))
            await self._ingestor.wait_for_room(SLOW_DOWN_MS / 1000)

    async def _acks(self, who: Identity, acked: int, outbox: Outbox) -> None:
        while True:
            mark = await self._ingestor.wait_committed(who.agent_id, acked, ACK_WAIT_S)
            if mark > acked:
                acked = mark
                outbox.put_nowait(stream_pb2.CollectorMessage(ack=stream_pb2.Ack(up_to_seq=mark)))

    async def _configs(self, who: Identity, outbox: Outbox) -> None:
        sent = ""
        while True:
            generation = self._config_generation
            config = self._config()
            if config.checks_version != sent and (config.checks or sent):
                sent = config.checks_version
                checks = config.checks_for_region(who.region)
                outbox.put_nowait(
                    stream_pb2.CollectorMessage(config=stream_pb2.CheckConfig(version=sent, checks=checks))
                )
            async with self._config_changed:
                await self._config_changed.wait_for(lambda g=generation: self._config_generation != g)  # type: ignore[misc]
