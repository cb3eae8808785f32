"""Start real collector and agent processes for end-to-end tests, and talk to them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise AssertionError(
                f"{self.name} did not stop within {timeout}s; log:\n{self.output()}"
            ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def spawn(name: str, args: list[str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    handle = log.open("wb")
    popen = subprocess.Popen(
        args,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    handle.close()
    return Proc(name, popen, log)


@dataclass
class Collector:
    workdir: Path
    grpc_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    store_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    proc: Proc | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def write_config(self) -> Path:
        store = self.store_dir or self.workdir / "store"
        config = {
            "listen": self.address,
            "insecure": True,
            "api": {"listen": f"127.0.0.1:{self.api_port}"},
            "store": {"url": f"chdb://{store}", "flush_interval": "200ms"},
            **self.extra,
        }
        path = self.workdir / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, wait: float = 60.0) -> Collector:
        path = self.write_config()
        self.proc = spawn(
            "collector", [str(BIN / "probe-collector"), "serve", "--config", str(path)], self.workdir
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.popen.poll() is not None:
                raise AssertionError(f"collector exited early:\n{self.proc.output()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.api}/readyz", timeout=2) as response,
            ):
                if response.status == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"collector not ready in {wait}s:\n{self.proc.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.stop(sig, timeout)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL through the real `probe-collector query` command."""
        out = subprocess.run(
            [str(BIN / "probe-collector"), "query", sql, "--format", "json", "--api", self.api],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, f"query failed ({out.returncode}): {out.stderr}"
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def start_agent(
    workdir: Path, agent_id: str, region: str, collector: str, checks: list[dict[str, Any]], **extra: Any
) -> Proc:
    config = {
        "agent_id": agent_id,
        "region": region,
        "collector": collector,
        "insecure": True,
        "spool": {"dir": str(workdir / f"spool-{agent_id}")},
        "checks": checks,
        **extra,
    }
    path = workdir / f"agent-{agent_id}.yaml"
    path.write_text(yaml.safe_dump(config))
    return spawn(agent_id, [str(BIN / "probe-agent"), "run", "--config", str(path)], workdir)


def refused_checks(count: int = 4) -> list[dict[str, Any]]:
    """Fast checks against a closed port: each run is a tcp_refused result, a failure being data."""
    closed = free_port()
    return [
        {
            "id": f"refused-{i}",
            "probe": "http",
            "target": f"http://127.0.0.1:{closed}/{i}",
            "interval": "100ms",
            "timeout": "100ms",
        }
        for i in range(count)
    ]


def spool_state(workdir: Path, agent_id: str) -> tuple[int, int, int]:
    """(last seq handed out, results still in the spool, results dropped), read from the spool
    file `start_agent` gives this agent (read-only, so it may run beside the agent)."""
    path = workdir / f"spool-{agent_id}" / "spool.db"
    if not path.exists():
        return 0, 0, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        top, depth = db.execute("SELECT max(seq), count(*) FROM results").fetchone()
    finally:
        db.close()
    last = max(top or 0, meta.get("acked_seq", 0), meta.get("last_seq", 0))
    return last, depth, meta.get("dropped", 0)


def stored_seqs(collector: Collector, agent_id: str) -> dict[str, int]:
    """What the store holds of one agent: rows, distinct seqs, lowest and highest seq."""
    rows = collector.query(
        "SELECT count() AS n, uniqExact(seq) AS distinct_seqs, min(seq) AS lo, max(seq) AS hi "
        f"FROM probe_results WHERE agent_id = '{agent_id}'"
    )
    return {k: int(v) for k, v in rows[0].items()}


def wait_until(predicate: Any, timeout: float, message: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(interval)


@contextlib.contextmanager
def stopped_on_exit(*procs: Proc | Collector) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            target = proc.proc if isinstance(proc, Collector) else proc
            if target is not None and target.popen.poll() is None:
                target.popen.kill()
                target.popen.wait(10)
