"""The README's alerting examples are the real thing: its `notify:` and `maintenance:` blocks
load as collector.yaml, and its alert rule is one of the chart's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from collector.config import config_from_mapping

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RULES = ROOT / "helm" / "probenet" / "files" / "prometheus-rules.yaml"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, re.S)


def block_starting(prefix: str) -> str:
    (block,) = [b for b in yaml_blocks() if b.startswith(prefix)]
    return block


def test_notify_and_maintenance_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", "k")
    key = tmp_path / "opsgenie-key"
    key.write_text("k\n")
    notify = yaml.safe_load(block_starting("notify:").replace("/run/secrets/opsgenie-key", str(key)))
    maintenance = yaml.safe_load(block_starting("maintenance:"))
    config = config_from_mapping({"insecure": True, **notify, **maintenance}, "README.md")
    assert [s.type for s in config.notify] == ["webhook", "slack", "alertmanager", "pagerduty", "opsgenie"]
    assert [w.name for w in config.maintenance] == ["db-upgrade", "weekly-deploy"]


def test_the_alert_rule_example_is_the_charts() -> None:
    (example,) = yaml.safe_load(block_starting("- alert: ProbenetCheckOutage"))
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    shipped = rules["ProbenetCheckOutage"]
    assert (example["expr"], example["for"], example["labels"]) == (
        shipped["expr"],
        shipped["for"],
        shipped["labels"],
    )
