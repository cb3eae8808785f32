"""grpc probe: the standard `grpc.health.v1.Health/Check`, over one connection the probe owns.

The call is made with the h2 library on a socket this probe connected (the check's resolver,
happy eyeballs) and, unless `plaintext`, a TLS handshake whose presented chain is judged
exactly as by the tls probe, before anything is sent. grpcio's channel would do its own name
resolution and its own certificate verification, so neither the check's resolver nor the
chain judgement would be the ones measured. The messages are grpcio-health-checking's.

Outcome: `SERVING` is success; `NOT_SERVING`/`UNKNOWN` is `grpc_not_serving`; `SERVICE_UNKNOWN`
(Watch) or the call status `NOT_FOUND` (what Check answers for an unknown service) is
`grpc_service_unknown`; any other non-OK status (`UNIMPLEMENTED` when the server has no health
service, ...) or a broken HTTP/2 exchange is `grpc_error`, with the status code recorded.
Phases: dns, connect, tls, ttfb (response headers), transfer (to the end of the call).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from grpc_health.v1 import health_pb2

from probe_agent.probes import netio
from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tls import fail_unless_trusted, open_socket, parse_target, start_tls
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

CHECK_PATH = "/grpc.health.v1.Health/Check"
MAX_RESPONSE_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
USER_AGENT = "probenet/0.1 grpc-health"
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_SERVING = health_pb2.HealthCheckResponse.ServingStatus
_STATUS_CLASS: dict[int, FailureClass.ValueType] = {
    _SERVING.NOT_SERVING: FailureClass.GRPC_NOT_SERVING,
    _SERVING.UNKNOWN: FailureClass.GRPC_NOT_SERVING,
    _SERVING.SERVICE_UNKNOWN: FailureClass.GRPC_SERVICE_UNKNOWN,
}


@dataclass
class _Call:
    """One call on its connection, and what came back: HTTP status, grpc-status/-message (from the
    headers of a trailers-only response, or the trailers) and the response message bytes."""

    conn: h2.connection.H2Connection
    stream_id: int
    result: ProbeResult
    start: float = field(default_factory=time.perf_counter)
    http_status: int = 0
    grpc_status: int | None = None
    grpc_message: str = ""
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host, port = parse_target(spec.target, default_port=None)
    opts = spec.grpc
    result.failure_host = host
    result.grpc.service = opts.service
    sock = await open_socket(host, port, spec, ctx, result)
    result.grpc.remote_addr = netio.format_peer(sock)
    if opts.plaintext:
        reader, writer = await asyncio.open_connection(sock=sock)
    else:
        server_name = spec.tls.server_name or host
        reader, writer, report = await start_tls(
            sock, ctx, spec, result, server_name=server_name, alpn=("h2",)
        )
        if not fail_unless_trusted(result, report, spec, host):
            writer.transport.abort()
            return
    try:
        if not opts.plaintext and result.tls.alpn != "h2":
            raise ProbeFailure(FailureClass.GRPC_ERROR, "the server did not negotiate h2 (ALPN)", host)
        call = await _check(
            reader, writer, result, authority=f"{host}:{port}", service=opts.service, tls=not opts.plaintext
        )
    finally:
        writer.transport.abort()
    _judge(call, result, host)


def _judge(call: _Call, result: ProbeResult, host: str) -> None:
    if call.http_status != 200:
        raise ProbeFailure(FailureClass.GRPC_ERROR, f"HTTP status {call.http_status} instead of 200", host)
    if call.grpc_status is None:
        raise ProbeFailure(FailureClass.GRPC_ERROR, "the call ended without a grpc-status", host)
    code = _CODE_NAMES.get(call.grpc_status, str(call.grpc_status))
    result.grpc.rpc_code = code
    detail = f": {call.grpc_message}" if call.grpc_message else ""
    if call.grpc_status == grpc.StatusCode.NOT_FOUND.value[0]:
        fail(
            result,
            FailureClass.GRPC_SERVICE_UNKNOWN,
            f"health service does not know it ({code}{detail})",
            host,
        )
        return
    if call.grpc_status != grpc.StatusCode.OK.value[0]:
        fail(result, FailureClass.GRPC_ERROR, f"Health/Check failed: {code}{detail}", host)
        return
    response = _decode(call.body, host)
    result.grpc.serving_status = _SERVING.Name(response.status)
    failure_class = _STATUS_CLASS.get(response.status)
    if failure_class is not None:
        fail(result, failure_class, f"health status {result.grpc.serving_status}", host)
    elif result.outcome == Outcome.OUTCOME_UNSPECIFIED:
        result.failure_host = ""


def _decode(body: bytearray, host: str) -> health_pb2.HealthCheckResponse:
    """One length-prefixed, uncompressed gRPC message."""
    if len(body) < 5:
        raise ProbeFailure(FailureClass.GRPC_ERROR, "OK status but no response message", host)
    compressed, length = struct.unpack(">BI", body[:5])
    if compressed or len(body) != 5 + length:
        raise ProbeFailure(FailureClass.GRPC_ERROR, "malformed gRPC response message framing", host)
    try:
        return health_pb2.HealthCheckResponse.FromString(bytes(body[5:]))
    except Exception as exc:  # protobuf's DecodeError
        raise ProbeFailure(FailureClass.GRPC_ERROR, f"undecodable HealthCheckResponse: {exc}", host) from exc


async def _check(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    result: ProbeResult,
    *,
    authority: str,
    service: str,
    tls: bool,
) -> _Call:
    """Send one Health/Check and read its response to the end of the stream."""
    set_phase("rpc")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    call = _Call(conn, conn.get_next_available_stream_id(), result)
    conn.send_headers(
        call.stream_id,
        [
            (":method", "POST"),
            (":scheme", "https" if tls else "http"),
            (":path", CHECK_PATH),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", USER_AGENT),
        ],
    )
    message = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    conn.send_data(call.stream_id, struct.pack(">BI", 0, len(message)) + message, end_stream=True)
    try:
        while not call.ended:
            writer.write(conn.data_to_send())
            await writer.drain()
            data = await reader.read(READ_CHUNK)
            if not data:
                raise ProbeFailure(FailureClass.GRPC_ERROR, "the server closed the connection mid-call")
            for event in conn.receive_data(data):
                _on_event(call, event)
    except h2.exceptions.ProtocolError as exc:
        raise ProbeFailure(FailureClass.GRPC_ERROR, f"HTTP/2 protocol error: {exc}") from exc
    result.timings.transfer_ms = elapsed_ms(call.start) - result.timings.ttfb_ms
    return call


def _on_event(call: _Call, event: h2.events.Event) -> None:
    if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
        headers = {str(k): str(v) for k, v in event.headers or []}
        if isinstance(event, h2.events.ResponseReceived):
            call.result.timings.ttfb_ms = elapsed_ms(call.start)
            call.http_status = int(headers.get(":status", "0") or 0)
        if "grpc-status" in headers:
            call.grpc_status = int(headers["grpc-status"]) if headers["grpc-status"].isdigit() else -1
            call.grpc_message = unquote(headers.get("grpc-message", ""))[:300]
    elif isinstance(event, h2.events.DataReceived):
        call.conn.acknowledge_received_data(event.flow_controlled_length or 0, call.stream_id)
        call.body += event.data or b""
        if len(call.body) > MAX_RESPONSE_BYTES:
            raise ProbeFailure(
                FailureClass.BODY_TOO_LARGE, f"health response over {MAX_RESPONSE_BYTES} bytes"
            )
    elif isinstance(event, h2.events.StreamEnded) and event.stream_id == call.stream_id:
        call.ended = True
    elif isinstance(event, h2.events.StreamReset):
        raise ProbeFailure(
            FailureClass.GRPC_ERROR, f"the server reset the call (HTTP/2 error {event.error_code})"
        )
    elif isinstance(event, h2.events.ConnectionTerminated):
        raise ProbeFailure(
            FailureClass.GRPC_ERROR, f"the server sent GOAWAY (HTTP/2 error {event.error_code})"
        )
