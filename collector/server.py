"""The agents' gRPC endpoint: one bidirectional stream per agent.

Per stream: read the hello, fix the agent's identity, send its high-water mark as a first ack
(so it drops what is already stored) and its checks; then read batches into the ingestor and,
from a single writer, send acks as commits land, config when it changes, and slow-down
requests while the store lags.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from collector.config import CollectorConfig
from collector.ingest import AgentStatus, Ingestor
from probenet.v1 import stream_pb2, stream_pb2_grpc

log = logging.getLogger(__name__)

ACK_WAIT_S = 1.0
SLOW_DOWN_MS = 2000


@dataclass(frozen=True)
class Identity:
    agent_id: str
    region: str


class CollectorService(stream_pb2_grpc.CollectorServicer):
    def __init__(self, ingestor: Ingestor, config: Callable[[], CollectorConfig]) -> None:
        self._ingestor = ingestor
        self._config = config
        self.streams: dict[str, Identity] = {}
        self._config_generation = 0
        self._config_changed = asyncio.Condition()

    async def notify_config_changed(self) -> None:
        async with self._config_changed:
            self._config_generation += 1
            self._config_changed.notify_all()

    async def identify(self, hello: stream_pb2.Hello, context: grpc.aio.ServicerContext) -> Identity:
        """Who is on the other end. With insecure: true, the hello is believed."""
        if not hello.agent_id or not hello.region:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello must carry agent_id and region")
        return Identity(hello.agent_id, hello.region)

    async def Stream(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("msg") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a hello")
        who = await self.identify(first.hello, context)
        hello = first.hello
        self._note(who, hello)
        hwm = await self._ingestor.open_agent(who.agent_id)
        log.info("agent %s (%s) connected; stored up to seq %d", who.agent_id, who.region, hwm)
        self.streams[who.agent_id] = who
        outbox: asyncio.Queue[stream_pb2.CollectorMessage] = asyncio.Queue()
        await context.write(stream_pb2.CollectorMessage(ack=stream_pb2.Ack(up_to_seq=hwm)))
        tasks = [
            asyncio.create_task(self._read(who, hello, context, outbox)),
            asyncio.create_task(self._acks(who, hwm, outbox)),
            asyncio.create_task(self._configs(who, outbox)),
        ]
        try:
            while not tasks[0].done():
                get = asyncio.create_task(outbox.get())
                done, _ = await asyncio.wait({get, tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    await context.write(get.result())
                else:
                    get.cancel()
            tasks[0].result()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            if self.streams.get(who.agent_id) is who:
                del self.streams[who.agent_id]
            log.info("agent %s disconnected", who.agent_id)

    def _note(self, who: Identity, hello: stream_pb2.Hello) -> None:
        self._ingestor.note_agent(AgentStatus(
            agent_id=who.agent_id, region=who.region, version=hello.version,
            capabilities=tuple(hello.capabilities), spool_depth=hello.spool_depth,
            dropped_results=hello.dropped_results,
        ))

    async def _read(
        self, who: Identity, hello: stream_pb2.Hello, context: grpc.aio.ServicerContext, outbox: asyncio.Queue[stream_pb2.CollectorMessage]
    ) -> None:
        while True:
            message = await context.read()
            if message is grpc.aio.EOF:
                return
            kind = message.WhichOneof("msg")
            if kind == "batch":
                results = list(message.batch.results)
                for result in results:
                    result.agent_id = who.agent_id
                    result.region = who.region
                self._ingestor.submit(who.agent_id, results)
                if self._ingestor.overloaded:
                    reason = "store is behind" if self._ingestor.store_ok else "store unavailable"
                    outbox.put_nowait(stream_pb2.CollectorMessage(
                        slow_down=stream_pb2.SlowDown(pause_ms=SLOW_DOWN_MS, reason=reason)))
            elif kind == "heartbeat":
                hello.spool_depth = message.heartbeat.spool_depth
                hello.dropped_results = message.heartbeat.dropped_results
                self._note(who, hello)

    async def _acks(self, who: Identity, acked: int, outbox: asyncio.Queue[stream_pb2.CollectorMessage]) -> None:
        while True:
            mark = await self._ingestor.wait_committed(who.agent_id, acked, ACK_WAIT_S)
            if mark > acked:
                acked = mark
                outbox.put_nowait(stream_pb2.CollectorMessage(ack=stream_pb2.Ack(up_to_seq=mark)))

    async def _configs(self, who: Identity, outbox: asyncio.Queue[stream_pb2.CollectorMessage]) -> None:
        sent = ""
        while True:
            generation = self._config_generation
            config = self._config()
            if config.checks and config.checks_version != sent:
                sent = config.checks_version
                checks = config.checks_for_region(who.region)
                outbox.put_nowait(stream_pb2.CollectorMessage(
                    config=stream_pb2.CheckConfig(version=sent, checks=checks)))
            async with self._config_changed:
                await self._config_changed.wait_for(lambda: self._config_generation != generation)
