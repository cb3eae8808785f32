"""The availability report at scale, from a fresh embedded ClickHouse store.

    .venv/bin/python bench/report_scale.py [--checks 10000] [--regions 20] [--days 90]

Fills the slot rollup `probe_results_1w` server side (`INSERT ... SELECT FROM numbers()`: one day
row per check, region and day, and one for the check as a whole, every 6-minute slot covered but
for a gap on 1 % of the rows, OR-ed into one row per check, region and 7-day week: 2.9 M rows for
90 days) and `outage_events` (an incident of two versions on 2 % of the check-days, 1 in 5 an
outage in two regions, the rest partial in one), every check with an SLO; then merges each week
into one part, as the collector's hourly compaction does. Then times the whole report
(`collector.verdicts.report.report`: the slot read, the event versions, the interval arithmetic,
SLO budget and 1 h / 6 h burn rates, per check and region, the worst regions) over the last 30
days and over all `--days`, against, in the same run, the plain scan of the same rows (`SELECT
check_id, region, count() FROM probe_results_1w ... GROUP BY check_id, region`). Prints seconds
(target < 2 s) and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config import config_from_mapping  # noqa: E402
from collector.store import Store  # noqa: E402
from collector.store.history import compact_rollup, day_rows_insert  # noqa: E402
from collector.verdicts.report import report, scope_of  # noqa: E402

TARGET_S = 2.0
DAY_S = 86_400

SLOTS_SQL = day_rows_insert("""
SELECT toDate({today:Date}) - intDiv(number, {pairs:UInt32}) AS day,
       concat('check-', toString(intDiv(number % {pairs:UInt32}, {regions:UInt32} + 1))) AS check_id,
       if(number % ({regions:UInt32} + 1) = {regions:UInt32}, '',
          concat('r', leftPad(toString(number % ({regions:UInt32} + 1)), 2, '0'))) AS region,
       if(number % 100 = 0, bitShiftLeft(toUInt256(1), 200) - 1, bitShiftLeft(toUInt256(1), 240) - 1) AS slots,
       toUInt64(2880) AS results
FROM numbers({rows:UInt64})
""")
EVENTS_SQL = """
INSERT INTO outage_events (event_id, version, kind, check_id, status, scope, regions, cause_class,
                           cause_host, opened_at, updated_at, closed_at)
SELECT concat('e', toString(n)), v, 'check', concat('check-', toString(intDiv(n, {per_check:UInt32}))),
       if(n % 5 = 0, 'outage', 'partial'), 'regional',
       if(n % 5 = 0, ['r00', 'r01'], [concat('r', leftPad(toString(n % {regions:UInt32}), 2, '0'))]),
       if(n % 5 = 0, 'tcp_refused', 'subresource_failed'), 'host.example',
       opened, opened + toIntervalMinute(20 * (v - 1)), if(v = 2, opened + INTERVAL 20 MINUTE, NULL)
FROM (
    SELECT number AS n,
           toDateTime64({today_s:Int64} - (1 + (n % {per_check:UInt32}) * {spacing:UInt32}) * 86400
                        + 3600 * (n % 20), 3, 'UTC') AS opened
    FROM numbers({events:UInt64})
) ARRAY JOIN [1, 2] AS v
"""


def fill(store: Store, checks: int, regions: int, days: int) -> tuple[int, int]:
    pairs = checks * (regions + 1)  # and the row of the check as a whole (region '')
    today = time.strftime("%Y-%m-%d", time.gmtime())
    store.command(SLOTS_SQL, {"today": today, "pairs": pairs, "regions": regions, "rows": pairs * days})
    per_check = max(1, round(days * 0.02))
    today_s = int(time.time()) // DAY_S * DAY_S
    params = {"regions": regions, "per_check": per_check, "events": checks * per_check, "today_s": today_s}
    store.command(EVENTS_SQL, {**params, "spacing": max(1, days // per_check)})
    return pairs * days, checks * per_check


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="report-scale-"))
    store = Store(f"chdb://{workdir / 'store'}", ttl_days=args.days + 10)
    try:
        store.migrate()
        started = time.perf_counter()
        rows, events = fill(store, args.checks, args.regions, args.days)
        print(
            f"filled {rows:,} day rows (as week rows) and {events:,} events x 2 versions "
            f"in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        weeks = compact_rollup(store)
        print(
            f"compacted {len(weeks)} weeks in {time.perf_counter() - started:.1f} s (the collector does it hourly)"
        )
        config = config_from_mapping(
            {
                "insecure": True,
                "checks": [
                    {"id": f"check-{i}", "probe": "http", "target": f"https://c{i}.example/",
                     "slo": {"target": 99.9, "window": "30d"}}
                    for i in range(args.checks)
                ],
            },
            "bench.yaml",
        )  # fmt: skip
        now = time.time()
        scope = scope_of(config, "*", now)
        for since_days in sorted({30, args.days}):
            since = since_days * DAY_S
            baseline_s, _ = timed(
                lambda s=since: store.query(
                    "SELECT check_id, region, count() FROM probe_results_1w "
                    "WHERE week >= toDate(fromUnixTimestamp({t:Int64})) - 6 GROUP BY check_id, region",
                    {"t": int(now - s)},
                ),
                args.runs,
            )
            report_s, answer = timed(lambda s=since: report(store, scope, s, now), args.runs)
            worst = answer["checks"][0]
            print(
                f"report --since {since_days}d: {report_s:.2f} s (target < {TARGET_S:g} s) for "
                f"{len(answer['checks']):,} checks x {args.regions} regions, {answer['incidents']:,} incidents; "
                f"baseline GROUP BY count() {baseline_s:.2f} s; ratio {report_s / baseline_s:.1f}x; "
                f"worst {worst['check']} {worst['availability']} %"
            )
            if report_s >= TARGET_S:
                print(f"  over the {TARGET_S:g} s target (a loaded machine? compare the ratio)")
        return 0
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
