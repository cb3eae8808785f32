"""agents.icmp.enabled: the pod sysctl that allows unprivileged ping sockets, off by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.helm.helm_support import Helm, Rendered

PING_SYSCTL = "net.ipv4.ping_group_range"


def _agent_pods(rendered: Rendered) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in rendered.agent_workloads()]


def test_off_by_default_no_sysctl_and_capabilities_stay_dropped(render: Callable[..., Rendered]) -> None:
    pods = _agent_pods(render(None))
    assert pods
    for pod in pods:
        assert "sysctls" not in pod["securityContext"]
        assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_enabled_sets_the_ping_group_range_to_the_pod_group_only(render: Callable[..., Rendered]) -> None:
    rendered = render(None, "--set", "agents.icmp.enabled=true")
    for pod in _agent_pods(rendered):
        group = pod["securityContext"]["runAsGroup"]
        assert pod["securityContext"]["sysctls"] == [{"name": PING_SYSCTL, "value": f"{group} {group}"}]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert "add" not in pod["containers"][0]["securityContext"]["capabilities"], "no CAP_NET_RAW needed"
    collector = rendered.component("StatefulSet", "collector") + rendered.component("Deployment", "collector")
    assert collector and all(
        "sysctls" not in d["spec"]["template"]["spec"]["securityContext"] for d in collector
    )


def test_schema_refuses_a_misspelled_icmp_key(helm: Helm) -> None:
    result = helm.template("--set", "agents.icmp.enable=true")
    assert result.returncode != 0
    assert "enable" in result.stderr
