"""The routed paths of path_break agents, in real network namespaces (root; CI runs as root)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ConfigError
from collector.lab import netns
from collector.lab.paths import PREFIX, LabPaths, sweep_stale
from collector.lab.runner import require_namespaces
from collector.lab.scenario import builtin_path, load_scenario

NETNS_SKIP = netns.unavailable_reason()
needs_netns = pytest.mark.skipif(bool(NETNS_SKIP), reason=NETNS_SKIP)
PROBE_AGENT = str(Path(sys.executable).with_name("probe-agent"))


def trace(ns: str, address: str) -> dict[str, Any]:
    done = netns.run_in(ns, [PROBE_AGENT, "trace", address, "--json"])
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def answering(found: dict[str, Any]) -> list[tuple[int, str]]:
    return [(h["ttl"], h.get("address", "")) for h in found["hops"]]


@needs_netns
def test_a_break_silences_its_router_and_everything_beyond() -> None:
    paths = LabPaths(["fr-1"], ["shop", "api"])
    try:
        paths.start()
        agent = paths.agent_namespace("fr-1")
        shop, api = paths.target_address("shop"), paths.target_address("api")
        path = [(1, "10.78.1.2"), (2, "10.78.2.2"), (3, "10.78.3.2")]
        assert answering(trace(agent, shop)) == [*path, (4, shop)]
        asyncio.run(paths.apply({("fr-1", "shop"): 2, ("it-1", "shop"): 1}))  # it-1 has no path here
        broken = trace(agent, shop)
        assert "reached" not in broken  # proto3 JSON leaves false out
        assert answering(broken)[0] == (1, "10.78.1.2")
        assert {address for _, address in answering(broken)[1:]} == {""} and len(broken["hops"]) >= 3
        assert answering(trace(agent, api)) == [*path, (4, api)]  # only the shop's route is gone
        asyncio.run(paths.apply({}))
        assert trace(agent, shop)["reached"] is True
    finally:
        asyncio.run(paths.close())
    assert netns.existing(paths.prefix) == []


@needs_netns
def test_the_relay_carries_the_agent_namespace_to_a_server_here() -> None:
    async def scenario() -> str:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"collector says " + await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        paths = LabPaths(["de-1"], ["shop"])
        try:
            paths.start()
            await paths.relay("de-1", "127.0.0.1", port)
            client = await asyncio.create_subprocess_exec(
                *["ip", "netns", "exec", paths.agent_namespace("de-1"), sys.executable, "-c"],
                "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10); "
                "s.sendall(b'hello\\n'); print(s.makefile().readline().strip())",
                str(port),
                stdout=subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(client.communicate(), 30)
            return out.decode().strip()
        finally:
            await paths.close()
            server.close()

    assert asyncio.run(scenario()) == "collector says hello"


@needs_netns
def test_namespaces_of_labs_that_are_gone_are_swept() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale, mine = f"{PREFIX}{gone.pid}x1-fr-1-agent", f"{PREFIX}{os.getpid()}x999-fr-1-agent"
    netns.make([stale, mine])
    try:
        assert stale in sweep_stale()
        assert netns.existing(f"{PREFIX}{gone.pid}x") == []
        assert netns.existing(mine) == [mine]  # this process is alive: its namespaces stay
    finally:
        netns.delete([stale, mine])


def test_without_namespaces_a_path_break_scenario_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "unavailable_reason", lambda: "needs root to make network namespaces")
    scenario = load_scenario(builtin_path("path-break-region"))
    with pytest.raises(ConfigError) as info:
        require_namespaces(scenario)
    assert info.value.file.endswith("path-break-region.yaml")
    assert info.value.key == "faults[0].fault"
    assert "path_break" in info.value.reason and "needs root" in info.value.reason
    require_namespaces(load_scenario(builtin_path("global-outage")))  # no path_break: no namespaces
