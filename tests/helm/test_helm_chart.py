"""The Helm chart: lint, schema, Kubernetes validation, and properties of what it renders.

Each CI values file (helm/probenet/ci/*.yaml) is linted with --strict, rendered, validated
offline with kubernetes-validate --strict for the oldest and newest Kubernetes the chart
supports, and checked for the properties users rely on. The configs the chart writes are
loaded by the collector's and the agent's own loaders, so chart and code cannot drift apart.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import API_TOKEN_ENV, QUERY_URL_ENV, STORE_URL_ENV, load_config
from collector.config import config_from_mapping as collector_config
from tests.helm.helm_support import CHART, CI_VALUES, RELEASE, Helm, Rendered, values_of

EXPECTED_CI_FILES = {
    "minimal-values.yaml",
    "external-clickhouse-values.yaml",
    "agents-only-values.yaml",
    "three-regions-values.yaml",
    "existing-secrets-values.yaml",
    "stateless-agents-values.yaml",
}
# Oldest (Chart.yaml kubeVersion) and newest schemas kubernetes-validate bundles.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
# Custom resources kubernetes-validate has no schema for; their shape is asserted below instead.
CRD_KINDS = {"Certificate", "Issuer", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Pod"}
Render = Callable[..., Rendered]

ci_files = pytest.mark.parametrize("values_file", CI_VALUES, ids=[p.stem for p in CI_VALUES])
WITH_COLLECTOR = [p for p in CI_VALUES if values_of(p)["collector"]["enabled"]]
ci_files_with_collector = pytest.mark.parametrize(
    "values_file", WITH_COLLECTOR, ids=[p.stem for p in WITH_COLLECTOR]
)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return spec


def workloads(rendered: Rendered) -> Iterator[dict[str, Any]]:
    return (d for d in rendered.docs if d["kind"] in WORKLOAD_KINDS)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def config_map_file(rendered: Rendered, component: str, key: str) -> str:
    (config_map,) = rendered.component("ConfigMap", component)
    text: str = config_map["data"][key]
    return text


# --- lint and schema ---


def test_every_ci_scenario_is_present() -> None:
    assert {p.name for p in CI_VALUES} >= EXPECTED_CI_FILES


@pytest.mark.parametrize("values_file", [None, *CI_VALUES], ids=["defaults", *(p.stem for p in CI_VALUES)])
def test_lint_strict(helm: Helm, values_file: Path | None) -> None:
    result = helm.run("lint", "--strict", str(CHART), *(["-f", str(values_file)] if values_file else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("setting", "offending"),
    [
        ("collector.replicaCont=2", "replicaCont"),
        ("agents.regions[0].name=it,agents.regions[0].nodeSelectr.zone=a", "nodeSelectr"),
        ("tls.certManager.issuerRef.knd=Issuer", "knd"),
        ("clickhous.enabled=true", "clickhous"),
    ],
)
def test_schema_rejects_a_misspelled_key(helm: Helm, setting: str, offending: str) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--set", setting)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Additional property" in output and offending in output, output


@pytest.mark.parametrize(
    "setting",
    [
        "collector.grpcPort=grpc",
        "store.type=mysql",
        "agents.regions[0].name=Not_A_Label",
        "store.flushInterval=soon",
        "agents.kind=ReplicaSet",
        "agents.persistence.size=lots",
    ],
)
def test_schema_rejects_a_wrong_type_or_value(helm: Helm, setting: str) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--set", setting)
    assert result.returncode != 0, f"{setting} was accepted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "store.type=clickhouse"], "externalClickhouse.host is required"),
        (["--set", "collector.replicaCount=2"], "collector.replicaCount must be 1 with store.type=embedded"),
        (
            ["--set", "externalClickhouse.host=ch.example"],
            "externalClickhouse.host is set but store.type is embedded",
        ),
        (["--set", "clickhouse.enabled=true"], "clickhouse.enabled is true but store.type is embedded"),
        (
            ["--set", "externalClickhouse.query.user=reader"],
            "externalClickhouse.query.user is set but the store is not an external ClickHouse",
        ),
        (
            ["--set", "collector.enabled=false", "--set", "agents.collectorAddress=collector.example:4317"],
            "agents.regions[name=default].tls.existingSecret is required",
        ),
        (
            ["--set", "tls.generate=false", "--set", "tls.collector.existingSecret=collector-tls"],
            "the chart has no CA to sign the region's client certificate with",
        ),
        (["--set", "tls.generate=false"], "tls.collector.existingSecret is required"),
        (
            ["--set", "agents.regions[0].name=it", "--set", "agents.regions[1].name=it"],
            'region "it" is listed twice',
        ),
    ],
)
def test_required_settings_fail_with_a_clear_message(helm: Helm, args: list[str], message: str) -> None:
    result = helm.template(*args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- Kubernetes validation ---


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_validate_strictly(render: Render, tmp_path: Path, kube_version: str) -> None:
    files = []
    for values_file in CI_VALUES:
        path = tmp_path / values_file.name
        path.write_text(render(values_file, kube_version=kube_version).text)
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", kube_version, *files],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    unknown = re.findall(r"Couldn't find schema for kind (\w+)", output)
    assert set(unknown) <= CRD_KINDS, output
    assert "ERROR" not in output, output


@ci_files
def test_custom_resources_have_their_required_fields(render: Render, values_file: Path) -> None:
    rendered = render(values_file)
    for cert in rendered.of_kind("Certificate"):
        assert cert["apiVersion"] == "cert-manager.io/v1"
        spec = cert["spec"]
        region = cert["metadata"]["labels"]["probenet.io/region"]
        assert spec["uris"] == [f"probenet://region/{region}"]
        assert "client auth" in spec["usages"]
        assert spec["secretName"] and spec["issuerRef"]["name"]
    for issuer in rendered.of_kind("Issuer"):
        secret = issuer["spec"]["ca"]["secretName"]
        assert rendered.named("Secret", secret)["type"] == "kubernetes.io/tls"
    for monitor in rendered.of_kind("ServiceMonitor"):
        assert monitor["spec"]["endpoints"][0]["port"] == "http"
    for monitor in rendered.of_kind("PodMonitor"):
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


# --- properties of the rendered objects ---


@ci_files
def test_one_agent_workload_per_region(render: Render, values_file: Path) -> None:
    values = values_of(values_file)
    rendered = render(values_file)
    workloads = rendered.agent_workloads()
    assert {w["kind"] for w in workloads} == {values["agents"]["kind"]}
    by_region = {d["metadata"]["labels"]["probenet.io/region"]: d for d in workloads}
    expected = [r["name"] for r in values["agents"]["regions"]]
    assert sorted(by_region) == sorted(expected) and len(workloads) == len(expected)
    for region in values["agents"]["regions"]:
        deployment = by_region[region["name"]]
        assert deployment["spec"]["replicas"] == region.get("replicas", values["agents"]["replicas"])
        assert deployment["spec"]["selector"]["matchLabels"]["probenet.io/region"] == region["name"]
        (container,) = pod_spec(deployment)["containers"]
        assert container["command"] == ["probe-agent"]
        assert f"--region={region['name']}" in container["args"]
        assert "--agent-id=$(POD_NAME)" in container["args"]
        env = env_of(container)
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["PROBENET_REGION"]["value"] == region["name"]
        if "nodeSelector" in region:
            assert pod_spec(deployment)["nodeSelector"] == region["nodeSelector"]


def _spool_volume(workload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where the agent's spool lives: ("pvc", its claim template) or ("emptyDir", the volume)."""
    claims = {c["metadata"]["name"]: c for c in workload["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    (container,) = pod_spec(workload)["containers"]
    assert {"name": "spool", "mountPath": "/var/lib/probenet/spool"} in container["volumeMounts"]
    assert ("spool" in claims) != ("spool" in volumes), "exactly one spool volume"
    return ("pvc", claims["spool"]) if "spool" in claims else ("emptyDir", volumes["spool"])


@ci_files
def test_agents_are_statefulsets_with_a_pvc_spool_unless_stateless(render: Render, values_file: Path) -> None:
    values = values_of(values_file)
    agents = values["agents"]
    rendered = render(values_file)
    for workload in rendered.agent_workloads():
        region = workload["metadata"]["labels"]["probenet.io/region"]
        kind, spool = _spool_volume(workload)
        if workload["kind"] == "Deployment":
            assert kind == "emptyDir" and spool["emptyDir"]["sizeLimit"] == agents["spool"]["sizeLimit"]
            assert "podManagementPolicy" not in workload["spec"]
            continue
        assert workload["spec"]["podManagementPolicy"] == "Parallel"
        assert workload["spec"]["updateStrategy"]["type"] == "RollingUpdate"
        headless = rendered.named("Service", workload["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
        if not agents["persistence"]["enabled"]:
            assert kind == "emptyDir"
            continue
        assert kind == "pvc"
        assert spool["spec"]["resources"]["requests"]["storage"] == agents["persistence"]["size"]
        assert spool["spec"]["accessModes"] == agents["persistence"]["accessModes"]
        assert spool["spec"].get("storageClassName", "") == agents["persistence"]["storageClass"]
        assert spool["metadata"]["labels"]["probenet.io/region"] == region


def test_persistence_off_keeps_the_statefulset_and_its_ids_on_an_emptydir(render: Render) -> None:
    rendered = render(None, "--set", "agents.persistence.enabled=false")
    (workload,) = rendered.agent_workloads()
    assert workload["kind"] == "StatefulSet" and _spool_volume(workload)[0] == "emptyDir"


def _pod_names(workload: dict[str, Any]) -> list[str]:
    """The pods a StatefulSet creates, hence the agent ids: <name>-<ordinal>."""
    return [f"{workload['metadata']['name']}-{i}" for i in range(workload["spec"]["replicas"])]


def test_agent_ids_are_stable_pod_names_across_rollouts(render: Render) -> None:
    three = CHART / "ci" / "three-regions-values.yaml"
    before = render(three)
    after = render(three, "--set", "agents.logLevel=DEBUG", "--set", "image.tag=0.1.1")
    ids: list[str] = []
    for old, new in zip(before.agent_workloads(), after.agent_workloads(), strict=True):
        # The rollout changes the pod template, never the names that make ids, PVCs and DNS.
        assert old["spec"]["template"] != new["spec"]["template"]
        for key in ("serviceName", "volumeClaimTemplates"):
            assert old["spec"][key] == new["spec"][key]
        assert _pod_names(old) == _pod_names(new)
        ids += _pod_names(new)
    region_of = {
        w["metadata"]["name"]: w["metadata"]["labels"]["probenet.io/region"] for w in after.agent_workloads()
    }
    assert sorted(ids) == sorted(
        f"{RELEASE}-probenet-agent-{region}-{i}"
        for region, n in (("it", 2), ("fr", 3), ("us", 2))
        for i in range(n)
    )
    assert set(region_of.values()) == {"it", "fr", "us"}


def test_long_names_still_make_valid_statefulset_pod_names(render: Render) -> None:
    rendered = render(
        None, "--set", f"fullnameOverride={'x' * 63}", "--set", f"agents.regions[0].name={'r' * 20}"
    )
    (workload,) = rendered.agent_workloads()
    # controller-revision-hash = <name>-<10 characters> must fit a 63-character label.
    assert len(workload["metadata"]["name"]) <= 52
    assert workload["metadata"]["name"].endswith("-agent-" + "r" * 20)
    assert all(len(name) <= 63 for name in _pod_names(workload))


@pytest.mark.parametrize(("grace", "expected"), [(30, 25.0), (120, 115.0), (3, 0.0)])
def test_shutdown_grace_follows_the_termination_grace(render: Render, grace: int, expected: float) -> None:
    from probe_agent.config import config_from_mapping as agent_config

    for kind in ("StatefulSet", "Deployment"):
        rendered = render(
            None,
            "--set", f"agents.terminationGracePeriodSeconds={grace}",
            "--set", f"agents.kind={kind}",
            "--set", f"agents.persistence.enabled={kind == 'StatefulSet'}".lower(),
        )  # fmt: skip
        (workload,) = rendered.agent_workloads()
        assert workload["kind"] == kind
        assert pod_spec(workload)["terminationGracePeriodSeconds"] == grace
        raw = yaml.safe_load(config_map_file(rendered, "agent", "agent.yaml"))
        assert (
            agent_config({**raw, "agent_id": "a-0", "region": "default"}, "agent.yaml").shutdown_grace
            == expected
        )


@pytest.mark.parametrize(
    ("args", "offending"),
    [
        # A Deployment cannot keep a PVC per agent.
        (["--set", "agents.kind=Deployment"], "persistence.enabled"),
        # Agents-only: nowhere to report to.
        (["--set", "collector.enabled=false"], "agents.collectorAddress"),
        (
            ["--set", "collector.enabled=false", "--set", "agents.collectorAddress="],
            "agents.collectorAddress",
        ),
    ],
)
def test_schema_refuses_contradictory_settings(helm: Helm, args: list[str], offending: str) -> None:
    for command in (["lint", "--strict", str(CHART)], ["template", RELEASE, str(CHART)]):
        result = helm.run(*command, *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"{args} was accepted"
        assert "schema" in output.lower() and offending in output, output


def test_schema_accepts_the_consistent_neighbours(helm: Helm) -> None:
    for settings in (
        ("agents.kind=Deployment", "agents.persistence.enabled=false"),
        (
            "collector.enabled=false",
            "agents.collectorAddress=collector.example:4317",
            "tls.certManager.enabled=true",
            "tls.certManager.issuerRef.name=probenet-ca",
        ),
    ):
        args = [arg for setting in settings for arg in ("--set", setting)]
        result = helm.run("lint", "--strict", str(CHART), *args)
        assert result.returncode == 0, result.stdout + result.stderr


@ci_files
def test_selectors_of_different_regions_do_not_overlap(render: Render, values_file: Path) -> None:
    selectors = [
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
        for d in render(values_file).of_kind("Deployment") + render(values_file).of_kind("StatefulSet")
    ]
    assert len(selectors) == len(set(selectors))


def _secret_sources(rendered: Rendered, values: dict[str, Any]) -> set[str]:
    """Secrets that will exist: rendered ones, cert-manager outputs, and the operator's existing ones."""
    names = {s["metadata"]["name"] for s in rendered.of_kind("Secret")}
    names |= {c["spec"]["secretName"] for c in rendered.of_kind("Certificate")}
    names |= {
        values["tls"]["collector"]["existingSecret"],
        values["clickhouse"]["auth"]["existingSecret"],
        values["externalClickhouse"]["existingSecret"],
        values["collector"]["api"]["existingSecret"],
    }
    names |= {r.get("tls", {}).get("existingSecret", "") for r in values["agents"]["regions"]}
    return names - {""}


@ci_files
def test_secrets_are_mounted_where_used(render: Render, values_file: Path) -> None:
    values = values_of(values_file)
    rendered = render(values_file)
    available = _secret_sources(rendered, values)
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        secret_volumes = {
            v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v
        }
        assert set(secret_volumes.values()) <= available, obj["metadata"]["name"]
        mounted = {m["name"] for c in containers(spec) for m in c.get("volumeMounts", [])}
        assert set(secret_volumes) <= mounted, f"{obj['metadata']['name']}: secret volume not mounted"
        for container in containers(spec):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in available, f"{env['name']} refers to unknown Secret {ref['name']}"
    if values["tls"]["enabled"]:
        for deployment in rendered.agent_workloads():
            spec = pod_spec(deployment)
            (container,) = spec["containers"]
            assert {"name": "tls", "mountPath": "/etc/probenet/tls", "readOnly": True} in container[
                "volumeMounts"
            ]
            region = deployment["metadata"]["labels"]["probenet.io/region"]
            (entry,) = [r for r in values["agents"]["regions"] if r["name"] == region]
            tls_secret = next(v["secret"]["secretName"] for v in spec["volumes"] if v["name"] == "tls")
            if entry.get("tls", {}).get("existingSecret"):
                assert tls_secret == entry["tls"]["existingSecret"]
            elif values["tls"]["certManager"]["enabled"]:
                (cert,) = [
                    c for c in rendered.of_kind("Certificate") if c["spec"]["secretName"] == tls_secret
                ]
                assert cert["spec"]["uris"] == [f"probenet://region/{region}"]
            else:
                generated = rendered.named("Secret", tls_secret)
                assert generated["metadata"]["labels"]["probenet.io/region"] == region


@ci_files
def test_every_container_is_locked_down(render: Render, values_file: Path) -> None:
    for obj in workloads(render(values_file)):
        spec = pod_spec(obj)
        pod_ctx = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]
        for container in containers(spec):
            where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
            ctx = container.get("securityContext", {})
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) != 0, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("privileged", False) is False, where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where
            assert not ctx.get("capabilities", {}).get("add"), where
            seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            writable = {m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")}
            assert "/tmp" in writable, f"{where}: a read-only root needs a writable /tmp"


@ci_files
def test_pods_roll_when_their_config_changes(render: Render, values_file: Path) -> None:
    rendered = render(values_file)
    for obj in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
    for component, key in (("collector", "collector.yaml"), ("agent", "agent.yaml")):
        if not rendered.component("ConfigMap", component):
            continue
        # The block scalar adds one trailing newline to what the checksum was computed over.
        digest = hashlib.sha256(config_map_file(rendered, component, key)[:-1].encode()).hexdigest()
        for obj in rendered.component("Deployment", component) + rendered.component("StatefulSet", component):
            assert obj["spec"]["template"]["metadata"]["annotations"]["checksum/config"] == digest


def test_a_config_change_changes_the_checksum(render: Render) -> None:
    def checksum(*args: str) -> str:
        (collector,) = render(None, *args).component("StatefulSet", "collector")
        value: str = collector["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum() != checksum("--set", "store.ttlDays=7")


def test_embedded_store_is_a_statefulset_on_a_pvc(render: Render) -> None:
    rendered = render(None)
    assert not rendered.component("Deployment", "collector")
    (collector,) = rendered.component("StatefulSet", "collector")
    assert collector["spec"]["replicas"] == 1
    (claim,) = collector["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    (container,) = pod_spec(collector)["containers"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    probes = {p: container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    assert probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    service = rendered.named("Service", f"{RELEASE}-probenet-collector")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": 4317, "http": 8080}


@ci_files
def test_each_region_has_a_pod_disruption_budget(render: Render, values_file: Path) -> None:
    rendered = render(values_file)
    budgets = rendered.component("PodDisruptionBudget", "agent")
    workloads = rendered.agent_workloads()
    assert len(budgets) == len(workloads)
    for workload in workloads:
        (budget,) = [b for b in budgets if b["metadata"]["name"] == workload["metadata"]["name"]]
        assert budget["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
        assert budget["spec"]["maxUnavailable"] == 1


def test_pdbs_networkpolicies_and_monitors_are_optional(render: Render) -> None:
    defaults = render(None)
    assert not defaults.component("PodDisruptionBudget", "collector")
    for kind in ("NetworkPolicy", "ServiceMonitor", "PodMonitor", "Ingress"):
        assert not defaults.of_kind(kind), kind
    assert not render(None, "--set", "agents.podDisruptionBudget.enabled=false").of_kind(
        "PodDisruptionBudget"
    )
    full = render(CHART / "ci" / "external-clickhouse-values.yaml")
    assert {p["spec"].get("minAvailable") for p in full.component("PodDisruptionBudget", "collector")} == {1}
    assert len(full.component("PodDisruptionBudget", "agent")) == 1
    policies = {n["metadata"]["labels"]["app.kubernetes.io/component"] for n in full.of_kind("NetworkPolicy")}
    assert policies == {"collector", "agent"}


def test_the_helm_test_hook_checks_readyz(render: Render) -> None:
    (pod,) = render(None).of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "/readyz" in "".join(pod["spec"]["containers"][0]["command"])


def test_generated_collector_certificate_names_the_service(render: Render) -> None:
    from cryptography import x509

    secret = render(None).named("Secret", f"{RELEASE}-probenet-collector-tls")
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert f"{RELEASE}-probenet-collector" in names
    assert f"{RELEASE}-probenet-collector.probenet.svc.cluster.local" in names
    ca = render(None).named("Secret", f"{RELEASE}-probenet-ca")
    assert secret["data"]["ca.crt"] == ca["data"]["tls.crt"]


# --- no drift between the chart and the loaders ---


@ci_files_with_collector
def test_rendered_collector_config_loads(render: Render, values_file: Path) -> None:
    rendered = render(values_file)
    raw = yaml.safe_load(config_map_file(rendered, "collector", "collector.yaml"))
    assert "token" not in raw["api"], "the API token belongs in a Secret, not the ConfigMap"
    # The token arrives through PROBENET_API_TOKEN in the pod; a listener off loopback requires it.
    config = collector_config({**raw, "api": {**raw["api"], "token": "from-the-secret"}}, "collector.yaml")
    values = values_of(values_file)
    assert config.listen.endswith(":4317") and config.api.listen.endswith(":8080")
    assert config.insecure is not values["tls"]["enabled"]
    assert [c.id for c in config.checks] == [c["id"] for c in values["collector"]["checks"]]
    if values["store"]["type"] == "embedded":
        assert config.store.url == "chdb:///data/store"


@ci_files_with_collector
def test_collector_loads_its_config_as_in_the_pod(
    render: Render, values_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the collector sees in the pod: the file plus the env vars from Secrets, as the kubelet expands them."""
    rendered = render(values_file)
    (collector,) = rendered.component("Deployment", "collector") + rendered.component(
        "StatefulSet", "collector"
    )
    env = env_of(pod_spec(collector)["containers"][0])
    path = tmp_path / "collector.yaml"
    path.write_text(config_map_file(rendered, "collector", "collector.yaml"))
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    assert "secretKeyRef" in env[API_TOKEN_ENV]["valueFrom"]
    monkeypatch.setenv(API_TOKEN_ENV, "from-the-secret")
    if STORE_URL_ENV in env:
        assert "PROBENET_STORE_PASSWORD" in env
        url = env[STORE_URL_ENV]["value"].replace("$(PROBENET_STORE_PASSWORD)", "s3cret")
        monkeypatch.setenv(STORE_URL_ENV, url)
    monkeypatch.delenv(QUERY_URL_ENV, raising=False)
    if QUERY_URL_ENV in env:
        assert "secretKeyRef" in env["PROBENET_QUERY_PASSWORD"]["valueFrom"]
        url = env[QUERY_URL_ENV]["value"].replace("$(PROBENET_QUERY_PASSWORD)", "r34d")
        monkeypatch.setenv(QUERY_URL_ENV, url)
    config = load_config(path)
    values = values_of(values_file)
    query_user = values["externalClickhouse"]["query"]["user"]
    assert (f"{query_user}:r34d@" in config.store.query_url) if query_user else not config.store.query_url
    if values["store"]["type"] == "clickhouse":
        assert config.store.url.startswith(("http://", "https://"))
        assert ":s3cret@" in config.store.url
    else:
        assert config.store.url.startswith("chdb://")
    assert config.api.token == "from-the-secret"


@ci_files
def test_rendered_agent_config_loads(render: Render, values_file: Path) -> None:
    from probe_agent.config import config_from_mapping as agent_config

    rendered = render(values_file)
    raw = yaml.safe_load(config_map_file(rendered, "agent", "agent.yaml"))
    assert "agent_id" not in raw and "region" not in raw  # they come from each pod's flags
    for deployment in rendered.agent_workloads():
        args = pod_spec(deployment)["containers"][0]["args"]
        flags = dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--") and "=" in a)
        config = agent_config({**raw, "agent_id": "pod-0", "region": flags["region"]}, "agent.yaml")
        assert config.region == deployment["metadata"]["labels"]["probenet.io/region"]
        assert config.spool.dir == "/var/lib/probenet/spool"  # where the spool volume is mounted
        assert config.spool.max_bytes == values_of(values_file)["agents"]["spool"]["maxBytes"]
        assert config.collector == values_of(values_file)["agents"][
            "collectorAddress"
        ] or config.collector.endswith("-collector:4317")


def _notes(helm: Helm, tmp_path: Path, *args: str) -> str:
    """NOTES.txt only renders on install; render it through tpl in a copy of the chart."""
    chart = tmp_path / "probenet"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "notes.src").write_text((CHART / "templates" / "NOTES.txt").read_text())
        (chart / "templates" / "zz-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
            'data:\n  notes: {{ tpl (.Files.Get "notes.src") . | toJson }}\n'
        )
    result = helm.run(
        "template",
        RELEASE,
        str(chart),
        "--api-versions",
        "cert-manager.io/v1",
        "--show-only",
        "templates/zz-notes.yaml",
        *args,
    )
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_render(helm: Helm, tmp_path: Path) -> None:
    for values_file in (
        None,
        CHART / "ci" / "three-regions-values.yaml",
        CHART / "ci" / "agents-only-values.yaml",
        CHART / "ci" / "stateless-agents-values.yaml",
    ):
        notes = _notes(helm, tmp_path, *(["-f", str(values_file)] if values_file else []))
        assert "helm test" in notes
        assert "region" in notes
        assert "one-time migration" not in notes  # only on upgrades


def test_notes_name_the_stable_ids_the_grace_and_the_migration(helm: Helm, tmp_path: Path) -> None:
    installed = _notes(helm, tmp_path)
    assert f"statefulset/{RELEASE}-probenet-agent-default" in installed
    assert f"{RELEASE}-probenet-agent-<region>-<ordinal>" in installed and "a PVC per agent" in installed
    assert "up to 25s" in installed
    upgraded = _notes(helm, tmp_path, "--is-upgrade")
    assert "one-time migration" in upgraded and "old agent ids" in upgraded and "lost" in upgraded
    stateless = _notes(
        helm, tmp_path, "-f", str(CHART / "ci" / "stateless-agents-values.yaml"), "--is-upgrade"
    )
    assert f"deployment/{RELEASE}-probenet-agent-edge" in stateless and "stateless" in stateless
    assert "one-time migration" not in stateless


def test_clusters_older_than_the_chart_supports_are_refused(helm: Helm) -> None:
    result = helm.template(kube_version="1.24.0")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr or "incompatible" in result.stderr, result.stderr
