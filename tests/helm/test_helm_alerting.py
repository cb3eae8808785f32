"""The chart's alerting pieces: the PrometheusRule carries exactly the rule groups of
files/prometheus-rules.yaml, which `promtool check rules` accepts, and the dashboard ConfigMap
carries files/grafana-dashboard.json for Grafana's sidecar; both are off by default. (Their
queries run against a real Prometheus in tests/collector/test_verdict_metrics.py.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import yaml

from collector.config import config_from_mapping
from tests.alerting import PROMTOOL
from tests.helm.helm_support import CHART, Rendered

RULES = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"


def test_rules_file_passes_promtool() -> None:
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_prometheus_rule_and_dashboard_render_from_the_files(render: Callable[..., Rendered]) -> None:
    assert not render(None).of_kind("PrometheusRule")
    full = render(CHART / "ci" / "external-clickhouse-values.yaml")
    (rule,) = full.of_kind("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"ProbenetCheckOutage", "ProbenetCheckPartial", "ProbenetImpairedVantage"} <= alerts
    (board,) = full.component("ConfigMap", "dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["probenet-verdicts.json"]) == json.loads(DASHBOARD.read_text())


def test_notify_and_maintenance_values_reach_the_collector_config(render: Callable[..., Rendered]) -> None:
    full = render(CHART / "ci" / "external-clickhouse-values.yaml")
    (config_map,) = full.component("ConfigMap", "collector")
    raw = yaml.safe_load(config_map["data"]["collector.yaml"])
    # TLS files and the token come from Secrets in the pod; the sinks and windows are what counts here.
    config = config_from_mapping(
        {**raw, "tls": {}, "insecure": True, "api": {"token": "t"}}, "collector.yaml"
    )
    assert [(s.type, s.url) for s in config.notify] == [
        ("alertmanager", "http://alertmanager.monitoring:9093"),
        ("webhook", "https://hooks.example.com/probenet"),
    ]
    assert [w.name for w in config.maintenance] == ["weekly-deploy"]
