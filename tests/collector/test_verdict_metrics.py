"""Verdicts as Prometheus series: the families from an evaluation (one-hot status, region up
1/0/NaN, affected regions, impaired vantage points, the series bound), then a real Prometheus
(Debian's) scraping a real collector during an incident and a real agent: the series are
queryable through its HTTP API with the right values, the chart's alerting rules fire on them,
every query of the Grafana dashboard runs, and `promtool check metrics` accepts both /metrics
pages."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric

from collector.verdicts import Cause
from collector.verdicts.model import Evaluation, RegionVerdict, VantageVerdict, Verdict
from collector.web.verdict_metrics import verdict_families
from tests.alerting import PROMTOOL, prometheus
from tests.collector.feed import feed, regional_outage
from tests.e2e.procs import Collector, free_port, start_agent, stopped_on_exit, wait_until
from tests.helm.helm_support import CHART

WAIT_S = 60.0
RULES = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
# A 60 s interval keeps the fed incident fresh (3 intervals) for the whole test.
CHECKS = [
    {"id": "shop", "probe": "http", "target": "https://shop.test/", "interval": "60s"},
    {"id": "api", "probe": "tls", "target": "api.test:443", "interval": "60s"},
    {"id": "assets", "probe": "page", "target": "https://assets.test/", "interval": "60s"},
]


def _samples(families: list[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.name, tuple(s.labels.values())): s.value for f in families for s in f.samples}


def _evaluation() -> Evaluation:
    shop = Verdict(
        "shop",
        "outage",
        "regional",
        ("it",),
        Cause("tcp_refused", "shop.test"),
        (RegionVerdict("de", "UP", 2), RegionVerdict("it", "DOWN", 2, 2), RegionVerdict("us", "NO_DATA")),
    )
    api = Verdict("api", "ok", "", (), None, (RegionVerdict("de", "UP", 2), RegionVerdict("it", "UP", 2)))
    vantage = (
        VantageVerdict("agent", "fr", "fr-2", 3, 3, None),
        VantageVerdict("region", "us", "", 3, 3, None),
    )
    return Evaluation(now=0.0, verdicts={"shop": shop, "api": api}, vantage=vantage)


def test_families_from_an_evaluation() -> None:
    samples = _samples(list(verdict_families(_evaluation(), 20_000)))
    assert [
        samples[("probenet_check_status", ("shop", s))] for s in ("ok", "partial", "outage", "unknown")
    ] == [
        0,
        0,
        1,
        0,
    ]
    assert samples[("probenet_check_status", ("api", "ok"))] == 1
    assert samples[("probenet_check_region_up", ("shop", "it"))] == 0
    assert samples[("probenet_check_region_up", ("shop", "de"))] == 1
    assert math.isnan(samples[("probenet_check_region_up", ("shop", "us"))])
    assert samples[("probenet_check_affected_regions", ("shop",))] == 1
    assert samples[("probenet_vantage_impaired", ("fr-2", "fr"))] == 1
    assert samples[("probenet_vantage_impaired", ("", "us"))] == 1
    assert (samples[("probenet_checks", ())], samples[("probenet_check_series_limited", ())]) == (2, 0)


def test_above_the_bound_only_non_ok_checks() -> None:
    samples = _samples(list(verdict_families(_evaluation(), 1)))
    assert {labels[0] for name, labels in samples if name == "probenet_check_status"} == {"shop"}
    assert (samples[("probenet_checks", ())], samples[("probenet_check_series_limited", ())]) == (2, 1)
    empty = _samples(list(verdict_families(None, 1)))
    assert empty == {("probenet_checks", ()): 0, ("probenet_check_series_limited", ()): 0}


def _query(prom: str, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return {
        tuple(
            sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__", "instance", "job"))
        ): float(r["value"][1])
        for r in body["data"]["result"]
    }


def _alerts(prom: str) -> dict[tuple[str, str], str]:
    with urllib.request.urlopen(f"{prom}/api/v1/alerts", timeout=10) as response:
        body = json.load(response)
    return {
        (a["labels"]["alertname"], a["labels"].get("check", "")): a["state"] for a in body["data"]["alerts"]
    }


def _dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _promtool(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )


def test_prometheus_scrapes_verdicts_during_an_incident(tmp_path: Path) -> None:
    collector = Collector(tmp_path / "collector")
    collector.workdir.mkdir()
    collector.extra = {"checks": CHECKS, "evaluate_every": "1s"}
    collector.start()
    agent_port = free_port()
    # The agent's own page: it probes a port nothing listens on, with no collector to reach.
    checks = [
        {"id": "closed", "probe": "http", "target": f"http://127.0.0.1:{free_port()}/", "interval": "1s"}
    ]
    agent = start_agent(
        tmp_path, "zz-1", "zz", f"127.0.0.1:{free_port()}", checks, metrics_listen=f"127.0.0.1:{agent_port}"
    )
    with stopped_on_exit(collector, agent):
        feed(collector.address, *regional_outage(time.time(), minutes=3, step=20))
        targets = [f"127.0.0.1:{collector.api_port}", f"127.0.0.1:{agent_port}"]
        with prometheus(tmp_path / "prometheus", targets, rule_files=(RULES,)) as prom:
            found: dict[str, Any] = {}

            def incident_seen() -> bool:
                found["status"] = _query(prom, "probenet_check_status == 1")
                found["up"] = _query(prom, 'probenet_check_region_up{check="shop"}')
                found["affected"] = _query(prom, "probenet_check_affected_regions")
                found["targets"] = _query(prom, "count(up == 1)")
                found["alerts"] = _alerts(prom)
                return (
                    len(found["status"]) == 3
                    and len(found["up"]) == 3
                    and found["targets"] == {(): 2}
                    and ("ProbenetCheckOutage", "shop") in found["alerts"]
                )

            try:
                wait_until(incident_seen, WAIT_S, "verdict series in Prometheus")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last answers: {found}") from None
            dashboard = {expr: _query(prom, expr.replace("$check", ".*")) for expr in _dashboard_exprs()}
        assert found["status"] == {
            (("check", "api"), ("status", "ok")): 1,
            (("check", "assets"), ("status", "partial")): 1,
            (("check", "shop"), ("status", "outage")): 1,
        }
        assert found["up"] == {
            (("check", "shop"), ("region", "de")): 1,
            (("check", "shop"), ("region", "fr")): 1,
            (("check", "shop"), ("region", "it")): 0,
        }
        assert found["affected"] == {
            (("check", "api"),): 0,
            (("check", "assets"),): 3,
            (("check", "shop"),): 1,
        }
        assert found["alerts"][("ProbenetCheckOutage", "shop")] in ("pending", "firing")
        assert ("ProbenetCheckPartial", "assets") in found["alerts"]
        assert not any(check == "api" for _, check in found["alerts"])
        # Every dashboard query is valid PromQL; those on check series find the incident.
        assert all(answer for expr, answer in dashboard.items() if "probenet_check_" in expr), dashboard
        for url in (f"{collector.api}/metrics", f"http://127.0.0.1:{agent_port}/metrics"):
            text = _page(url)
            checked = _promtool(text)
            assert checked.returncode == 0, f"{url}: {checked.stdout}{checked.stderr}"
        assert "probenet_check_status{" in _page(f"{collector.api}/metrics")
        assert collector.stop() == 0
