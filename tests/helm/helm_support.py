"""Helm chart test support: the pinned helm binary and a cache of rendered manifests.

helm is installed by .ci/install-helm.sh into .tools/bin/helm ($HELM overrides). A missing helm
is a failure, not a skip: the chart is part of what CI vouches for.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "probenet"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "pn"
NAMESPACE = "probenet"
# Extra API groups the CI renders assume are served (cert-manager, Prometheus Operator).
API_VERSIONS = ("cert-manager.io/v1", "monitoring.coreos.com/v1")
HELM_TIMEOUT_S = 120


def helm_path() -> Path:
    return Path(os.environ.get("HELM") or ROOT / ".tools" / "bin" / "helm")


@dataclass
class Rendered:
    """The manifests of one `helm template` run, parsed."""

    text: str
    docs: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
        return matches[0]

    def component(self, kind: str, component: str) -> list[dict[str, Any]]:
        return [
            d
            for d in self.of_kind(kind)
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]

    def agent_workloads(self) -> list[dict[str, Any]]:
        """The agents' StatefulSets or Deployments (agents.kind), one per region."""
        return self.component("StatefulSet", "agent") + self.component("Deployment", "agent")


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=HELM_TIMEOUT_S,
            check=False,
        )

    def template(self, *args: str, kube_version: str | None = None) -> subprocess.CompletedProcess[str]:
        flags = ["--namespace", NAMESPACE]
        for api in API_VERSIONS:
            flags += ["--api-versions", api]
        if kube_version:
            flags += ["--kube-version", kube_version]
        return self.run("template", RELEASE, str(CHART), *flags, *args)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = helm_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"helm not found at {binary}: run .ci/install-helm.sh (or set $HELM)", pytrace=False)
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


def parse(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., Rendered]:
    """render(values_file, *extra_args, kube_version=None) -> Rendered, cached per arguments."""
    cache: dict[tuple[Any, ...], Rendered] = {}

    def _render(values: Path | None, *extra: str, kube_version: str | None = None) -> Rendered:
        key = (values, extra, kube_version)
        if key not in cache:
            args = (["-f", str(values)] if values else []) + list(extra)
            result = helm.template(*args, kube_version=kube_version)
            assert result.returncode == 0, f"helm template {values} failed:\n{result.stderr}"
            cache[key] = Rendered(result.stdout, parse(result.stdout))
        return cache[key]

    return _render


def values_of(values_file: Path | None) -> dict[str, Any]:
    """The chart defaults with one CI file merged over them (maps merge, lists replace: Helm's rule)."""
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    if values_file:
        _merge(merged, yaml.safe_load(values_file.read_text()) or {})
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
