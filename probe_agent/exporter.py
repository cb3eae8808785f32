"""Hold one long-lived bidirectional stream to the collector; send the spool, apply acks.

Everything sent stays in the spool until the collector acknowledges it (after ClickHouse
accepted it), so a lost connection only means a resend; the collector drops replays.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from probe_agent import __version__
from probe_agent.spool import Spool
from probenet.v1 import stream_pb2, stream_pb2_grpc

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0
HEARTBEAT_S = 5.0
# Results sent but not yet acknowledged. The collector acknowledges per commit (every
# `batch_rows` = 10,000 results or every second), so the window must exceed one insert's worth
# or the stream would wait for the flush timer; kept close to it because everything in flight
# is latency (send-to-ack ~ results in flight / ingest rate) and what a reconnect resends.
MAX_UNACKED_RESULTS = 12_000
MAX_PENDING_TRACES = 64
# A batch's encoded size, at most; a collector that states its message limit gets half of it
# at most, so an honest agent never meets the size refusal that ends a stream.
MAX_BATCH_BYTES = 4 << 20
# The longest pause a collector may ask for at once: a hostile or broken one (pause_ms up to
# 2^32-1, 50 days) must not stop delivery; an overloaded one simply asks again.
MAX_PAUSE_S = 60.0
# Refusals that a retry cannot fix: say so loudly, then keep retrying slowly (a fixed
# certificate or config on the collector side heals it without restarting the agent).
_REFUSALS = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
}


@dataclass(frozen=True)
class StreamSettings:
    collector: str
    agent_id: str
    region: str
    capabilities: tuple[str, ...]
    batch_size: int = 500
    insecure: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


class Exporter:
    def __init__(
        self,
        settings: StreamSettings,
        spool: Spool,
        on_config: Callable[[stream_pb2.CheckConfig], None],
        on_trace_request: Callable[[stream_pb2.PathTraceRequest], None] | None = None,
    ) -> None:
        self._settings = settings
        self._spool = spool
        self._on_config = on_config
        self._on_trace_request = on_trace_request
        # Path traces waiting for the stream; kept across reconnects, bounded (old ones go first).
        self._traces: collections.deque[stream_pb2.PathTrace] = collections.deque(maxlen=MAX_PENDING_TRACES)
        self._new_data = asyncio.Event()
        self._acked = asyncio.Event()
        self._welcomed = asyncio.Event()
        self._pause_until = 0.0
        self._batch_size = settings.batch_size
        self._batch_bytes = MAX_BATCH_BYTES
        self.connected = False
        self.last_error = ""
        self.sessions = 0

    def send_trace(self, trace: stream_pb2.PathTrace) -> None:
        """Queue a path trace for the collector; it goes out before the next batch."""
        self._traces.append(trace)
        self._new_data.set()

    def notify(self) -> None:
        """Tell the sender that the spool has new results."""
        self._new_data.set()

    def _channel(self) -> grpc.aio.Channel:
        s = self._settings
        options = [("grpc.keepalive_time_ms", 20_000), ("grpc.max_receive_message_length", 64 << 20)]
        if s.insecure:
            return grpc.aio.insecure_channel(s.collector, options=options)
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(s.ca_file).read_bytes(),
            private_key=Path(s.key_file).read_bytes(),
            certificate_chain=Path(s.cert_file).read_bytes(),
        )
        return grpc.aio.secure_channel(s.collector, creds, options=options)

    async def run(self) -> None:
        """Keep a session up until cancelled, reconnecting with jittered exponential backoff."""
        backoff = MIN_BACKOFF_S
        while True:
            started = time.monotonic()
            try:
                await self._session()
                if self._welcomed.is_set():
                    # The collector ended a stream it had accepted (its graceful stop): it is
                    # restarting, so come back soon rather than after an escalated backoff.
                    backoff = MIN_BACKOFF_S
            except asyncio.CancelledError:
                raise
            except StreamEnded as exc:
                backoff = self._after_error(exc.code, exc.details, backoff)
            except Exception:
                log.exception("stream to %s failed", self._settings.collector)
            finally:
                self.connected = False
            if _cancel_requested():
                # gRPC may turn our cancellation into a call error on its way out: stop anyway.
                raise asyncio.CancelledError
            if time.monotonic() - started > 10:
                backoff = MIN_BACKOFF_S
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _after_error(self, code: grpc.StatusCode, details: str, backoff: float) -> float:
        self.last_error = f"{code.name}: {details}"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and self._batch_size > 1:
            self._batch_size = max(1, self._batch_size // 2)
            log.warning("collector refused a batch (%s); batch size now %d", details, self._batch_size)
            return backoff
        if code in _REFUSALS:
            log.error("collector %s refused this agent: %s %s", self._settings.collector, code.name, details)
            return MAX_BACKOFF_S
        log.warning("stream to %s ended: %s %s", self._settings.collector, code.name, details)
        return backoff

    async def _session(self) -> None:
        s = self._settings
        async with self._channel() as channel:
            call = stream_pb2_grpc.CollectorStub(channel).Stream()
            hello = stream_pb2.Hello(
                agent_id=s.agent_id,
                region=s.region,
                version=__version__,
                capabilities=list(s.capabilities),
                spool_depth=self._spool.depth,
                dropped_results=self._spool.dropped,
            )
            tasks: list[asyncio.Task[None]] = []
            try:
                await call.write(stream_pb2.AgentMessage(hello=hello))
                self.connected = True
                self.sessions += 1
                self._welcomed.clear()
                tasks = [asyncio.create_task(self._receive(call)), asyncio.create_task(self._send(call))]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if tasks[0] not in done:
                    # A write racing the collector's abort fails with a bare INTERNAL; the
                    # reader is about to get the real status, so let it finish first.
                    await asyncio.wait(tasks[:1], timeout=2.0)
                for task in tasks:
                    if task.done():
                        task.result()
            except grpc.aio.AioRpcError as exc:
                raise await _final_status(call, exc) from exc
            finally:
                for task in tasks:
                    task.cancel()
                # return_exceptions collects the tasks' own errors; our own cancellation must propagate.
                await asyncio.gather(*tasks, return_exceptions=True)
                call.cancel()

    async def _receive(self, call: grpc.aio.StreamStreamCall) -> None:
        async for message in call:
            kind = message.WhichOneof("msg")
            if kind == "ack":
                limit = message.ack.max_batch_results
                if limit and limit < self._batch_size:
                    log.info("collector accepts at most %d results per batch", limit)
                    self._batch_size = limit
                if message.ack.max_message_bytes:
                    self._batch_bytes = min(MAX_BATCH_BYTES, message.ack.max_message_bytes // 2)
                if self._welcomed.is_set():
                    self._spool.ack(message.ack.up_to_seq)
                else:
                    # The first ack of a stream says what the collector already stores.
                    self._spool.adopt(message.ack.up_to_seq)
                self._acked.set()
                self._welcomed.set()
            elif kind == "config":
                self._on_config(message.config)
            elif kind == "path_trace_request" and self._on_trace_request is not None:
                self._on_trace_request(message.path_trace_request)
            elif kind == "slow_down":
                self._pause_until = time.monotonic() + pause_s(message.slow_down.pause_ms)
                log.info(
                    "collector asks to slow down for %d ms: %s",
                    message.slow_down.pause_ms,
                    message.slow_down.reason,
                )

    async def _send(self, call: grpc.aio.StreamStreamCall) -> None:
        # The first ack says what the collector already stores and how large a batch may be.
        await self._welcomed.wait()
        sent = self._spool.acked_seq
        last_write = time.monotonic()
        while True:
            pause = self._pause_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            sent = max(sent, self._spool.acked_seq)
            if sent - self._spool.acked_seq >= MAX_UNACKED_RESULTS:
                self._acked.clear()
                await _wait(self._acked, HEARTBEAT_S)
                continue
            self._new_data.clear()
            while self._traces:
                await call.write(stream_pb2.AgentMessage(path_trace=self._traces[0]))
                self._traces.popleft()
                last_write = time.monotonic()
            results = self._spool.read_after(sent, self._batch_size, self._batch_bytes)
            if results:
                self._spool.mark_sent(results[-1].seq)
                await call.write(stream_pb2.AgentMessage(batch=stream_pb2.ResultBatch(results=results)))
                sent = results[-1].seq
                last_write = time.monotonic()
                continue
            if time.monotonic() - last_write >= HEARTBEAT_S:
                beat = stream_pb2.Heartbeat(
                    spool_depth=self._spool.depth, dropped_results=self._spool.dropped
                )
                await call.write(stream_pb2.AgentMessage(heartbeat=beat))
                last_write = time.monotonic()
            await _wait(self._new_data, HEARTBEAT_S)


def pause_s(pause_ms: int) -> float:
    """How long to hold back on a collector's slow-down, in seconds, bounded by MAX_PAUSE_S."""
    return min(pause_ms / 1000.0, MAX_PAUSE_S)


class StreamEnded(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


async def _final_status(call: grpc.aio.StreamStreamCall, exc: grpc.aio.AioRpcError) -> StreamEnded:
    """The status the collector ended the call with: a write racing its abort only says INTERNAL."""
    try:
        code = await asyncio.wait_for(call.code(), 2.0)
        details = await asyncio.wait_for(call.details(), 2.0)
    except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return StreamEnded(exc.code(), exc.details() or "")
    if code is None or code == grpc.StatusCode.OK:
        return StreamEnded(exc.code(), exc.details() or "")
    return StreamEnded(code, details or "")


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
