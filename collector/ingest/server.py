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
    RESOURCE_EXHAUSTED  a batch over max_batch_results or a message over
                        max_message_bytes (both ours, counted); gRPC's own cap is
                        twice max_message_bytes and only bounds memory (see CollectorService.grpc_options)
    FAILED_PRECONDITION a seq further ahead than validate.MAX_SEQ_STEP
    (TLS handshake)     a certificate not signed by the collector's CA, or none at all

An agent is (region, agent id): an `fr` region certificate speaking as `it-1` is the agent
(fr, it-1), never the `it` agent of that name. Every hello gets the current central config,
an empty one included, so an agent whose central checks were all removed stops running them;
a collector whose file has no `checks:` key says `use_local_checks` instead.

Nothing here waits on a lock the ingest task also takes (see ingestor.py): acks wake on a
per-agent event, config changes on a per-generation event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from collector.ca import IdentityError, identity_from_pem, valid_id
from collector.config import CollectorConfig, Limits, TlsFiles
from collector.errors import StoreError
from collector.ingest.ingestor import AgentStatus, Identity, Ingestor
from collector.ingest.validate import MESSAGE_TOO_LARGE, Malformed, SeqTooFar, Validator
from probenet.v1 import stream_pb2, stream_pb2_grpc

log = logging.getLogger(__name__)

ACK_WAIT_S = 1.0
SLOW_DOWN_MS = 2000
OPEN_RETRY_S = 2.0
MAX_TRACE_HOPS = 64
# Connections remembered to count each once (peers are ip:port, so each is one connection).
PEERS_REMEMBERED = 65_536
GRPC_CAP_FACTOR = 2
Outbox = asyncio.Queue[stream_pb2.CollectorMessage]


def add_to_server(service: CollectorService, server: grpc.aio.Server) -> None:
    """Register the stream with a decoder that never raises, so bad bytes get our own status."""
    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(
            service.Stream,
            request_deserializer=service.validator.decode,
            response_serializer=stream_pb2.CollectorMessage.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("probenet.v1.Collector", handlers),)
    )


def _check_config(config: CollectorConfig, region: str) -> stream_pb2.CheckConfig:
    """This region's central checks, or "use your local checks" when there is no central config."""
    if not config.central_checks:
        return stream_pb2.CheckConfig(use_local_checks=True)
    return stream_pb2.CheckConfig(version=config.checks_version, checks=config.checks_for_region(region))


def _slow_down(reason: str, pause_ms: int = SLOW_DOWN_MS) -> stream_pb2.CollectorMessage:
    return stream_pb2.CollectorMessage(slow_down=stream_pb2.SlowDown(pause_ms=pause_ms, reason=reason))


class CollectorService(stream_pb2_grpc.CollectorServicer):
    def __init__(
        self, ingestor: Ingestor, config: Callable[[], CollectorConfig], limits: Limits | None = None
    ) -> None:
        self._ingestor = ingestor
        self._config = config
        self.validator = Validator(limits)
        # gRPC's own cap (grpc_options), fixed at start: a reload cannot raise it.
        self._message_cap = GRPC_CAP_FACTOR * self.validator.limits.max_message_bytes
        self.streams: dict[Identity, Identity] = {}
        self._outboxes: dict[Identity, Outbox] = {}
        self.refused_streams: dict[str, int] = {}
        # Where path traces sent by agents go (the composition root stores them); None: dropped.
        self.on_path_trace: Callable[[Identity, stream_pb2.PathTrace], Awaitable[None]] | None = None
        # TLS handshakes begun, and connections that got as far as a stream: the difference is
        # handshakes gRPC refused (no certificate, another CA's) plus connections left idle.
        self.tls_handshakes = 0
        self.connections = 0
        self._peers: OrderedDict[str, None] = OrderedDict()
        self._config_changed = asyncio.Event()
        # A graceful stop: first no more reading (so pending rows can drain), then the end.
        self._draining = asyncio.Event()
        self._closing = asyncio.Event()

    def grpc_options(self) -> list[tuple[str, int]]:
        """gRPC's own message cap: twice ours, so every size refusal an agent can meet below it is
        made (and counted) by the decoder, while gRPC still refuses the absurd from the length prefix
        alone, before buffering it.

        gRPC's refusal cannot be observed: the handler reads a plain end of stream, exactly as when
        the agent cancels or its process dies (measured: a 200 MB message costs the collector 1 MB
        when gRPC refuses it and 600 MB when it is handed to Python).
        """
        return [("grpc.max_receive_message_length", self._message_cap)]

    def server_credentials(self, tls: TlsFiles) -> grpc.ServerCredentials:
        """mTLS with the collector's CA; gRPC calls back before each handshake, which is counted
        (gRPC refuses a bad client certificate itself and tells the application nothing else)."""
        config = grpc.ssl_server_certificate_configuration(
            [(Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())],
            root_certificates=Path(tls.ca).read_bytes(),
        )
        return grpc.dynamic_ssl_server_credentials(
            config, self._handshake, require_client_authentication=True
        )

    def _handshake(self) -> None:
        # Runs on a gRPC thread; None keeps the certificate configuration as it is.
        self.tls_handshakes += 1

    def _connection(self, peer: str) -> None:
        if peer in self._peers:
            return
        self.connections += 1
        self._peers[peer] = None
        if len(self._peers) > PEERS_REMEMBERED:
            self._peers.popitem(last=False)

    def stop_reading(self) -> None:
        """Stop taking results from every stream (acks and config still go out)."""
        self._draining.set()

    async def close_streams(self, timeout: float) -> None:
        """End every stream after a last ack of what is committed; wait up to `timeout`."""
        self._closing.set()
        deadline = asyncio.get_running_loop().time() + timeout
        # The streams end on their own at once; polling keeps one waiter out of every stream.
        while self.streams and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def notify_config_changed(self) -> None:
        """A reloaded config: its `limits:` apply from the next batch, its checks are pushed."""
        limits = self._config().limits
        if limits.max_message_bytes > self._message_cap:
            log.warning(
                "limits.max_message_bytes %d is over gRPC's cap %d set at start: messages over "
                "the cap are refused by gRPC, uncounted, until a restart",
                limits.max_message_bytes,
                self._message_cap,
            )
        self.validator.limits = limits
        changed, self._config_changed = self._config_changed, asyncio.Event()
        changed.set()

    async def _refuse_undecoded(self, context: Any, message: Malformed) -> None:
        self.validator.count(message.counted_as)
        too_large = message.counted_as == MESSAGE_TOO_LARGE
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if too_large else grpc.StatusCode.INVALID_ARGUMENT
        await self._refuse(context, code, message.reason)

    async def _refuse(self, context: Any, code: grpc.StatusCode, why: str) -> None:
        self.refused_streams[code.name] = self.refused_streams.get(code.name, 0) + 1
        log.warning("refused agent stream from %s: %s %s", context.peer(), code.name, why)
        await context.abort(code, why)

    async def identify(self, hello: stream_pb2.Hello, context: Any) -> tuple[Identity, str]:
        """Who is on the other end, and the certificate's rate-limit key ("" if the identity is one
        agent already): the certificate decides; the hello is believed only when insecure."""
        if self._config().insecure:
            if not valid_id(hello.agent_id) or not valid_id(hello.region):
                await self._refuse(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "hello must carry agent_id and region, each 1-64 of [A-Za-z0-9._-]",
                )
            return Identity(region=hello.region, agent_id=hello.agent_id), ""
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
        # A region certificate speaks for many agent ids: they share one more rate limit.
        cert_key = "" if cert.agent_id else hashlib.sha256(pems[0]).hexdigest()
        return Identity(region=region, agent_id=agent_id), cert_key

    async def Stream(self, request_iterator: object, context: Any) -> None:  # type: ignore[override]
        self._connection(context.peer())
        first = await context.read()
        if isinstance(first, Malformed):
            await self._refuse_undecoded(context, first)
        if first is grpc.aio.EOF or first.WhichOneof("msg") != "hello":
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a hello")
        hello = first.hello
        who, cert_key = await self.identify(hello, context)
        self._note(who, hello)
        outbox: Outbox = asyncio.Queue()
        hwm = await self._open(who, context)
        log.info("agent %s (%s) connected; stored up to seq %d", who.agent_id, who.region, hwm)
        self.streams[who] = who
        self._outboxes[who] = outbox
        limits = self.validator.limits
        first_ack = stream_pb2.Ack(
            up_to_seq=hwm,
            max_batch_results=limits.max_batch_results,
            max_message_bytes=min(limits.max_message_bytes, self._message_cap),
        )
        await context.write(stream_pb2.CollectorMessage(ack=first_ack))
        tasks = [
            asyncio.create_task(self._read(who, cert_key, hello, context, outbox)),
            asyncio.create_task(self._acks(who, hwm, outbox)),
            asyncio.create_task(self._configs(who, outbox)),
        ]
        closing = asyncio.create_task(self._closing.wait())
        get: asyncio.Task[stream_pb2.CollectorMessage] | None = None
        try:
            while not tasks[0].done() and not closing.done():
                get = asyncio.create_task(outbox.get())
                done, _ = await asyncio.wait({get, tasks[0], closing}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    await context.write(get.result())
            if tasks[0].done():
                tasks[0].result()
            else:
                await self._last_words(who, hwm, context, outbox)
        finally:
            others = [*tasks, closing, *([get] if get else [])]
            for task in others:
                task.cancel()
            # return_exceptions collects the tasks' own errors; our own cancellation must propagate.
            await asyncio.gather(*others, return_exceptions=True)
            if self.streams.get(who) is who:
                del self.streams[who]
                self._outboxes.pop(who, None)
                self._ingestor.forget_waiters(who)
            log.info("agent %s (%s) disconnected", who.agent_id, who.region)

    async def _last_words(self, who: Identity, hwm: int, context: Any, outbox: Outbox) -> None:
        """A graceful stop: what is queued for the agent, then an ack of all that is committed."""
        while not outbox.empty():
            await context.write(outbox.get_nowait())
        mark = self._ingestor.committed.get(who, 0)
        if mark > hwm:  # a repeated ack is harmless: the agent ignores one it already had
            await context.write(stream_pb2.CollectorMessage(ack=stream_pb2.Ack(up_to_seq=mark)))

    async def _open(self, who: Identity, context: Any) -> int:
        """The agent's stored high-water mark; while the store is down, hold the agent off."""
        while True:
            try:
                return await self._ingestor.open_agent(who)
            except StoreError as exc:
                log.warning("agent %s waits: store unavailable (%s)", who.agent_id, exc)
                await context.write(_slow_down("store unavailable", int(OPEN_RETRY_S * 1000)))
                await asyncio.sleep(OPEN_RETRY_S)

    def _note(self, who: Identity, hello: stream_pb2.Hello) -> None:
        spool_depth, dropped = self.validator.gauges(hello.spool_depth, hello.dropped_results)
        self._ingestor.note_agent(
            AgentStatus(
                who=who,
                version=self.validator.text(hello.version),
                capabilities=self.validator.capabilities(hello.capabilities),
                spool_depth=spool_depth,
                dropped_results=dropped,
            )
        )

    async def _read(
        self, who: Identity, cert_key: str, hello: stream_pb2.Hello, context: Any, outbox: Outbox
    ) -> None:
        while True:
            await self._wait_for_room(outbox)
            if self._draining.is_set():
                await self._closing.wait()
                return
            message = await context.read()
            if message is grpc.aio.EOF:
                return
            if self._draining.is_set():
                continue  # read as the stop began: never acknowledged, the agent sends it again
            if isinstance(message, Malformed):
                await self._refuse_undecoded(context, message)
            kind = message.WhichOneof("msg")
            if kind == "batch":
                await self._batch(who, cert_key, context, message.batch, outbox)
            elif kind == "path_trace":
                await self._path_trace(who, message.path_trace)
            elif kind == "heartbeat":
                hello.spool_depth = message.heartbeat.spool_depth
                hello.dropped_results = message.heartbeat.dropped_results
                self._note(who, hello)

    def request_path_traces(self, regions: Sequence[str], request: stream_pb2.PathTraceRequest) -> list[str]:
        """Ask every agent connected here from `regions` for a path trace; the agents asked."""
        asked = []
        for who, outbox in sorted(
            self._outboxes.items(), key=lambda item: (item[0].region, item[0].agent_id)
        ):
            if who.region in regions:
                outbox.put_nowait(stream_pb2.CollectorMessage(path_trace_request=request))
                asked.append(who.agent_id)
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
        self, who: Identity, cert_key: str, context: Any, batch: stream_pb2.ResultBatch, outbox: Outbox
    ) -> None:
        results = list(batch.results)
        too_large = self.validator.batch_too_large(len(results))
        if too_large:
            await self._refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, too_large)
        checked = self.validator.check(who.agent_id, who.region, results, self._ingestor.submitted_mark(who))
        if checked.counts:
            log.info("agent %s (%s) batch: %s", who.agent_id, who.region, dict(checked.counts))
        self._ingestor.submit(who, checked.accepted, checked.last_seq, checked.nbytes)
        if isinstance(checked.stopped, SeqTooFar):
            # Settling it would make every later result of this agent a "duplicate"; holding the
            # stream keeps the agent's spool whole until someone looks (logged and counted).
            await self._refuse(context, grpc.StatusCode.FAILED_PRECONDITION, checked.stopped.reason)
        pause = self.validator.throttle(who, len(results), cert_key)
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
            mark = await self._ingestor.wait_committed(who, acked, ACK_WAIT_S)
            if mark > acked:
                acked = mark
                outbox.put_nowait(stream_pb2.CollectorMessage(ack=stream_pb2.Ack(up_to_seq=mark)))

    async def _configs(self, who: Identity, outbox: Outbox) -> None:
        """The current central config at once (empty included: it is what the agent must run),
        then again whenever a reload changes it."""
        sent: str | None = None
        while True:
            changed = self._config_changed
            config = self._config()
            version = config.checks_version if config.central_checks else ""
            if version != sent:
                sent = version
                outbox.put_nowait(stream_pb2.CollectorMessage(config=_check_config(config, who.region)))
            await changed.wait()
