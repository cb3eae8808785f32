"""The collector's HTTP API against a real collector process fed through the agents' gRPC stream."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collector.feed import feed, regional_outage
from tests.e2e.procs import BIN, Collector, stopped_on_exit

TOKEN = "t0ken-for-tests"


def get(base: str, path: str, token: str = "", method: str = "GET", body: Any = None) -> tuple[int, Any, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read().decode()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw, kind
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode()
        return exc.code, json.loads(raw) if raw.startswith("{") else raw, ""


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    workdir: Path = tmp_path_factory.mktemp("api")
    running = Collector(workdir)
    # The verdict engine's first tick is at the next whole day: until then /api/v1/status is the
    # rollup fallback this module tests (the engine's answer is tested by test_statuspage.py).
    running.extra = {
        "api": {"listen": f"127.0.0.1:{running.api_port}", "token": TOKEN},
        "evaluate_every": "24h",
        "checks": [
            {"id": c, "probe": "http", "target": f"https://{c}.test/", "interval": "60s"}
            for c in ("shop", "api", "assets")
        ],
    }
    running.start()
    with stopped_on_exit(running):
        feed(running.address, *regional_outage(time.time()))
        yield running
        assert running.stop() == 0, running.proc.output() if running.proc else ""


def test_health_needs_no_token(collector: Collector) -> None:
    assert get(collector.api, "/healthz")[0] == 200
    assert get(collector.api, "/readyz")[:2] == (200, {"status": "ready"})


def test_data_needs_the_token(collector: Collector) -> None:
    status, body, _ = get(collector.api, "/api/v1/agents")
    assert status == 401
    assert "token" in body["error"]
    assert get(collector.api, "/api/v1/agents", token="wrong")[0] == 401
    assert get(collector.api, "/metrics")[0] == 401


def test_agents(collector: Collector) -> None:
    # The agents table is written every few seconds: wait for all six, bounded.
    deadline = time.monotonic() + 30
    agents: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        agents = get(collector.api, "/api/v1/agents", TOKEN)[1]["agents"]
        if len(agents) == 6:
            break
        time.sleep(0.5)
    by_id = {a["agent_id"]: a for a in agents}
    assert set(by_id) == {"de-1", "de-2", "fr-1", "fr-2", "it-1", "it-2"}
    it1 = by_id["it-1"]
    assert it1["region"] == "it"
    assert it1["version"] == "feed-1"
    assert it1["last_seq"] > 0
    assert it1["impaired"] is False
    assert it1["seconds_since_seen"] >= 0
    assert it1["last_seen"].endswith("Z")


def test_check_detail_has_phases_and_failures_by_class_and_region(collector: Collector) -> None:
    status, detail, _ = get(collector.api, "/api/v1/checks/shop?minutes=10", TOKEN)
    assert status == 200, detail
    assert detail["phases"] == ["dns", "connect", "tls", "ttfb", "transfer", "total"]
    assert detail["latency"], detail
    point = next(p for p in detail["latency"] if p["ttfb"] is not None)
    assert 30 <= point["ttfb"] <= 40
    assert point["dns"] == 2.0
    assert point["failures"] > 0
    assert [(f["class"], f["region"]) for f in detail["failures"]] == [("tcp_refused", "it")]
    assert "connection refused" in detail["failures"][0]["error"]
    regions = {r["region"]: r for r in detail["regions"]}
    assert regions["it"]["latest"] == "failed"
    assert regions["fr"]["failures"] == 0
    assert regions["it"]["agents"] == 2


def test_check_detail_lists_failing_subresource_hosts(collector: Collector) -> None:
    detail = get(collector.api, "/api/v1/checks/assets", TOKEN)[1]
    assert {(h["host"], h["class"]) for h in detail["failed_hosts"]} == {("cdn.test", "tls_cert_expired")}
    assert {r["region"] for r in detail["failed_hosts"]} == {"de", "fr", "it"}


def test_check_detail_errors_are_clear(collector: Collector) -> None:
    status, body, _ = get(collector.api, "/api/v1/checks/nope", TOKEN)
    assert status == 404
    assert "nope" in body["error"]
    status, body, _ = get(collector.api, "/api/v1/checks/shop?minutes=abc", TOKEN)
    assert status == 400
    assert "minutes" in body["error"]


def test_status_shows_the_regional_outage(collector: Collector) -> None:
    status, body, _ = get(collector.api, "/api/v1/status", TOKEN)
    assert status == 200
    assert body["source"] == "rollup"
    checks = {c["check"]: c for c in body["checks"]}
    assert set(body["regions"]) >= {"de", "fr", "it"}
    shop = checks["shop"]
    assert shop["region_states"]["it"] == "DOWN"
    assert shop["region_states"]["fr"] == "UP"
    assert shop["status"] == "outage"
    assert shop["scope"] == "regional"
    assert shop["regions"] == ["it"]
    assert shop["cause"]["class"] == "tcp_refused"
    assert checks["api"]["status"] == "ok"


def test_events_answer(collector: Collector) -> None:
    status, body, _ = get(collector.api, "/api/v1/events", TOKEN)
    assert status == 200
    assert isinstance(body["events"] if isinstance(body, dict) else body, list)


def test_read_only_sql(collector: Collector) -> None:
    status, body, _ = get(
        collector.api,
        "/api/v1/query",
        TOKEN,
        "POST",
        {"sql": "SELECT region, count() AS n FROM probe_results GROUP BY region ORDER BY region"},
    )
    assert status == 200
    assert [r[0] for r in body["rows"]] == ["de", "fr", "it"]
    status, body, _ = get(collector.api, "/api/v1/query", TOKEN, "POST", {"sql": "DROP TABLE probe_results"})
    assert status == 400
    assert "readonly" in body["error"].lower() or "read-only" in body["error"].lower()


def test_metrics_are_prometheus_text(collector: Collector) -> None:
    status, text, kind = get(collector.api, "/metrics", TOKEN)
    assert status == 200
    assert kind.startswith("text/plain")
    for name in (
        "probenet_ingest_rows_total",
        "probenet_ingest_batch_rows_bucket",
        "probenet_ingest_insert_duration_seconds_count",
        "probenet_agent_ack_lag_results",
        'probenet_open_events{scope="regional"}',
        "probenet_ingest_rows_per_second",
    ):
        assert name in text, name
    rows = next(line for line in text.splitlines() if line.startswith("probenet_ingest_rows_total"))
    assert float(rows.split()[-1]) > 0


def test_status_page_files_are_served_without_token(collector: Collector) -> None:
    status, html, kind = get(collector.api, "/status/")
    assert status == 200
    assert kind.startswith("text/html")
    assert "/status/app.js" in html
    for asset in ("/status/app.js", "/status/style.css"):
        assert get(collector.api, asset)[0] == 200
    # No external assets: everything the page loads comes from the collector.
    assert "http://" not in html and "https://" not in html


def test_cli_query_and_status_use_the_api(collector: Collector) -> None:
    import subprocess

    out = subprocess.run(
        [
            str(BIN / "probe-collector"),
            "query",
            "SELECT 1 AS one",
            "--format",
            "json",
            "--api",
            collector.api,
            "--token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"one": 1}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"it": "DOWN", "fr": "UP", "de": "UP"}, ("outage", "regional", ["it"])),
        ({"it": "DOWN", "fr": "PARTIAL"}, ("outage", "global", ["fr", "it"])),
        ({"it": "PARTIAL", "fr": "UP"}, ("partial", "regional", ["it"])),
        ({"it": "DOWN", "fr": "NO_DATA"}, ("outage", "undetermined", ["it"])),
        ({"it": "UP", "fr": "UP"}, ("ok", "", [])),
        ({"it": "NO_DATA"}, ("unknown", "undetermined", [])),
    ],
)
def test_fallback_verdict_follows_the_design_rules(
    states: dict[str, str], expected: tuple[str, str, list[str]]
) -> None:
    from collector.web.status import verdict

    assert verdict(states) == expected


def _explain(collector: Collector, sql: str) -> str:
    literals = {
        "{check:String}": "'shop'",
        "{minutes:UInt32}": "60",
        "{step:UInt32}": "60",
        "{limit:UInt32}": "100",
        "{checks:Array(String)}": "['shop']",
    }
    for param, value in literals.items():
        sql = sql.replace(param, value)
    status, body, _ = get(
        collector.api, "/api/v1/query", TOKEN, "POST", {"sql": f"EXPLAIN indexes = 1 {sql}"}
    )
    assert status == 200, body
    return "\n".join(row[0] for row in body["rows"])


def test_per_check_queries_read_by_primary_key_and_time(collector: Collector) -> None:
    """No request scans the whole results table: per-check queries use the ORDER BY prefix
    (check_id) and every query prunes partitions by time."""
    from collector.web import agents as api
    from collector.web import status as api_fallback

    for sql in (api._GROUPS_SQL, api._LATENCY_SQL, api._HOSTS_SQL, api_fallback._CAUSE_SQL):
        plan = _explain(collector, sql)
        primary = plan[plan.index("PrimaryKey") :]
        assert re.search(r"Condition: .*check_id in (\['shop', 'shop'\]|1-element set)", primary), plan
        assert "Condition: (toDate(started_at) in [" in plan, plan


def test_fallback_status_reads_recent_minutes_of_the_rollup(collector: Collector) -> None:
    from collector.web import status as api_fallback

    plan = _explain(collector, api_fallback._STATUS_SQL)
    assert "ReadFromMergeTree (default.probe_results_1m)" in plan
    assert "probe_results)" not in plan.replace("probe_results_1m)", "")
    assert "Condition: (toDate(minute) in [" in plan, plan
