"""Path traces through a chain of network namespaces with routers, one of which stays silent."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

from collector.lab import netns
from probe_agent.pathtrace import MIN_INTERVAL_S, PathTracer, trace_path
from probe_agent.probes.context import ProbeContext
from probenet.v1.stream_pb2 import PathTraceRequest

NETNS_SKIP = netns.unavailable_reason()


def test_loopback_is_one_hop_reached() -> None:
    hops, reached = asyncio.run(trace_path("127.0.0.1"))
    assert reached
    assert [(h.ttl, h.address, h.sent, h.lost) for h in hops] == [(1, "127.0.0.1", 3, 0)]
    assert len(hops[0].rtt_ms) == 3


def test_one_trace_per_host_per_five_minutes() -> None:
    now = [1000.0]
    tracer = PathTracer(ProbeContext(), clock=lambda: now[0])
    request = PathTraceRequest(event_id="e1", check_id="c", host="127.0.0.1")
    first = asyncio.run(tracer.answer(request))
    assert first is not None and first.reached and first.event_id == "e1"
    now[0] += MIN_INTERVAL_S - 1
    assert asyncio.run(tracer.answer(request)) is None
    now[0] += 2
    assert asyncio.run(tracer.answer(request)) is not None


def test_unresolvable_host_is_a_trace_with_an_error() -> None:
    tracer = PathTracer(ProbeContext())
    trace = asyncio.run(tracer.answer(PathTraceRequest(host="nothing.invalid", dns_server="127.0.0.1:9")))
    assert trace is not None and trace.error and not trace.hops


@pytest.mark.skipif(bool(NETNS_SKIP), reason=NETNS_SKIP)
def test_trace_through_three_routers_with_a_silent_one() -> None:
    with netns.router_chain(f"t{id(NETNS_SKIP) % 1000}", 3) as made:
        agent, silent = made[0], made[2]
        # r2 forwards but never says "time exceeded" (its ICMP rate limit never lets one out).
        netns.sysctl(silent, "net.ipv4.icmp_ratelimit", "100000000")
        script = Path(sys.executable).with_name("probe-agent")
        proc = netns.run_in(agent, [str(script), "trace", "10.78.4.2", "--json"])
        text = netns.run_in(agent, [str(script), "trace", "10.78.4.2"])
    assert proc.returncode == 0, proc.stderr
    trace = json.loads(proc.stdout)
    assert trace["reached"] is True and trace["address"] == "10.78.4.2"
    hops = [(h["ttl"], h.get("address", ""), h.get("lost", 0)) for h in trace["hops"]]
    assert hops == [(1, "10.78.1.2", 0), (2, "", 3), (3, "10.78.3.2", 0), (4, "10.78.4.2", 0)]
    assert "   2  *" in text.stdout and "(3/3 lost)" in text.stdout


@pytest.mark.skipif(bool(NETNS_SKIP), reason=NETNS_SKIP)
def test_tcp_trace_crosses_a_router_that_drops_traceroute_udp() -> None:
    """r1 drops UDP to traceroute's ports (as many firewalls do): the UDP trace sees nothing,
    the TCP trace to the check's port reaches the destination (its RST answers a closed port)."""
    with netns.router_chain(f"u{id(NETNS_SKIP) % 1000}", 3) as made:
        agent, first_router = made[0], made[1]
        netns.ip("rule", "add", "ipproto", "udp", "dport", "33434-33600", "blackhole", ns=first_router)
        script = Path(sys.executable).with_name("probe-agent")
        udp = netns.run_in(agent, [str(script), "trace", "10.78.4.2", "--json"])
        tcp = netns.run_in(agent, [str(script), "trace", "10.78.4.2", "--tcp", "443", "--json"])
        text = netns.run_in(agent, [str(script), "trace", "10.78.4.2", "--tcp", "443"])
    udp_trace, tcp_trace = json.loads(udp.stdout), json.loads(tcp.stdout)
    assert not udp_trace.get("reached") and udp_trace["method"] == "udp"
    assert all("address" not in h for h in udp_trace["hops"])
    assert tcp.returncode == 0, tcp.stderr
    assert tcp_trace["reached"] is True and tcp_trace["method"] == "tcp"
    hops = [(h["ttl"], h.get("address", "")) for h in tcp_trace["hops"]]
    assert hops == [(1, "10.78.1.2"), (2, "10.78.2.2"), (3, "10.78.3.2"), (4, "10.78.4.2")]
    assert "over tcp" in text.stdout


def test_tcp_trace_on_loopback_reaches_a_listener_and_a_closed_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        for port in (listener.getsockname()[1], _closed_port()):
            hops, reached = asyncio.run(trace_path("127.0.0.1", tcp_port=port))
            assert reached and [(h.ttl, h.address, h.lost) for h in hops] == [(1, "127.0.0.1", 0)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
