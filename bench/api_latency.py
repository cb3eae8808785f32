"""API and status page latency at 10,000 checks x 20 regions of recent data in the embedded store.

    .venv/bin/python bench/api_latency.py [--checks 10000] [--regions 20] [--minutes 6] [--seconds 35]

1. A child process creates the store and fills it in bulk, server side (`INSERT ... SELECT FROM
   numbers()`, bounded): one result per check, region and minute (so the minute rollup is filled
   by its materialized view too), a regional outage on 1 % of the checks, a partial page on
   0.4 %, 20 agents and 5,000 past events.
2. A real collector process serves that store with all the checks configured, so the verdict
   engine evaluates every one of them on its tick while the requests run.
3. Round after round for ~35 s (so verdict ticks, every 15 s, land in the measurement), each
   endpoint is called once over one keep-alive connection and, with chromium present, the
   status page is loaded in a headless browser until its grid is drawn. p50/p95 are printed
   against a baseline measured in the same run: `SELECT 1` through the API (the fixed cost of
   one HTTP request plus one store round trip).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
BUDGET_MS = 200.0
CHROMIUM = Path("/usr/bin/chromium")

FILL_RESULTS_SQL = """
INSERT INTO probe_results (started_at, received_at, check_id, probe, target, agent_id, region, seq, outcome,
    failure_class, error, failure_host, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, total_ms, http_status,
    tls_verified, tls_days_left, cert_not_after, page_resources_total, page_resources_failed, page_failed_hosts,
    page_failed_classes)
SELECT
    fromUnixTimestamp64Milli(toInt64({t0} + k * 60000 + (c % 60) * 1000)) AS started_at,
    started_at,
    concat('check-', leftPad(toString(c), 5, '0')),
    if(c % 250 = 1, 'page', 'http'),
    concat('https://t', toString(c), '.test/'),
    concat('r', leftPad(toString(r), 2, '0'), '-1'),
    concat('r', leftPad(toString(r), 2, '0')),
    k * {checks} + c + 1,
    multiIf(c % 100 = 0 AND r = 0, 'failed', c % 250 = 1, 'partial', 'success') AS outcome,
    multiIf(outcome = 'failed', 'tcp_refused', outcome = 'partial', 'subresource_failed', ''),
    if(outcome = 'failed', 'connection refused', ''),
    if(outcome = 'partial', 'cdn.test', ''),
    1 + (c % 7), 3 + (r % 5), 8 + (c % 11),
    if(outcome = 'failed', 0, 20 + (c % 50) + r),
    if(outcome = 'failed', 0, 2 + (k % 3)),
    if(outcome = 'failed', 4, 34 + (c % 50) + r + (k % 3)),
    if(outcome = 'failed', 0, 200),
    1, 10 + (c % 300), started_at + toIntervalDay(10 + (c % 300)),
    if(c % 250 = 1, 40, 0), if(c % 250 = 1, 3, 0),
    if(c % 250 = 1, ['cdn.test'], []), if(c % 250 = 1, ['tls_cert_expired'], [])
FROM (SELECT number % {checks} AS c, intDiv(number, {checks}) % {regions} AS r,
             intDiv(number, {checks} * {regions}) AS k
      FROM numbers({rows}))
"""
FILL_AGENTS_SQL = """
INSERT INTO agents (agent_id, region, version, capabilities, last_seen, spool_depth, dropped_results, last_seq)
SELECT concat('r', leftPad(toString(number), 2, '0'), '-1'), concat('r', leftPad(toString(number), 2, '0')),
       '0.1.0', ['http', 'page', 'tls', 'dns'], now64(3), number * 3, 0, 1
FROM numbers({regions})
"""
FILL_EVENTS_SQL = """
INSERT INTO outage_events (event_id, version, kind, check_id, agent_id, status, scope, regions, cause_class,
    cause_host, cause_error, opened_at, updated_at, closed_at)
SELECT concat('past-', toString(number)), 1, 'check', concat('check-', leftPad(toString(number % {checks}), 5, '0')),
       '', if(number % 3 = 0, 'outage', 'partial'), if(number % 2 = 0, 'regional', 'global'), ['r00'],
       'tcp_refused', 'shop.test', 'connection refused',
       now64(3) - toIntervalSecond(3600 + number * 60), now64(3) - toIntervalSecond(3000 + number * 60),
       now64(3) - toIntervalSecond(3000 + number * 60)
FROM numbers({events})
"""


def fill(store_dir: str, checks: int, regions: int, minutes: int) -> None:
    from collector.store import Store

    store = Store(f"chdb://{store_dir}")
    store.migrate()
    # Results from `minutes` ago up to one minute ahead, so the data stays "recent" for the
    # verdict window during the whole run.
    t0 = int((time.time() - (minutes - 1) * 60) * 1000)
    started = time.perf_counter()
    rows = checks * regions * minutes
    store.command(FILL_RESULTS_SQL.format(t0=t0, checks=checks, regions=regions, rows=rows))
    store.command(FILL_AGENTS_SQL.format(regions=regions))
    store.command(FILL_EVENTS_SQL.format(checks=checks, events=5000))
    store.command("OPTIMIZE TABLE probe_results_1m FINAL")
    print(
        f"filled {rows:,} results ({checks:,} checks x {regions} regions x {minutes} min) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, store_dir: str, checks: int, api_port: int, grpc_port: int) -> Path:
    lines = [
        f"listen: 127.0.0.1:{grpc_port}",
        "insecure: true",
        f"api: {{listen: '127.0.0.1:{api_port}'}}",
        f"store: {{url: 'chdb://{store_dir}'}}",
        "evaluate_every: 15s",
        "checks:",
    ]
    for c in range(checks):
        probe = "page" if c % 250 == 1 else "http"
        lines.append(
            f"  - {{id: check-{c:05d}, probe: {probe}, target: 'https://t{c}.test/', interval: 60s}}"
        )
    path = workdir / "collector.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_collector(config: Path, api_port: int, workdir: Path) -> subprocess.Popen[bytes]:
    log = (workdir / "collector.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "probe-collector"), "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"collector exited:\n{(workdir / 'collector.log').read_text()}")
        try:
            status, _ = request(
                http.client.HTTPConnection("127.0.0.1", api_port, timeout=5), "GET", "/readyz"
            )
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("collector not ready in 120 s")


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def fallback_times(conn: http.client.HTTPConnection, count: int) -> tuple[list[float], int] | None:
    """Before the verdict engine's first tick, /api/v1/status answers from the minute rollup."""
    times = []
    size = 0
    for _ in range(count):
        started = time.perf_counter()
        status, body = request(conn, "GET", "/api/v1/status?limit=100")
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200 or json.loads(body).get("source") != "rollup":
            break
        times.append(elapsed)
        size = len(body)
    return (times, size) if times else None


def wait_for_engine(conn: http.client.HTTPConnection, checks: int) -> float:
    """Wait (bounded) until the verdict engine has judged every check; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < 180:
        status, body = request(conn, "GET", "/api/v1/status")
        doc = json.loads(body) if status == 200 else {}
        if doc.get("source") == "engine" and len(doc.get("checks", [])) >= checks:
            return time.monotonic() - started
        time.sleep(1.0)
    raise SystemExit("the verdict engine did not evaluate every check within 180 s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def metric(text: str, name: str) -> str:
    return next((line.split()[-1] for line in text.splitlines() if line.startswith(name)), "?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=6)
    parser.add_argument("--requests", type=int, default=400, help="at most this many rounds")
    parser.add_argument("--seconds", type=float, default=35.0, help="measure this long (>= 2 verdict ticks)")
    parser.add_argument("--fill", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        fill(args.fill, args.checks, args.regions, args.minutes)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="probenet-api-bench-"))
    store_dir = str(workdir / "store")
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--fill",
                store_dir,
                "--checks",
                str(args.checks),
                "--regions",
                str(args.regions),
                "--minutes",
                str(args.minutes),
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        api_port, grpc_port = free_port(), free_port()
        config = write_config(workdir, store_dir, args.checks, api_port, grpc_port)
        proc = start_collector(config, api_port, workdir)
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=60)
        fallback = fallback_times(conn, 10)
        waited = wait_for_engine(conn, args.checks)
        print(
            f"verdict engine judged all {args.checks:,} checks {waited:.1f} s after the collector was ready"
        )
        results = run_rounds(conn, f"http://127.0.0.1:{api_port}", args.seconds, args.requests, args.checks)
        if fallback:
            results.insert(3, ("GET /api/v1/status before the first tick (rollup)", *fallback))
        _, text = request(conn, "GET", "/metrics")
        report(results, text.decode())
        over = [name for name, times, _ in results if pct(times, 0.95) > BUDGET_MS]
        return 1 if over else 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def endpoint_calls(checks: int) -> list[tuple[str, str, str, bytes | None]]:
    since = int(time.time()) - 86400
    outage_check = "check-00100"
    return [
        ("baseline: SELECT 1 via /api/v1/query", "POST", "/api/v1/query", b'{"sql": "SELECT 1"}'),
        ("GET /healthz", "GET", "/healthz", None),
        ("GET /api/v1/status (all checks)", "GET", "/api/v1/status", None),
        (
            "GET /api/v1/status?limit=100&detail=false (grid)",
            "GET",
            "/api/v1/status?limit=100&detail=false",
            None,
        ),
        ("GET /api/v1/status?q=check-0999", "GET", "/api/v1/status?q=check-0999&limit=200", None),
        ("GET /api/v1/events?open=true", "GET", "/api/v1/events?open=true&limit=500", None),
        ("GET /api/v1/events?since=24h", "GET", f"/api/v1/events?since={since}&limit=200", None),
        ("GET /api/v1/events?check=", "GET", f"/api/v1/events?check={outage_check}&limit=50", None),
        ("GET /api/v1/agents", "GET", "/api/v1/agents", None),
        ("GET /api/v1/checks/{id} (1 h)", "GET", f"/api/v1/checks/{outage_check}?minutes=60", None),
        ("GET /api/v1/checks/{id} (24 h)", "GET", f"/api/v1/checks/{outage_check}?minutes=1440", None),
        ("GET /metrics", "GET", "/metrics", None),
        ("GET /status/ (html)", "GET", "/status/", None),
        ("GET /status/app.js", "GET", "/status/app.js", None),
    ]


def run_rounds(
    conn: http.client.HTTPConnection, base: str, seconds: float, max_rounds: int, checks: int
) -> list[tuple[str, list[float], int]]:
    """Call every endpoint once per round, round after round for `seconds` (bounded by
    `max_rounds`), so verdict ticks and their store queries land in the measurement."""
    calls = endpoint_calls(checks)
    times: dict[str, list[float]] = {name: [] for name, *_ in calls}
    sizes: dict[str, int] = {}
    for _, method, path, body in calls:
        request(conn, method, path, body)  # warm-up
    browser = PageTimer(base) if CHROMIUM.exists() else None
    deadline = time.monotonic() + seconds
    try:
        for _ in range(max_rounds):
            if time.monotonic() > deadline:
                break
            for name, method, path, body in calls:
                started = time.perf_counter()
                status, payload = request(conn, method, path, body)
                times[name].append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise SystemExit(f"{path}: HTTP {status}: {payload[:300]!r}")
                sizes[name] = len(payload)
            if browser is not None:
                times.setdefault(PAGE, []).append(browser.load())
    finally:
        if browser is not None:
            browser.close()
    return [(name, values, sizes.get(name, 0)) for name, values in times.items()]


PAGE = "status page in chromium (navigation to grid drawn)"


class PageTimer:
    def __init__(self, base: str) -> None:
        from playwright.sync_api import sync_playwright

        self.base = base
        self.profile = tempfile.TemporaryDirectory()
        self.playwright = sync_playwright().start()
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        self.context = self.playwright.chromium.launch_persistent_context(
            self.profile.name, executable_path=str(CHROMIUM), args=args, headless=True
        )
        self.page = self.context.new_page()
        self.load()  # warm-up

    def load(self) -> float:
        self.page.goto(f"{self.base}/status/")
        self.page.wait_for_selector('body[data-loaded="true"]', timeout=30_000)
        # From navigation start to the grid and events drawn, as the browser measured it.
        return float(self.page.evaluate("document.body.dataset.drawnMs"))

    def close(self) -> None:
        self.context.close()
        self.playwright.stop()
        self.profile.cleanup()


def report(results: list[tuple[str, list[float], int]], metrics_text: str) -> None:
    base = statistics.median(results[0][1])
    print(
        f"\n{'endpoint':<50} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'x base':>7} {'bytes':>11}  <{BUDGET_MS:.0f} ms"
    )
    for name, times, size in results:
        p50, p95 = pct(times, 0.5), pct(times, 0.95)
        verdict = "ok" if p95 <= BUDGET_MS else "OVER"
        print(f"{name:<50} {len(times):4} {p50:8.1f} {p95:8.1f} {p50 / base:7.1f} {size:11,}  {verdict}")
    ticks = metric(metrics_text, "probenet_evaluation_tick_duration_seconds_sum")
    ticks = f"{float(ticks):.1f}" if ticks != "?" else ticks
    count = metric(metrics_text, "probenet_evaluation_tick_duration_seconds_count")
    print(
        f"\nbaseline p50 {base:.1f} ms; verdict ticks during the run: {count}, total {ticks} s; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    raise SystemExit(main())
