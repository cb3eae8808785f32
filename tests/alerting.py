"""Debian's Alertmanager and Prometheus (installed by .ci/install-alerting.sh), started on
loopback with their storage in a temporary directory, and stopped after."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.procs import Proc, free_port, spawn

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
READY_S = 60.0


def wait_ready(proc: Proc, url: str) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} not ready at {url} within {READY_S}s:\n{proc.output()}")


@contextlib.contextmanager
def alertmanager(workdir: Path, receiver_url: str) -> Iterator[str]:
    """An Alertmanager that groups by alertname and check, flushes within a second, never
    repeats within the test, and sends firing and resolved notifications to `receiver_url`."""
    config: dict[str, Any] = {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "check"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test", "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    with _running(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            "--cluster.listen-address=",  # no gossip: a single instance on loopback
        ],
        workdir,
    ) as url:
        yield url


@contextlib.contextmanager
def prometheus(
    workdir: Path, targets: list[str], interval: str = "1s", rule_files: tuple[Path, ...] = ()
) -> Iterator[str]:
    """A Prometheus scraping `targets` (host:port, path /metrics) every `interval`, evaluating
    the alerting rules of `rule_files`."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(f) for f in rule_files],
        "scrape_configs": [{"job_name": "probenet", "static_configs": [{"targets": targets}]}],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    with _running(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
        ],
        workdir,
    ) as url:
        yield url


@contextlib.contextmanager
def _running(name: str, argv: list[str], workdir: Path) -> Iterator[str]:
    """A Prometheus-family server on a free loopback port, ready (`/-/ready`) before it is used."""
    port = free_port()
    proc = spawn(name, [*argv, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{url}/-/ready")
        yield url
    finally:
        proc.stop()


@contextlib.contextmanager
def post_receiver() -> Iterator[tuple[int, dict[str, list[Any]]]]:
    """A POST receiver on 127.0.0.1 keeping each JSON body by path."""
    bodies: dict[str, list[Any]] = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with lock:
                bodies.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], bodies
    finally:
        server.shutdown()
        server.server_close()
