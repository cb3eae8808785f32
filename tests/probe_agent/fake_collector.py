"""A scripted collector over real gRPC (loopback, plaintext): each stream runs the next session
script, which decides every message the agent gets. For the agent's side of hostile or broken
collectors: absurd acks, configs, aborted streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from probenet.v1 import stream_pb2, stream_pb2_grpc
from probenet.v1.probe_pb2 import ProbeResult


@dataclass
class Session:
    """One stream as the fake saw it; the script reads and writes through it."""

    context: Any
    hello: stream_pb2.Hello
    received: list[ProbeResult] = field(default_factory=list)

    async def send(self, **message: Any) -> None:
        await self.context.write(stream_pb2.CollectorMessage(**message))

    async def ack(self, up_to_seq: int) -> None:
        await self.send(ack=stream_pb2.Ack(up_to_seq=up_to_seq))

    async def read_batch(self) -> list[ProbeResult]:
        """The next batch (heartbeats skipped); [] when the agent closed the stream."""
        while True:
            message = await self.context.read()
            if message is grpc.aio.EOF:
                return []
            if message.WhichOneof("msg") == "batch":
                self.received.extend(message.batch.results)
                return list(message.batch.results)

    async def read_until(self, count: int) -> None:
        while len(self.received) < count:
            if not await self.read_batch():
                return


Script = Callable[[Session], Awaitable[None]]


class FakeCollector(stream_pb2_grpc.CollectorServicer):
    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.sessions: list[Session] = []
        self.done = asyncio.Event()

    async def Stream(self, request_iterator: object, context: Any) -> None:  # type: ignore[override]
        first = await context.read()
        session = Session(context, first.hello)
        self.sessions.append(session)
        if len(self.sessions) > len(self.scripts):
            self.done.set()
            await asyncio.Event().wait()  # no more scripts: hold the stream until the test ends
        await self.scripts[len(self.sessions) - 1](session)
        if len(self.sessions) == len(self.scripts):
            self.done.set()
            await asyncio.Event().wait()

    @property
    def received(self) -> list[ProbeResult]:
        return [r for s in self.sessions for r in s.received]


@contextlib.asynccontextmanager
async def fake_collector(scripts: list[Script]) -> AsyncIterator[tuple[FakeCollector, str]]:
    server = grpc.aio.server()
    fake = FakeCollector(scripts)
    stream_pb2_grpc.add_CollectorServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
