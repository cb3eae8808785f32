"""Path evidence: an event that opens or widens asks its regions' agents for a path trace over the
stream; a real agent traces, the collector stores the hops, the API and the CLI show them."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from collector.app import Collector, _wire_path_evidence
from collector.commands.events import render_traces
from collector.store import Store
from collector.store.events import insert_events
from collector.verdicts.events import Event
from collector.verdicts.evidence import Widening
from collector.verdicts.model import Cause
from collector.web import ApiState, make_app
from probe_agent.agent import Agent
from probe_agent.config import config_from_mapping
from probenet.v1.probe_pb2 import CheckSpec
from tests.collector.stream_kit import insecure_config, running_collector


def _event(event_id: str, version: int, regions: tuple[str, ...], closed: bool = False) -> Event:
    now = time.time()
    return Event(
        id=event_id, version=version, kind="check", check="web", status="outage", scope="regional",
        regions=regions, cause=Cause("tcp_timeout", "127.0.0.1", "timed out"), opened_at=now,
        updated_at=now, closed_at=now if closed else None,
    )  # fmt: skip


def test_only_opening_and_widening_ask_for_traces() -> None:
    widening = Widening()
    assert [r for _, r in widening.new_regions([_event("e", 1, ("it",))])] == [("it",)]
    assert [r for _, r in widening.new_regions([_event("e", 2, ("fr", "it"))])] == [("fr",)]
    assert widening.new_regions([_event("e", 3, ("fr",))]) == []  # narrowing
    assert widening.new_regions([_event("e", 4, ("fr", "it"))]) == []  # back to what was traced
    vantage = dataclasses.replace(_event("v", 1, ("it",)), kind="vantage")
    assert widening.new_regions([vantage]) == []
    assert widening.new_regions([_event("e", 5, ("fr", "it"), closed=True)]) == []
    assert [r for _, r in widening.new_regions([_event("e", 6, ("it",))])] == [("it",)]


class _Evaluator:
    on_changes: Any = None


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _traced(store: Store, event_id: str) -> int:
    _, rows = store.query("SELECT count() FROM path_traces WHERE event_id = {e:String}", {"e": event_id})
    return int(rows[0][0])


async def _scenario(store: Store, tmp_path: Path) -> tuple[dict[str, Any], str, list[str]]:
    check = CheckSpec(id="web", probe="tcp", target="127.0.0.1:9")
    config = insecure_config(checks=(check,))
    async with running_collector(store, config) as col:
        evaluator = _Evaluator()
        collector = Collector(config, store, col.ingestor, col.service, ApiState(store))
        _wire_path_evidence(collector, evaluator)  # type: ignore[arg-type]
        agents = []
        for agent_id, region in (("it-1", "it"), ("fr-1", "fr")):
            agent_config = config_from_mapping(
                {"agent_id": agent_id, "region": region, "insecure": True, "collector": col.address,
                 "spool": {"dir": str(tmp_path / agent_id)}},
                "agent.yaml",
            )  # fmt: skip
            agents.append(Agent(agent_config))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        try:
            await _until(lambda: {who.agent_id for who in col.service.streams} == {"it-1", "fr-1"})
            event = _event("ev-path", 1, ("it",))
            insert_events(store, [event])
            evaluator.on_changes([event])
            await _until(lambda: _traced(store, "ev-path") > 0)
            await asyncio.sleep(0.5)
            return await _api_and_cli(store)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _api_and_cli(store: Store) -> tuple[dict[str, Any], str, list[str]]:
    runner = web.AppRunner(make_app(ApiState(store)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/api/v1/events/ev-path") as response:
                assert response.status == 200
                detail = await response.json()
            async with session.get(base + "/api/v1/events/nope") as response:
                assert response.status == 404
        script = Path(sys.executable).with_name("probe-collector")
        proc = await asyncio.create_subprocess_exec(
            str(script), "events", "show", "ev-path", "--api", base,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return detail, out.decode(), []
    finally:
        await runner.cleanup()


def test_an_opened_event_gets_path_traces_from_its_region_only(store: Store, tmp_path: Path) -> None:
    detail, shown, _ = asyncio.run(_scenario(store, tmp_path))
    assert detail["event"]["id"] == "ev-path"
    traces = detail["path_traces"]
    assert [t["agent"] for t in traces] == ["it-1"], "fr is not affected: its agent is not asked"
    trace = traces[0]
    assert trace["reached"] and trace["address"] == "127.0.0.1" and trace["host"] == "127.0.0.1"
    assert trace["hops"][0]["address"] == "127.0.0.1" and len(trace["hops"][0]["rtt_ms"]) == 3
    assert "path traces: 1" in shown and "it-1 (it)" in shown and "127.0.0.1" in shown


def test_side_by_side_marks_where_paths_diverge() -> None:
    def trace(agent: str, hops: list[str]) -> dict[str, Any]:
        return {
            "agent": agent, "region": agent[:2], "host": "h", "address": hops[-1], "reached": True, "error": "",
            "hops": [{"ttl": i + 1, "address": a, "rtt_ms": [1.0], "sent": 3, "lost": 0 if a else 3}
                     for i, a in enumerate(hops)],
        }  # fmt: skip

    lines = render_traces(
        [trace("it-1", ["10.0.0.1", "10.1.0.1", "9.9.9.9"]), trace("fr-1", ["10.0.0.1", "", "9.9.9.9"])]
    )
    assert "paths diverge" not in lines[1]
    assert lines[2].endswith("<- paths diverge") and "* 3/3 lost" in lines[2]
    assert "paths diverge" not in lines[3]


def test_tcp_checks_are_traced_over_tcp_to_their_port() -> None:
    from collector.verdicts.evidence import trace_request

    event = _event("e", 1, ("it",))
    cases = {
        ("http", "https://shop.example/"): 443,
        ("page", "http://shop.example:8080/x"): 8080,
        ("tls", "shop.example:8443"): 8443,
        ("grpc", "api.example:50051"): 50051,
        ("tcp", "[2001:db8::1]:25"): 25,
        ("dns", "shop.example"): 0,
        ("icmp", "shop.example"): 0,
    }
    for (probe, target), port in cases.items():
        request = trace_request(event, CheckSpec(id="web", probe=probe, target=target))
        assert request is not None and request.tcp_port == port, (probe, target)
        assert request.host == "127.0.0.1"  # the failing host named by the cause
    no_cause = dataclasses.replace(event, cause=None)
    request = trace_request(no_cause, CheckSpec(id="web", probe="http", target="https://a.example:444/"))
    assert request is not None and (request.host, request.tcp_port) == ("a.example", 444)
    assert trace_request(no_cause, None) is None
