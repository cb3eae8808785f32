"""One verdict evaluation tick at scale, reading the window from the embedded ClickHouse store.

    .venv/bin/python bench/verdict_scale.py [--checks 10000] [--regions 20] [--agents 3] [--history 3]

Fills a fresh chDB store server side (`INSERT ... SELECT FROM numbers()`): every check probed by
every agent every 30 s for the 3-interval window plus `--history` older intervals, a regional
outage on 1 % of the checks (2 regions), a partial page on 0.5 % (1 region) and one impaired
agent that fails everything. Then times `Evaluator.tick` (SQL agent states + engine + event
tracker + event insert) and, as the baseline in the same run, the plain `SELECT count()` scan of
the same window. Prints the tick as a fraction of the 30 s interval (target <= 0.1) and the
ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config import parse_checks  # noqa: E402
from collector.store import Store  # noqa: E402
from collector.verdicts.evaluator import Evaluator  # noqa: E402

INTERVAL = 30.0
WINDOW_INTERVALS = 3
TARGET_FRACTION = 0.1

FILL_SQL = """
INSERT INTO probe_results (started_at, received_at, check_id, probe, target, agent_id, region, seq, outcome,
                           failure_class, error, failure_host, total_ms)
SELECT started_at, started_at, check_id, 'http', concat('https://', check_id, '.example/'), agent_id, region,
       number, outcome, if(outcome = 'success', '', cls), if(outcome = 'success', '', err),
       if(outcome = 'success', '', host), 42
FROM (
    SELECT number,
           number % {rounds:UInt32} AS rnd,
           intDiv(number, {rounds:UInt32}) AS pair,
           pair % {checks:UInt32} AS c,
           intDiv(pair, {checks:UInt32}) AS a,
           intDiv(a, {agents:UInt32}) AS r,
           concat('check-', toString(c)) AS check_id,
           concat('r', leftPad(toString(r), 2, '0')) AS region,
           concat(region, '-', toString(a % {agents:UInt32} + 1)) AS agent_id,
           fromUnixTimestamp64Milli(toInt64(({now:Float64} - ({rounds:UInt32} - rnd) * {interval:Float64}
                                             + 1 + (pair % 997) / 100.0) * 1000)) AS started_at,
           multiIf(a = 7, 'failed',
                   c % 100 = 0 AND r < 2, 'failed',
                   c % 200 = 1 AND r = 3, 'partial',
                   'success') AS outcome,
           if(outcome = 'partial', 'subresource_failed', if(a = 7, 'tcp_timeout', 'tcp_refused')) AS cls,
           concat(cls, ' from ', agent_id) AS err,
           if(outcome = 'partial', 'static.example', concat(check_id, '.example')) AS host
    FROM numbers({rows:UInt64})
)
"""


def fill(store: Store, now: float, size: tuple[int, int, int, int]) -> int:
    checks, regions, agents, rounds = size
    rows = checks * regions * agents * rounds
    store.query(
        FILL_SQL,
        {
            "rounds": rounds,
            "checks": checks,
            "agents": agents,
            "now": now,
            "interval": INTERVAL,
            "rows": rows,
        },
    )
    return rows


def baseline(store: Store, now: float) -> float:
    since = round((now - WINDOW_INTERVALS * INTERVAL) * 1000)
    until = round((now + INTERVAL) * 1000)
    started = time.perf_counter()
    store.query(
        "SELECT count() FROM probe_results WHERE started_at > fromUnixTimestamp64Milli({s:Int64}) "
        "AND started_at <= fromUnixTimestamp64Milli({u:Int64})",
        {"s": since, "u": until},
    )
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    store = Store(f"chdb://{workdir / 'store'}", ttl_days=7)
    await store.run(store.migrate)
    now = math.floor(time.time() / INTERVAL) * INTERVAL
    rounds = WINDOW_INTERVALS + args.history
    started = time.perf_counter()
    rows = await store.run(fill, store, now, (args.checks, args.regions, args.agents, rounds))
    print(
        f"filled {rows:,} results ({args.checks:,} checks x {args.regions} regions x {args.agents} agents x "
        f"{rounds} rounds) in {time.perf_counter() - started:.1f}s"
    )
    specs = parse_checks(
        [
            {"id": f"check-{c}", "probe": "http", "target": f"https://check-{c}.example/", "interval": "30s"}
            for c in range(args.checks)
        ],
        "bench",
    )
    evaluator = Evaluator(store, specs)
    await evaluator.resume()
    tick_times, base_times, cpu_times = [], [], []
    phases: list[dict[str, float]] = []
    for k in range(args.repeat + 1):  # the first run warms up chDB's caches and is not counted
        t0, c0 = time.perf_counter(), time.process_time()
        changes = await evaluator.tick(now + k * 0.001)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        base = await store.run(baseline, store, now)
        if k:
            tick_times.append(elapsed)
            cpu_times.append(cpu)
            base_times.append(base)
            phases.append(evaluator.timings)
        else:
            first_changes = changes
    evaluation = evaluator.latest
    assert evaluation is not None
    statuses: dict[str, int] = {}
    for v in evaluation.verdicts.values():
        statuses[v.status] = statuses.get(v.status, 0) + 1
    tick = statistics.median(tick_times)
    base = statistics.median(base_times)
    print(
        f"verdicts: {statuses}; impaired agents {sorted(evaluation.impaired_agents)}; "
        f"events opened on the first tick: {len(first_changes)}"
    )
    print(f"baseline  SELECT count() over the window: {base * 1000:8.1f} ms")
    print(
        f"tick      SQL agent states + engine + events: {tick * 1000:8.1f} ms "
        f"(median of {len(tick_times)}; runs {', '.join(f'{t * 1000:.0f}' for t in tick_times)} ms)"
    )
    median_run = phases[tick_times.index(tick)] if tick in tick_times else phases[0]
    print(
        "          of which "
        + ", ".join(f"{k.removesuffix('_s')} {v * 1000:.0f} ms" for k, v in median_run.items())
        + f"; process CPU {statistics.median(cpu_times) * 1000:.0f} ms (chDB uses several threads)"
    )
    fraction = tick / INTERVAL
    print(
        f"tick / 30 s interval = {fraction:.3f} (target <= {TARGET_FRACTION}) "
        f"{'OK' if fraction <= TARGET_FRACTION else 'OVER'}"
    )
    print(f"ratio tick / baseline = {tick / base:.1f}x")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--agents", type=int, default=3, help="agents per region")
    parser.add_argument("--history", type=int, default=3, help="older intervals stored before the window")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="verdict-scale-"))
    try:
        asyncio.run(bench(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
