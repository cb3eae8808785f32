"""icmp probe: echo to 127.0.0.1 and into network namespaces made by the test (raw and ping sockets)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from collector.lab import netns
from probe_agent.probes import icmp
from probenet.v1.probe_pb2 import Outcome
from tests.probe_agent.probes.conftest import run_check

NETNS_SKIP = netns.unavailable_reason()
needs_netns = pytest.mark.skipif(bool(NETNS_SKIP), reason=NETNS_SKIP)
ALLOW_ALL_GROUPS = "0 2147483647"


def _agent_in(ns: str, *args: str, user: bool = False) -> dict[str, object] | str:
    script = Path(sys.executable).with_name("probe-agent")
    command = [str(script), "check", "icmp", *args]
    if user:  # an ordinary user: no CAP_NET_RAW, group nobody
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *command]
    proc = netns.run_in(ns, command)
    if proc.returncode == 2:
        return proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_loopback_echo_with_rtt_stats() -> None:
    if not icmp.socket_kind():
        pytest.skip("this process may open neither a ping socket nor a raw socket")
    result = run_check("icmp", "127.0.0.1", icmp={"count": 4, "packet_interval": "0.05s"})
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    info = result.icmp
    assert (info.sent, info.received, info.loss_ratio) == (4, 4, 0.0)
    assert 0 < info.rtt_min_ms <= info.rtt_avg_ms <= info.rtt_max_ms
    assert info.rtt_stddev_ms >= 0
    assert info.socket == icmp.socket_kind()
    assert result.failure_host == ""


def test_ipv6_loopback_echo() -> None:
    if not icmp.socket_kind(socket.AF_INET6):
        pytest.skip("no ICMPv6 socket allowed here")
    result = run_check("icmp", "::1", icmp={"count": 2, "packet_interval": "0.05s"}, loop="uvloop")
    assert result.outcome == Outcome.OUTCOME_SUCCESS, result.error
    assert result.icmp.received == 2


@needs_netns
def test_address_in_a_namespace_by_ping_socket_then_dropped_replies() -> None:
    with netns.namespaces("agent", "target") as (agent, target):
        netns.link(agent, "10.77.1.1/24", target, "10.77.1.2/24", f"i{id(agent) % 10000}")
        netns.sysctl(agent, "net.ipv4.ping_group_range", ALLOW_ALL_GROUPS)
        ok = _agent_in(agent, "10.77.1.2", "--count", "3", "--json", user=True)
        assert isinstance(ok, dict), ok
        assert ok["outcome"] == "OUTCOME_SUCCESS"
        info = ok["icmp"]
        assert isinstance(info, dict)
        assert info["socket"] == "dgram" and info["received"] == 3
        # The target stops answering (its replies to the agent go nowhere): every echo lost.
        netns.ip("route", "add", "blackhole", "10.77.1.1/32", ns=target)
        lost = _agent_in(agent, "10.77.1.2", "--count", "2", "--timeout", "2", "--json")
        assert isinstance(lost, dict), lost
        assert lost["failure_class"] == "ICMP_NO_REPLY"
        assert lost["icmp"] == {"remote_addr": "10.77.1.2", "socket": "dgram", "sent": 2, "loss_ratio": 1.0}


@needs_netns
def test_raw_socket_fallback_and_unreachable() -> None:
    with netns.namespaces("raw") as (agent,):
        netns.ip("route", "add", "unreachable", "10.77.9.0/24", ns=agent)
        result = _agent_in(agent, "10.77.9.9", "--count", "2", "--timeout", "2", "--json")
        assert isinstance(result, dict), result
        assert result["failure_class"] == "ICMP_UNREACHABLE"
        ok = _agent_in(agent, "127.0.0.1", "--count", "2", "--json")
        assert isinstance(ok, dict) and ok["outcome"] == "OUTCOME_SUCCESS", ok
        assert ok["icmp"]["socket"] == "raw"  # type: ignore[index]


@needs_netns
def test_neither_socket_allowed_is_a_clear_error_at_start() -> None:
    with netns.namespaces("denied") as (agent,):
        message = _agent_in(agent, "127.0.0.1", user=True)
    assert isinstance(message, str)
    assert "icmp probes cannot run" in message
    assert "net.ipv4.ping_group_range" in message and "CAP_NET_RAW" in message
