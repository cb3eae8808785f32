"""Page probes per second for a 30-asset HTTPS page on Debian's nginx, over HTTP/2 and over
HTTP/1.1, against a fresh connection per asset, measured in the same run.

    .venv/bin/python bench/page_rate.py [--seconds 8] [--rounds 4] [--concurrency 4] [--assets 30]

nginx (installed by .ci/install-servers.sh) serves the page and its assets on 127.0.0.1 on
two ports with the same certificate: one offering h2 and HTTP/1.1 by ALPN, one HTTP/1.1 only.
The page probe runs through run_probe on uvloop, `--concurrency` pages at a time, the modes
alternating in short rounds so machine noise hits them alike:
  h2      the page probe as shipped, nginx offering h2: every asset multiplexed on one connection
  http/1  the page probe as shipped, HTTP/1.1 only: up to 6 keep-alive connections, reused
  fresh   HTTP/1.1 with reuse off: one TCP+TLS handshake per asset (the baseline)
Printed: page probes/s, client CPU per page and connections opened per page for each, and
the ratios against the fresh baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.probe_rate import HOST, make_certs, measure

NGINX = "/usr/sbin/nginx"
ASSET = b"\x89PNG" + bytes(2000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def nginx(root: Path, certfile: str, keyfile: str, assets: int) -> Iterator[tuple[int, int]]:
    """nginx in the foreground on (h2 port, HTTP/1.1-only port); stopped on exit."""
    root.chmod(0o755)  # nginx's workers drop root privileges and must read the site
    docroot = root / "htdocs"
    docroot.mkdir(mode=0o755)
    (docroot / "index.html").write_text(
        "<html><body>" + "".join(f'<img src="/a{i}.png">' for i in range(assets)) + "</body></html>"
    )
    for i in range(assets):
        (docroot / f"a{i}.png").write_bytes(ASSET)
    h2_port, h1_port = _free_port(), _free_port()
    ssl = f"ssl_certificate {certfile}; ssl_certificate_key {keyfile}; root {docroot};"
    conf = root / "nginx.conf"
    conf.write_text(
        f"daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n"
        f"  fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n"
        "  types { text/html html; image/png png; } keepalive_requests 10000;\n"
        f"  server {{ listen 127.0.0.1:{h2_port} ssl http2; {ssl} }}\n"
        f"  server {{ listen 127.0.0.1:{h1_port} ssl; {ssl} }}\n}}\n"
    )
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)], start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not all(_listening(p) for p in (h2_port, h1_port)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {(root / 'error.log').read_text(errors='replace')}")
            time.sleep(0.05)
        yield h2_port, h1_port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def page_client(port: int, ca_pem: str, *, reuse: bool, opened: list[int]) -> Callable[[], Awaitable[None]]:
    from probe_agent.probes.base import run_probe
    from probe_agent.probes.context import ProbeContext
    from probe_agent.probes.page import load_page
    from probenet.v1.probe_pb2 import CheckSpec, Outcome, ProbeResult

    spec = CheckSpec(id="bench", probe="page", target=f"https://{HOST}:{port}/")
    spec.resolve[HOST] = "127.0.0.1"
    spec.tls.ca_pem = ca_pem
    spec.timeout.FromSeconds(20)
    ctx = ProbeContext()

    async def probe(spec: CheckSpec, ctx: ProbeContext, result: ProbeResult) -> None:
        new, _ = await load_page(spec, ctx, result, reuse_connections=reuse)
        opened[0] += new + 1  # and the document's

    async def once() -> None:
        result = await run_probe(probe, spec, ctx)
        if result.outcome != Outcome.OUTCOME_SUCCESS or result.page.resources_failed:
            raise RuntimeError(f"page probe failed: {result.error}")

    return once


async def compare(
    h2_port: int, h1_port: int, ca_pem: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    opened = {name: [0] for name in ("h2", "http/1", "fresh")}
    clients = {
        "h2": page_client(h2_port, ca_pem, reuse=True, opened=opened["h2"]),
        "http/1": page_client(h1_port, ca_pem, reuse=True, opened=opened["http/1"]),
        "fresh": page_client(h1_port, ca_pem, reuse=False, opened=opened["fresh"]),
    }
    for once in clients.values():  # warm up: contexts, trust store, imports
        await once()
    totals = {name: [0.0, 0.0, 0.0, 0.0] for name in clients}  # pages, wall, cpu, connections
    for _ in range(args.rounds):
        for name, once in clients.items():
            before = opened[name][0]
            done, wall, cpu = await measure(once, args.seconds / args.rounds, args.concurrency)
            totals[name][0] += done
            totals[name][1] += wall
            totals[name][2] += cpu
            totals[name][3] += opened[name][0] - before
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per mode, split in rounds")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the modes")
    parser.add_argument("--concurrency", type=int, default=4, help="pages in flight")
    parser.add_argument("--assets", type=int, default=30)
    args = parser.parse_args()
    if not Path(NGINX).exists():
        print(f"{NGINX} missing: run .ci/install-servers.sh", file=sys.stderr)
        return 2
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile, ca_pem = make_certs(Path(tmp))
        with nginx(Path(tmp), certfile, keyfile, args.assets) as (h2_port, h1_port):
            totals = uvloop.run(compare(h2_port, h1_port, ca_pem, args))

    rate = {name: pages / wall for name, (pages, wall, _, _) in totals.items()}
    cpu_ms = {name: cpu / pages * 1000 for name, (pages, _, cpu, _) in totals.items()}
    conns = {name: c / pages for name, (pages, _, _, c) in totals.items()}
    print(f"page probe, {args.assets} HTTPS assets on nginx, {args.concurrency} pages in flight, uvloop")
    labels = {
        "h2": "HTTP/2 (one connection)",
        "http/1": "HTTP/1.1 keep-alive",
        "fresh": "fresh connection per asset",
    }
    for name, label in labels.items():
        print(
            f"  {label:27}: {rate[name]:6.1f} pages/s   {cpu_ms[name]:6.1f} ms client CPU/page"
            f"   {conns[name]:4.1f} connections/page"
        )
    for name in ("h2", "http/1"):
        print(
            f"  {name:6} vs fresh: pages/s x{rate[name] / rate['fresh']:.2f}, "
            f"CPU per page x{cpu_ms[name] / cpu_ms['fresh']:.2f}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::ResourceWarning")
    raise SystemExit(main())
