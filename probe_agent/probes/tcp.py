"""tcp probe: connect to host:port (happy eyeballs), optionally TLS, optionally send and expect.

Phases `dns, connect, tls`; the exchange after them is timed as `ttfb` (first byte back) and
`transfer` (until `expect` matched). `send` goes out once connected (after the handshake with
`tls`), then the received text is read until the `expect` regex matches: no match before the
server closes or before `max_banner_bytes` is `tcp_expect_failed`, with what was received
recorded as the banner. Without `expect` nothing is read: an accepted connection (and handshake)
is success. The chain of a TLS connection is judged exactly as by the tls probe.
"""

from __future__ import annotations

import asyncio
import re
import time

from probe_agent.limits import BANNER_BYTES
from probe_agent.probes import netio
from probe_agent.probes.base import fail, set_phase
from probe_agent.probes.context import ProbeContext, elapsed_ms
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.tls import fail_unless_trusted, open_socket, parse_target, start_tls
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

DEFAULT_MAX_BANNER_BYTES = BANNER_BYTES  # also what a result keeps of it (limits.py)
# A larger tcp.max_banner_bytes reads further for `expect`; memory per probe stays bounded.
MAX_BANNER_READ = 1 << 20
_ESCAPES = {"\\r": "\r", "\\n": "\n", "\\t": "\t", "\\\\": "\\"}
_ESCAPE_RE = re.compile(r"\\[rnt\\]")


def unescape(text: str) -> str:
    """`send` text as written on a command line: \\r, \\n, \\t and \\\\ stand for themselves."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)


def compile_expect(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ProbeFailure(FailureClass.INTERNAL, f"tcp.expect {pattern!r}: bad regex: {exc}") from exc


async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
    host, port = parse_target(spec.target, default_port=None)
    opts = spec.tcp
    expect = compile_expect(opts.expect) if opts.expect else None
    result.failure_host = host
    sock = await open_socket(host, port, spec, ctx, result)
    result.tcp.remote_addr = netio.format_peer(sock)
    result.tcp.tls = opts.tls
    if opts.tls:
        reader, writer, report = await start_tls(
            sock, ctx, spec, result, server_name=spec.tls.server_name or host, alpn=()
        )
        if not fail_unless_trusted(result, report, spec, host):
            writer.transport.abort()
            return  # nothing is sent to a server whose certificate does not verify
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    try:
        if opts.send:
            writer.write(unescape(opts.send).encode())
            await writer.drain()
        if expect is not None:
            cap = min(opts.max_banner_bytes or DEFAULT_MAX_BANNER_BYTES, MAX_BANNER_READ)
            await _expect(reader, expect, cap, result, host)
    finally:
        writer.transport.abort()
    if result.outcome == Outcome.OUTCOME_UNSPECIFIED:
        result.failure_host = ""


async def _expect(
    reader: asyncio.StreamReader, expect: re.Pattern[str], cap: int, result: ProbeResult, host: str
) -> None:
    """Read until `expect` matches the text so far; tcp_expect_failed at EOF or the cap."""
    set_phase("expect")
    start = time.perf_counter()
    received = bytearray()
    while len(received) < cap:
        chunk = await reader.read(cap - len(received))
        if not chunk:
            break
        if not received:
            result.timings.ttfb_ms = elapsed_ms(start)
        received += chunk
        text = received.decode("utf-8", errors="replace")
        result.tcp.banner = text
        if expect.search(text):
            result.timings.transfer_ms = elapsed_ms(start)
            return
    why = "the server closed the connection" if len(received) < cap else f"{cap} bytes read"
    fail(
        result,
        FailureClass.TCP_EXPECT_FAILED,
        f"no match for {expect.pattern!r} before {why}; received {bytes(received[:200])!r}",
        host,
    )
