"""Fresh-connection HTTPS probes per second: the agent's probe engine vs a minimal raw client
and vs blackbox_exporter, all three against the same server in the same run.

    .venv/bin/python bench/probe_rate.py [--seconds 8] [--concurrency 64] [--in-flight 1000]

The raw client and the engine run in this process on uvloop (as the agent does); the HTTPS
server runs in a separate process. The three clients alternate in short rounds so drift hits
them alike:
  raw       asyncio open_connection(ssl=verifying context) + GET + read to EOF, nothing else
  engine    run_probe(http probe): resolve, connect, handshake, chain inspection and
            verification, GET (httpx, h2 offered), streamed body, assertions, a filled ProbeResult
  blackbox  Debian's prometheus-blackbox-exporter, its /probe (http prober, a fresh
            connection per probe, the same CA) asked over keep-alive by this process; its CPU
            is the exporter process's own (the asking side is not counted)
Printed: probes/s and client CPU per probe for each; targets: engine >= 0.5x raw (by client
CPU), engine CPU per probe <= blackbox_exporter's.

Then the RSS of a fresh agent-like process (one ProbeContext) holding 1,000 HTTPS probes in
flight at once (the server holds each response), on uvloop and on the stock loop: target <=
150 MB (on the agent's loop).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "bench.test"
BODY = b"ok" * 64


# Server (separate process) ------------------------------------------------------------------


def _serve(certfile: str, keyfile: str, hold_s: float, port_out: mp.connection.Connection) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if hold_s:
                await asyncio.sleep(hold_s)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    serve_tls_forever(handle, certfile, keyfile, port_out)


def serve_tls_forever(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    certfile: str,
    keyfile: str,
    port_out: mp.connection.Connection,
) -> None:
    """Serve `handle` over TLS on 127.0.0.1 under uvloop, sending the port back; never returns."""
    import uvloop

    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx, backlog=4096)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


def start_server(certfile: str, keyfile: str, hold_s: float = 0.0) -> tuple[mp.process.BaseProcess, int]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(certfile, keyfile, hold_s, child), daemon=True)
    proc.start()
    if not parent.poll(30):
        raise RuntimeError("bench server did not start")
    return proc, int(parent.recv())


# Clients ------------------------------------------------------------------------------------


def raw_client(port: int, ca_pem: str) -> Callable[[], Awaitable[None]]:
    ctx = ssl.create_default_context(cadata=ca_pem)
    request = f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()

    async def once() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=HOST)
        writer.write(request)
        while await reader.read(65536):
            pass
        writer.close()

    return once


def engine_client(port: int, ca_pem: str) -> Callable[[], Awaitable[None]]:
    from probe_agent.probes import PROBE_TYPES
    from probe_agent.probes.base import run_probe
    from probe_agent.probes.context import ProbeContext
    from probenet.v1.probe_pb2 import CheckSpec, Outcome

    spec = CheckSpec(id="bench", probe="http", target=f"https://{HOST}:{port}/")
    spec.resolve[HOST] = "127.0.0.1"
    spec.tls.ca_pem = ca_pem
    spec.timeout.FromSeconds(10)
    ctx = ProbeContext()
    probe = PROBE_TYPES["http"]

    async def once() -> None:
        result = await run_probe(probe, spec, ctx)
        if result.outcome != Outcome.OUTCOME_SUCCESS:
            raise RuntimeError(f"probe failed: {result.error}")

    return once


BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"


def _process_cpu_s(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_blackbox(directory: Path, ca_pem: str) -> tuple[subprocess.Popen[bytes], int]:
    ca_file = directory / "bb-ca.pem"
    ca_file.write_text(ca_pem)
    config = directory / "blackbox.yml"
    config.write_text(
        "modules:\n  https_fresh:\n    prober: http\n    timeout: 10s\n    http:\n"
        "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
        f"      tls_config:\n        ca_file: {ca_file}\n        server_name: {HOST}\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("blackbox_exporter did not start")


def blackbox_client(bb_port: int, target_port: int) -> Callable[[], Awaitable[None]]:
    """One /probe per call over this task's keep-alive connection to the exporter."""
    request = (
        f"GET /probe?module=https_fresh&target=https://127.0.0.1:{target_port}/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{bb_port}\r\n\r\n"
    ).encode()
    connections: dict[asyncio.Task[object] | None, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def once() -> None:
        task = asyncio.current_task()
        if task not in connections:
            connections[task] = await asyncio.open_connection("127.0.0.1", bb_port)
        reader, writer = connections[task]
        writer.write(request)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        body = await _read_body(reader, head)
        if b"probe_success 1" not in body:
            raise RuntimeError(f"blackbox probe failed: {body[-300:]!r}")

    return once


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """A response body framed by Content-Length or chunked (Go's net/http uses both)."""
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":")[1]))
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size + 2)
    await reader.readuntil(b"\r\n")
    return body


async def measure(
    once: Callable[[], Awaitable[None]],
    seconds: float,
    concurrency: int,
    cpu_s: Callable[[], float] = time.process_time,
) -> tuple[int, float, float]:
    """(completed, wall seconds, client CPU seconds) for `concurrency` loops over `once`;
    `cpu_s` reads the client's CPU clock (this process's by default)."""
    stop = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await once()
            done += 1

    cpu, wall = cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - wall, cpu_s() - cpu


async def compare(
    port: int,
    ca_pem: str,
    seconds: float,
    concurrency: int,
    rounds: int,
    *,
    blackbox: tuple[int, int] | None = None,
) -> dict[str, list[float]]:
    clients: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], float]]] = {
        "raw": (raw_client(port, ca_pem), time.process_time),
        "engine": (engine_client(port, ca_pem), time.process_time),
    }
    if blackbox is not None:
        bb_pid, bb_port = blackbox
        clients["blackbox"] = (blackbox_client(bb_port, port), lambda: _process_cpu_s(bb_pid))
    for once, _ in clients.values():  # warm up: contexts, trust store, imports
        await asyncio.gather(*(once() for _ in range(8)))
    totals = {name: [0.0, 0.0, 0.0] for name in clients}
    for _ in range(rounds):
        for name, (once, cpu_s) in clients.items():
            done, wall, cpu = await measure(once, seconds / rounds, concurrency, cpu_s)
            totals[name][0] += done
            totals[name][1] += wall
            totals[name][2] += cpu
    return totals


# RSS with N probes in flight (fresh process) ---------------------------------------------------


def _rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _in_flight_child(port: int, ca_pem: str, count: int, loop: str, out: mp.connection.Connection) -> None:
    import uvloop

    from probe_agent.probes import PROBE_TYPES
    from probe_agent.probes.base import run_probe
    from probe_agent.probes.context import ProbeContext
    from probenet.v1.probe_pb2 import CheckSpec, Outcome

    async def main() -> None:
        spec = CheckSpec(id="bench", probe="http", target=f"https://{HOST}:{port}/")
        spec.resolve[HOST] = "127.0.0.1"
        spec.tls.ca_pem = ca_pem
        spec.timeout.FromSeconds(30)
        ctx = ProbeContext()
        probe = PROBE_TYPES["http"]
        await run_probe(probe, spec, ctx)  # warm: trust store, contexts, imports
        idle = _rss_kib()
        tasks = [asyncio.ensure_future(run_probe(probe, spec, ctx)) for _ in range(count)]
        peak, in_flight_at_peak = 0, 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(t.done() for t in tasks):
            await asyncio.sleep(0.2)
            pending = sum(not t.done() for t in tasks)
            rss = _rss_kib()
            if pending == count and rss > peak:
                peak, in_flight_at_peak = rss, pending
        results = await asyncio.gather(*tasks)
        ok = sum(r.outcome == Outcome.OUTCOME_SUCCESS for r in results)
        out.send((idle, peak, in_flight_at_peak, ok))

    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def in_flight_rss(
    certfile: str, keyfile: str, ca_pem: str, count: int, loop: str
) -> tuple[int, int, int, int]:
    server, port = start_server(certfile, keyfile, hold_s=6.0)
    try:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_in_flight_child, args=(port, ca_pem, count, loop, child))
        proc.start()
        if not parent.poll(60):
            raise RuntimeError("in-flight child did not report")
        idle, peak, in_flight, ok = parent.recv()
        proc.join(10)
        return idle, peak, in_flight, ok
    finally:
        server.terminate()
        server.join(5)


# Main ---------------------------------------------------------------------------------------------


def make_certs(directory: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(HOST)
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    keyfile.write_bytes(leaf.private_key_pem.bytes())
    return str(certfile), str(keyfile), ca.cert_pem.bytes().decode()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measuring time per client, split in rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternations raw/engine (spreads machine noise)"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--no-blackbox", action="store_true", help="leave blackbox_exporter out")
    parser.add_argument("--loops", default="uvloop,asyncio", help="event loops for the in-flight RSS")
    args = parser.parse_args()
    import uvloop

    use_blackbox = not args.no_blackbox and Path(BLACKBOX).exists()
    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile, ca_pem = make_certs(Path(tmp))
        server, port = start_server(certfile, keyfile)
        bb = start_blackbox(Path(tmp), ca_pem) if use_blackbox else None
        try:
            totals = uvloop.run(
                compare(
                    port,
                    ca_pem,
                    args.seconds,
                    args.concurrency,
                    args.rounds,
                    blackbox=(bb[0].pid, bb[1]) if bb else None,
                )
            )
            server_rss = _rss_kib(server.pid or 0)
        finally:
            server.terminate()
            server.join(5)
            if bb is not None:
                bb[0].terminate()
                bb[0].wait(10)
        rss = {
            loop: in_flight_rss(certfile, keyfile, ca_pem, args.in_flight, loop)
            for loop in args.loops.split(",")
        }
    report(args, totals, server_rss, rss)
    return 0


def report(
    args: argparse.Namespace,
    totals: dict[str, list[float]],
    server_rss: int,
    rss: dict[str, tuple[int, int, int, int]],
) -> None:
    rate = {name: done / wall for name, (done, wall, _) in totals.items()}
    cpu_ms = {name: cpu / done * 1000 for name, (done, _, cpu) in totals.items()}
    labels = {
        "raw": "raw asyncio+ssl client",
        "engine": "probenet probe engine",
        "blackbox": "blackbox_exporter",
    }
    print(f"fresh-connection HTTPS GET, {args.concurrency} in flight, server in its own process")
    for name in totals:
        print(f"  {labels[name]:23}: {rate[name]:7.0f} probes/s   {cpu_ms[name]:.2f} ms client CPU/probe")
    print(
        f"  engine/raw by client CPU  : {cpu_ms['raw'] / cpu_ms['engine']:5.2f}   (target >= 0.5;"
        f" by wall-clock rate {rate['engine'] / rate['raw']:.2f})"
    )
    if "blackbox" in cpu_ms:
        print(f"  engine/blackbox CPU/probe : {cpu_ms['engine'] / cpu_ms['blackbox']:5.2f}   (target <= 1.0)")
    print(
        "  client-CPU-bound capacity per core: "
        + ", ".join(f"{name} {1000 / cpu_ms[name]:.0f}/s" for name in totals)
        + " (on 2 cores the Python server's handshakes bound the wall-clock rates)"
    )
    print(f"  (server process RSS {server_rss / 1024:.0f} MB)")
    for loop, (idle, peak, in_flight, ok) in rss.items():
        print(f"agent process with {in_flight} HTTPS probes in flight ({loop}):")
        print(
            f"  RSS idle {idle / 1024:.0f} MB, with probes in flight {peak / 1024:.0f} MB (target <= 150 MB)"
        )
        print(f"  {ok}/{args.in_flight} probes succeeded once the server answered")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::ResourceWarning")
    raise SystemExit(main())
