"""An in-process collector (real gRPC server, real ingestor, real chDB store) for stream tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from collector import ca
from collector.config import CollectorConfig, Limits, TlsFiles
from collector.ingest.ingestor import Ingestor
from collector.ingest.server import CollectorService, add_to_server
from collector.store import Store
from probenet.v1 import stream_pb2, stream_pb2_grpc
from probenet.v1.probe_pb2 import Outcome, ProbeResult


@dataclass
class Pki:
    """A CA with a collector certificate for 127.0.0.1, and helpers to issue agent certificates."""

    dir: Path

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca.init_ca(directory)
        ca.issue_collector(directory, directory, ["127.0.0.1", "localhost"])
        return cls(directory)

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(
            str(self.dir / "ca.pem"), str(self.dir / "collector.pem"), str(self.dir / "collector-key.pem")
        )

    def agent(self, region: str, agent_id: str, **kw: object) -> ca.Issued:
        return ca.issue_agent(self.dir, self.dir, region, agent_id, **kw)  # type: ignore[arg-type]

    def credentials(self, issued: ca.Issued | None) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=(self.dir / "ca.pem").read_bytes(),
            private_key=issued.key.read_bytes() if issued else None,
            certificate_chain=issued.cert.read_bytes() if issued else None,
        )


@dataclass
class Running:
    port: int
    service: CollectorService
    ingestor: Ingestor
    server: grpc.aio.Server
    holder: dict[str, CollectorConfig] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_collector(
    store: Store,
    config: CollectorConfig,
    limits: Limits | None = None,
    *,
    max_pending_rows: int = 200_000,
    flush_interval: float = 0.05,
    port: int = 0,
) -> AsyncIterator[Running]:
    ingestor = Ingestor(
        store, batch_rows=10_000, flush_interval=flush_interval, max_pending_rows=max_pending_rows
    )
    await ingestor.prepare()
    holder = {"config": config}
    service = CollectorService(ingestor, lambda: holder["config"], limits)
    server = grpc.aio.server(options=service.grpc_options())
    add_to_server(service, server)
    creds = None if config.insecure else service.server_credentials(config.tls)
    if creds is None:
        port = server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        port = server.add_secure_port(f"127.0.0.1:{port}", creds)
    await server.start()
    task = asyncio.create_task(ingestor.run())
    try:
        yield Running(port, service, ingestor, server, holder)
    finally:
        await server.stop(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ingestor.close()


def insecure_config(**kw: object) -> CollectorConfig:
    return replace(CollectorConfig(insecure=True), **kw)  # type: ignore[arg-type]


def mtls_config(pki: Pki) -> CollectorConfig:
    return CollectorConfig(insecure=False, tls=pki.tls)


def result(
    seq: int, check_id: str = "shop", agent_id: str = "", region: str = "", at: float | None = None
) -> ProbeResult:
    r = ProbeResult(
        check_id=check_id,
        seq=seq,
        probe="http",
        target="https://shop.test/",
        outcome=Outcome.OUTCOME_SUCCESS,
        agent_id=agent_id,
        region=region,
    )
    r.started_at.FromNanoseconds(int((time.time() if at is None else at) * 1e9))
    r.timings.total_ms = 10.0
    return r


def hello(agent_id: str, region: str) -> stream_pb2.AgentMessage:
    return stream_pb2.AgentMessage(hello=stream_pb2.Hello(agent_id=agent_id, region=region, version="test"))


def batch(results: list[ProbeResult]) -> stream_pb2.AgentMessage:
    return stream_pb2.AgentMessage(batch=stream_pb2.ResultBatch(results=results))


async def exchange(
    channel: grpc.aio.Channel, messages: list[stream_pb2.AgentMessage], until_ack: int, timeout: float = 20.0
) -> list[stream_pb2.CollectorMessage]:
    """Send `messages` on one stream and read replies until an ack >= until_ack (or the stream ends)."""
    call = stream_pb2_grpc.CollectorStub(channel).Stream()
    for message in messages:
        try:
            await call.write(message)
        except grpc.aio.AioRpcError:
            # The server ended the stream: its status is what reading tells.
            break
    replies: list[stream_pb2.CollectorMessage] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            reply = await asyncio.wait_for(call.read(), deadline - time.monotonic())
            if reply is grpc.aio.EOF:
                break
            replies.append(reply)
            if reply.WhichOneof("msg") == "ack" and reply.ack.up_to_seq >= until_ack:
                break
    finally:
        call.cancel()
    return replies


def acks(replies: list[stream_pb2.CollectorMessage]) -> list[int]:
    return [r.ack.up_to_seq for r in replies if r.WhichOneof("msg") == "ack"]
