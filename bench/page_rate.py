"""Page probes per second for a 30-asset HTTPS page: keep-alive connection reuse vs a fresh
connection per asset, measured in the same run.

    .venv/bin/python bench/page_rate.py [--seconds 8] [--rounds 4] [--concurrency 4] [--assets 30]

The server (separate process, uvloop) serves the page and its assets on one HTTPS host and
honours keep-alive, like the lab's targets and any real web server. The agent side runs the
page probe through run_probe on uvloop, `--concurrency` pages at a time, alternating short
rounds of the two modes so machine noise hits both alike:
  reuse  the page probe as shipped: up to 6 keep-alive connections per host, reused
  fresh  the same probe with reuse off: one TCP+TLS handshake per asset (the old behaviour)
Printed: page probes/s and client CPU per page for each, the ratio reuse/fresh, and the
connections the server accepted per page in each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.probe_rate import HOST, make_certs, measure, serve_tls_forever

ASSET = b"\x89PNG" + bytes(2000)


def _serve(
    certfile: str,
    keyfile: str,
    assets: int,
    port_out: mp.connection.Connection,
    counter: mp.sharedctypes.Synchronized[int],
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with counter.get_lock():
            counter.value += 1
        port = writer.get_extra_info("sockname")[1]
        page = "".join(f'<img src="https://{HOST}:{port}/a{i}.png">' for i in range(assets)).encode()
        try:
            for _ in range(10_000):
                head = await reader.readuntil(b"\r\n\r\n")
                body, ctype = (page, b"text/html") if head.startswith(b"GET / ") else (ASSET, b"image/png")
                close = b"connection: close" in head.lower()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s"
                    % (ctype, len(body), b"close" if close else b"keep-alive", body)
                )
                await writer.drain()
                if close:
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    serve_tls_forever(handle, certfile, keyfile, port_out)


def page_client(port: int, ca_pem: str, *, reuse: bool) -> Callable[[], Awaitable[None]]:
    from probe_agent.probes.base import run_probe
    from probe_agent.probes.context import ProbeContext
    from probe_agent.probes.page import load_page
    from probenet.v1.probe_pb2 import CheckSpec, Outcome

    spec = CheckSpec(id="bench", probe="page", target=f"https://{HOST}:{port}/")
    spec.resolve[HOST] = "127.0.0.1"
    spec.tls.ca_pem = ca_pem
    spec.timeout.FromSeconds(20)
    ctx = ProbeContext()
    probe = functools.partial(load_page, reuse_connections=reuse)

    async def once() -> None:
        result = await run_probe(probe, spec, ctx)
        if result.outcome != Outcome.OUTCOME_SUCCESS or result.page.resources_failed:
            raise RuntimeError(f"page probe failed: {result.error}")

    return once


async def compare(
    port: int, ca_pem: str, args: argparse.Namespace, counter: mp.sharedctypes.Synchronized[int]
) -> dict[str, list[float]]:
    clients = {
        "reuse": page_client(port, ca_pem, reuse=True),
        "fresh": page_client(port, ca_pem, reuse=False),
    }
    for once in clients.values():  # warm up: contexts, trust store, imports
        await once()
    totals = {name: [0.0, 0.0, 0.0, 0.0] for name in clients}  # pages, wall, cpu, connections
    for _ in range(args.rounds):
        for name, once in clients.items():
            before = counter.value
            done, wall, cpu = await measure(once, args.seconds / args.rounds, args.concurrency)
            totals[name][0] += done
            totals[name][1] += wall
            totals[name][2] += cpu
            totals[name][3] += counter.value - before
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per mode, split in rounds")
    parser.add_argument("--rounds", type=int, default=4, help="alternations reuse/fresh")
    parser.add_argument("--concurrency", type=int, default=4, help="pages in flight")
    parser.add_argument("--assets", type=int, default=30)
    args = parser.parse_args()
    import uvloop

    mpctx = mp.get_context("spawn")
    counter = mpctx.Value("q", 0)
    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile, ca_pem = make_certs(Path(tmp))
        parent, child = mpctx.Pipe()
        server = mpctx.Process(
            target=_serve, args=(certfile, keyfile, args.assets, child, counter), daemon=True
        )
        server.start()
        try:
            if not parent.poll(30):
                raise RuntimeError("bench server did not start")
            port = int(parent.recv())
            totals = uvloop.run(compare(port, ca_pem, args, counter))
        finally:
            server.terminate()
            server.join(5)

    rate = {name: pages / wall for name, (pages, wall, _, _) in totals.items()}
    cpu_ms = {name: cpu / pages * 1000 for name, (pages, _, cpu, _) in totals.items()}
    conns = {name: c / pages for name, (pages, _, _, c) in totals.items()}
    print(f"page probe, {args.assets} HTTPS assets on one host, {args.concurrency} pages in flight, uvloop")
    for name, label in (("reuse", "keep-alive reuse (shipped)"), ("fresh", "fresh connection per asset")):
        print(
            f"  {label:28}: {rate[name]:6.1f} pages/s   {cpu_ms[name]:6.1f} ms client CPU/page"
            f"   {conns[name]:4.1f} connections/page"
        )
    print(f"  ratio reuse/fresh pages/s     : {rate['reuse'] / rate['fresh']:6.2f}")
    print(f"  ratio fresh/reuse CPU per page: {cpu_ms['fresh'] / cpu_ms['reuse']:6.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::ResourceWarning")
    raise SystemExit(main())
