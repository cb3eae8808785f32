"""The lab learns the tcp, grpc and icmp probes: scenario rules, and real probes against its targets."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ConfigError
from collector.lab.faults import Effect
from collector.lab.runner import LabError, _require_icmp, _shared_port
from collector.lab.scenario import scenario_from_mapping
from collector.lab.targets import CertificateSet, LabCA, TargetServers, target_address
from probe_agent.config import check_from_mapping
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

TARGETS = {"api": {"kind": "grpc"}, "web": {"kind": "https"}}
CHECKS = [
    {"id": "api-health", "probe": "grpc", "target": "api"},
    {"id": "web-tcp", "probe": "tcp", "target": "web"},
    {"id": "web-ping", "probe": "icmp", "target": "web"},
]


def _scenario(checks: list[dict[str, Any]] = CHECKS, faults: list[dict[str, Any]] | None = None) -> Any:
    raw = {"name": "p", "regions": {"it": 1}, "targets": TARGETS, "checks": checks, "faults": faults or []}
    return scenario_from_mapping(raw, "p.yaml")


def test_new_probe_types_and_the_grpc_fault_parse() -> None:
    scenario = _scenario(faults=[{"at": "1s", "target": "api", "fault": "grpc_not_serving"}])
    assert [c.probe for c in scenario.checks] == ["grpc", "tcp", "icmp"]
    assert scenario.faults[0].kind == "grpc_not_serving"


@pytest.mark.parametrize(
    ("checks", "faults", "key", "reason"),
    [
        (
            [{"id": "x", "probe": "grpc", "target": "web"}],
            [],
            "checks[0].probe",
            "a grpc check needs a grpc target",
        ),
        ([{"id": "x", "probe": "http", "target": "api"}], [], "checks[0].probe", "check it with grpc"),
        (
            CHECKS,
            [{"at": "1s", "target": "web", "fault": "grpc_not_serving"}],
            "faults[0].target",
            "needs a grpc target",
        ),
    ],
)
def test_bad_protocol_scenarios_name_the_key(
    checks: list[dict[str, Any]], faults: list[dict[str, Any]], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _scenario(checks, faults)
    assert info.value.key == key
    assert reason in info.value.reason


def test_icmp_checks_are_refused_at_start_when_no_icmp_socket_may_be_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(*args: object, **kwargs: object) -> socket.socket:
        if len(args) >= 3 and args[2] == socket.IPPROTO_ICMP:
            raise PermissionError(1, "Operation not permitted")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    real = socket.socket
    monkeypatch.setattr(socket, "socket", denied)
    with pytest.raises(LabError, match=r"icmp checks \(web-ping\) need unprivileged ping sockets"):
        _require_icmp(_scenario())
    _require_icmp(_scenario(CHECKS[:2]))  # no icmp check: nothing needed


def _probe(spec: dict[str, Any], address: str, ca: LabCA) -> ProbeResult:
    host = spec["target"].split(":")[0]
    full = {**spec, "id": "t", "timeout": 8, "interval": 10, "resolve": {host: address}}
    full["tls"] = {**full.get("tls", {}), "ca_pem": ca.pem}
    check = check_from_mapping(full, "test", "check")
    return asyncio.run(run_probe(PROBE_TYPES[check.probe], check, ProbeContext()))


def test_grpc_and_tcp_probes_against_the_lab_targets_follow_the_faults(tmp_path: Path) -> None:
    effects: dict[tuple[str, str], Effect] = {}
    ca = LabCA.create()
    scenario = _scenario()
    api, web = target_address(231, 0), target_address(231, 1)
    port = _shared_port([api, web])
    servers = TargetServers(
        scenario, {"it-1": 231}, port, CertificateSet(ca, tmp_path), lambda a, t: effects.get((a, t))
    )
    loop = asyncio.new_event_loop()

    listening = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(servers.start())
        listening.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert listening.wait(30), "the lab target servers did not start"
    try:
        grpc_spec = {"probe": "grpc", "target": f"api.lab.test:{port}"}
        serving = _probe(grpc_spec, api, ca)
        assert serving.outcome == Outcome.OUTCOME_SUCCESS, serving.error
        assert serving.grpc.serving_status == "SERVING" and serving.tls.verified

        effects[("it-1", "api")] = Effect("grpc_not_serving")
        assert _probe(grpc_spec, api, ca).failure_class == FailureClass.GRPC_NOT_SERVING
        effects[("it-1", "api")] = Effect("cert_expired")
        assert _probe(grpc_spec, api, ca).failure_class == FailureClass.TLS_CERT_EXPIRED
        effects[("it-1", "api")] = Effect("http_status", 503)
        assert _probe(grpc_spec, api, ca).failure_class == FailureClass.GRPC_ERROR

        tcp_spec = {
            "probe": "tcp",
            "target": f"web.lab.test:{port}",
            "tcp": {
                "tls": True,
                "send": "GET / HTTP/1.1\\r\\nHost: web.lab.test\\r\\nConnection: close\\r\\n\\r\\n",
                "expect": "^HTTP/1.1 200",
            },
        }
        banner = _probe(tcp_spec, web, ca)
        assert banner.outcome == Outcome.OUTCOME_SUCCESS, banner.error
        effects[("it-1", "web")] = Effect("http_status", 500)
        assert _probe(tcp_spec, web, ca).failure_class == FailureClass.TCP_EXPECT_FAILED
    finally:
        asyncio.run_coroutine_threadsafe(servers.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
