"""Fresh-connection HTTPS probes per second: the agent's probe engine vs a minimal raw client.

    .venv/bin/python bench/probe_rate.py [--seconds 4] [--concurrency 64] [--in-flight 1000]

Both clients run in this process on uvloop (as the agent does), against the same HTTPS
server running in a separate process, alternating in short rounds so drift hits both alike:
  raw     asyncio open_connection(ssl=verifying context) + GET + read to EOF, nothing else
  engine  run_probe(http probe): resolve, connect, handshake, chain inspection and
          verification, GET, streamed body, assertions, a filled ProbeResult
The ratio engine/raw is printed (target >= 0.6), with client CPU per probe for each.

Then the RSS of a fresh agent-like process (uvloop, one ProbeContext) holding 1,000 HTTPS
probes in flight at once (the server holds each response): target <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import ssl
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


async def measure(
    once: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> tuple[int, float, float]:
    """(completed, wall seconds, client CPU seconds) for `concurrency` loops over `once`."""
    stop = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await once()
            done += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - wall, time.process_time() - cpu


async def compare(
    port: int, ca_pem: str, seconds: float, concurrency: int, rounds: int
) -> dict[str, list[float]]:
    clients = {"raw": raw_client(port, ca_pem), "engine": engine_client(port, ca_pem)}
    for once in clients.values():  # warm up: contexts, trust store, imports
        await asyncio.gather(*(once() for _ in range(8)))
    totals = {name: [0.0, 0.0, 0.0] for name in clients}
    for _ in range(rounds):
        for name, once in clients.items():
            done, wall, cpu = await measure(once, seconds / rounds, concurrency)
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


def _in_flight_child(port: int, ca_pem: str, count: int, out: mp.connection.Connection) -> None:
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

    uvloop.run(main())


def in_flight_rss(certfile: str, keyfile: str, ca_pem: str, count: int) -> tuple[int, int, int, int]:
    server, port = start_server(certfile, keyfile, hold_s=6.0)
    try:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_in_flight_child, args=(port, ca_pem, count, child))
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
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile, ca_pem = make_certs(Path(tmp))
        server, port = start_server(certfile, keyfile)
        try:
            totals = uvloop.run(compare(port, ca_pem, args.seconds, args.concurrency, args.rounds))
            server_rss = _rss_kib(server.pid or 0)
        finally:
            server.terminate()
            server.join(5)
        idle, peak, in_flight, ok = in_flight_rss(certfile, keyfile, ca_pem, args.in_flight)

    rate = {name: done / wall for name, (done, wall, _) in totals.items()}
    cpu_ms = {name: cpu / done * 1000 for name, (done, _, cpu) in totals.items()}
    print(f"fresh-connection HTTPS GET, {args.concurrency} in flight, uvloop, server in its own process")
    print(f"  raw asyncio+ssl client : {rate['raw']:7.0f} probes/s   {cpu_ms['raw']:.2f} ms client CPU/probe")
    print(
        f"  probenet probe engine  : {rate['engine']:7.0f} probes/s   {cpu_ms['engine']:.2f} ms client CPU/probe"
    )
    print(f"  ratio engine/raw       : {rate['engine'] / rate['raw']:7.2f}   (target >= 0.6)")
    print(
        f"  ratio by client CPU    : {cpu_ms['raw'] / cpu_ms['engine']:7.2f}   (raw CPU/probe over engine CPU/probe)"
    )
    print(
        f"  client-CPU-bound capacity per core: raw {1000 / cpu_ms['raw']:.0f}/s, engine {1000 / cpu_ms['engine']:.0f}/s"
        " (on 2 cores the Python server's handshakes bound the wall-clock rates)"
    )
    print(f"  (server process RSS {server_rss / 1024:.0f} MB)")
    print(f"agent process with {in_flight} HTTPS probes in flight (uvloop):")
    print(f"  RSS idle {idle / 1024:.0f} MB, with probes in flight {peak / 1024:.0f} MB (target <= 150 MB)")
    print(f"  {ok}/{args.in_flight} probes succeeded once the server answered")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::ResourceWarning")
    raise SystemExit(main())
