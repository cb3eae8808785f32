"""Live evaluation against a real chDB store: SQL agent states, events stored, a restart that
resumes the same events, and webhooks (a real aiohttp receiver on 127.0.0.1) that get every
event version exactly once, restart included."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from google.protobuf import json_format

from collector.cli import main
from collector.config import WebhookConfig, parse_checks
from collector.store import Store
from collector.store.rows import RESULT_COLUMNS, result_row
from collector.verdicts import Result, replay
from collector.verdicts.evaluator import Evaluator
from collector.verdicts.notify import Notifier
from collector.web import ApiState, make_app
from probenet.v1.probe_pb2 import ProbeResult
from tests.collector.verdicts.sim import Fault, Network, check_yaml, summary, to_proto_json

INTERVAL = 10.0
IDLE_WAIT_S = 20.0


@dataclass
class Receiver:
    """A webhook endpoint that fails its first request (so retries are exercised) and records bodies."""

    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.requests == 1:
            return web.Response(status=503)
        self.bodies.append((request.path, await request.json()))
        return web.Response(text="ok")


def _network() -> tuple[Network, float]:
    # Recent timestamps: the store's TTL drops rows older than ttl_days on insert.
    base = math.floor(time.time() / 3600) * 3600 - 3 * 3600
    faults = [Fault(60, 250, regions=("it",)), Fault(120, 180, checks=("web",))]
    network = Network(
        {"it": 2, "fr": 2, "de": 2}, checks=("web", "api"), interval=INTERVAL, duration=300, faults=faults
    )
    return network, base


def _shifted(results: list[Result], base: float, start: float) -> list[Result]:
    return [
        Result(
            r.check_id,
            r.agent_id,
            r.region,
            r.started_at - start + base,
            r.outcome,
            r.failure_class,
            r.failure_host,
            r.error,
            r.tls_days_left,
            r.page_failures,
        )
        for r in results
    ]


def _insert(store: Store, results: list[Result]) -> None:
    received = datetime.now(UTC)
    rows = [result_row(json_format.Parse(to_proto_json(r), ProbeResult()), received) for r in results]
    store.insert("probe_results", rows, RESULT_COLUMNS)


async def _wait_idle(notifier: Notifier) -> None:
    await asyncio.wait_for(notifier.wait_idle(), IDLE_WAIT_S)


async def _scenario(tmp_path: Path) -> dict[str, Any]:
    from tests.collector.verdicts.sim import START

    network, base = _network()
    results = _shifted(network.results(), base, START)
    checks = parse_checks(check_yaml(network.checks, INTERVAL)["checks"], "checks.yaml")
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/json", receiver.handle)
    app.router.add_post("/slack", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hooks = [
        WebhookConfig(f"http://127.0.0.1:{port}/json", "json"),
        WebhookConfig(f"http://127.0.0.1:{port}/slack", "slack"),
    ]
    url = f"chdb://{tmp_path / 'store'}"
    ticks = [base + k * INTERVAL for k in range(1, 33)]
    made: list[Any] = []
    store = Store(url)
    try:
        await store.run(store.migrate)
        notifier = Notifier(store, hooks, first_delay=0.01)
        evaluator = Evaluator(store, checks, 0.0, notifier)
        notify_task = asyncio.create_task(notifier.run())
        inserted = 0
        ordered = sorted(results, key=lambda r: r.started_at)

        async def run_tick(ev: Evaluator, now: float) -> None:
            nonlocal inserted
            upto = next((i for i, r in enumerate(ordered) if r.started_at > now), len(ordered))
            await store.run(_insert, store, ordered[inserted:upto])
            inserted = upto
            made.extend(await ev.tick(now))

        for now in ticks[:14]:  # up to base+140: web is global by then
            await run_tick(evaluator, now)
        await _wait_idle(notifier)
        # A crash: the next version is stored but the notifier is gone before sending it.
        notify_task.cancel()
        await asyncio.gather(notify_task, return_exceptions=True)
        for now in ticks[14:19]:
            await run_tick(evaluator, now)
        unsent_at_crash = len(made)
        await store.aclose()

        # Restart: a new store handle on the same directory, a new evaluator and notifier.
        store = Store(url)
        await store.run(store.migrate)
        notifier = Notifier(store, hooks, first_delay=0.01)
        evaluator = Evaluator(store, checks, 0.0, notifier)
        resumed = await evaluator.resume()
        notify_task = asyncio.create_task(notifier.run())
        for now in ticks[19:]:
            await run_tick(evaluator, now)
        await _wait_idle(notifier)
        notify_task.cancel()
        await asyncio.gather(notify_task, return_exceptions=True)

        api = await _api_answers(store)
        _, stored = await store.run(store.query, "SELECT event_id, version FROM outage_events")
        _, latest = await store.run(
            store.query, "SELECT event_id, version, closed_at FROM outage_events_latest"
        )
        return {
            "made": made,
            "results": results,
            "checks": checks,
            "ticks": ticks,
            "stored": stored,
            "latest": latest,
            "receiver": receiver,
            "resumed": resumed,
            "unsent_at_crash": unsent_at_crash,
            "api": api,
        }
    finally:
        await store.aclose()
        await runner.cleanup()


async def _api_answers(store: Store) -> dict[str, Any]:
    state = ApiState(store)
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            answers = {}
            for name, path in [
                ("events", "/api/v1/events?limit=1"),
                ("page2", "/api/v1/events?limit=1&next=1"),
                ("versions", "/api/v1/events?versions=all&check=web"),
                ("bad", "/api/v1/events?since=yesterday"),
            ]:
                async with session.get(base + path) as response:
                    answers[name] = (response.status, await response.json())
        return answers
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return asyncio.run(_scenario(tmp_path_factory.mktemp("live")))


def test_live_evaluation_restart_and_webhooks(live: dict[str, Any]) -> None:
    out = live
    made = out["made"]
    # SQL agent states give the same events as the pure engine over the same results.
    expected = summary(replay(out["checks"], out["results"]).events)
    assert summary(made) == expected
    assert [(v[1], v[3], v[4]) for v in summary(made)] == [
        ("api", "outage", "regional"),
        ("web", "outage", "regional"),
        ("web", "outage", "global"),
        ("web", "outage", "regional"),
        ("api", "outage", "regional"),
        ("web", "outage", "regional"),
    ]
    # The restarted evaluator resumed both open events and wrote no duplicate version.
    assert {e.check for e in out["resumed"]} == {"web", "api"}
    keys = [(r[0], int(r[1])) for r in out["stored"]]
    assert len(keys) == len(set(keys)) == len(made)
    assert all(closed is not None for _, _, closed in out["latest"])
    # Every version reached each webhook exactly once, the one made during the crash included.
    receiver: Receiver = out["receiver"]
    sent = Counter(
        (
            path,
            (body["event"]["id"], body["event"]["version"])
            if path == "/json"
            else body["attachments"][0]["footer"],
        )
        for path, body in receiver.bodies
    )
    assert all(n == 1 for n in sent.values())
    assert len(receiver.bodies) == 2 * len(made)
    assert out["unsent_at_crash"] < len(made)
    json_versions = [(b["event"]["id"], b["event"]["version"]) for p, b in receiver.bodies if p == "/json"]
    assert sorted(json_versions) == sorted((e.id, e.version) for e in made)
    # The closing version remembers the event's peak (stored, read back, sent).
    closing = next(
        b["event"]
        for p, b in receiver.bodies
        if p == "/json" and b["event"]["check"] == "web" and b["event"]["closed_at"]
    )
    assert (closing["scope"], closing["peak_scope"], closing["peak_regions"]) == (
        "regional",
        "global",
        ["de", "fr", "it"],
    )
    slack = next(b for p, b in receiver.bodies if p == "/slack")
    assert slack["text"] and slack["attachments"][0]["fields"]


def test_events_api_filters_and_pages(live: dict[str, Any]) -> None:
    api = live["api"]
    status, first = api["events"]
    assert status == 200
    assert len(first["events"]) == 1 and first["next"] == 1
    second = api["page2"][1]
    assert len(second["events"]) == 1 and second["next"] is None
    assert {first["events"][0]["check"], second["events"][0]["check"]} == {"web", "api"}
    versions = api["versions"][1]["events"]
    assert [e["version"] for e in versions] == [4, 3, 2, 1]
    assert [(e["scope"], e["peak_scope"], e["peak_regions"]) for e in versions] == [
        ("regional", "global", ["de", "fr", "it"]),
        ("regional", "global", ["de", "fr", "it"]),
        ("global", "global", ["de", "fr", "it"]),
        ("regional", "regional", ["it"]),
    ]
    assert api["bad"][0] == 400


def test_status_command_renders_the_api_answer(capsys: Any) -> None:
    doc = {
        "checks": [
            {
                "check": "web",
                "status": "outage",
                "scope": "regional",
                "regions": ["it"],
                "cause": {"class": "tcp_refused", "host": "web.example", "error": "x"},
                "region_states": {"it": "DOWN", "fr": "UP"},
            },
            {
                "check": "api",
                "status": "ok",
                "scope": "",
                "regions": [],
                "cause": None,
                "region_states": {"it": "UP", "fr": "NO_DATA"},
            },
        ],
        "regions": ["fr", "it"],
        "vantage": [
            {
                "scope": "agent",
                "region": "de",
                "agent": "de-1",
                "failing_checks": 4,
                "checks": 5,
                "cause": None,
            }
        ],
        "evaluated_at": "2027-01-15T08:00:00.000Z",
    }

    async def serve_and_call() -> int:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(doc)

        app = web.Application()
        app.router.add_get("/api/v1/status", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            api = f"http://127.0.0.1:{runner.addresses[0][1]}"
            plain = await asyncio.to_thread(main, ["status", "--api", api])
            as_json = await asyncio.to_thread(main, ["status", "--api", api, "--json"])
            return plain + as_json
        finally:
            await runner.cleanup()

    assert asyncio.run(serve_and_call()) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "SCOPE", "fr", "it", "CAUSE"]
    assert lines[1].split() == ["web", "outage", "regional", "up", "DOWN", "tcp_refused", "web.example"]
    assert lines[2].split() == ["api", "ok", "-", "up"]
    assert "impaired agent de-1 (de): 4/5 checks failing" in out
    assert json.loads(out[out.index("{") :])["regions"] == ["fr", "it"]


def test_status_command_without_a_collector_exits_1(capsys: Any) -> None:
    assert main(["status", "--api", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the collector API" in capsys.readouterr().err


PARITY = {
    "impaired agent": Network(
        {"it": 3, "fr": 3},
        checks=("a", "b", "c", "d"),
        duration=200,
        faults=[Fault(60, 150, agents=("it-1",), cls="tcp_timeout")],
    ),
    "impaired agent named as another region's": Network(
        {"it": 3, "fr": 3},
        checks=("a", "b", "c", "d"),
        duration=200,
        shared_names=True,
        faults=[Fault(60, 150, regions=("it",), agents=("a-1",), cls="tcp_timeout")],
    ),
    "impaired region": Network(
        {"it": 2, "fr": 2, "de": 2},
        checks=("a", "b", "c"),
        duration=200,
        faults=[Fault(60, 150, regions=("de",), cls="dns_timeout")],
    ),
    "partial page and mixed classes": Network(
        {"it": 3, "fr": 3},
        checks=("a",),
        duration=200,
        faults=[
            Fault(60, 150, agents=("it-1",), cls="dns_error", host="ns.example"),
            Fault(
                60,
                150,
                regions=("it",),
                outcome="partial",
                cls="subresource_failed",
                page_hosts=(
                    ("cdn.example", "tls_untrusted"),
                    ("img.example", "tcp_reset"),
                    ("cdn.example", "tls_untrusted"),
                ),
            ),
        ],
    ),
    "cert days": Network({"it": 2, "fr": 2}, checks=("a", "b"), duration=100, days_left=5.0),
    "staggered region incident and an impaired agent": Network(
        {"it": 2, "fr": 3, "de": 2},
        checks=("a", "b", "c", "d"),
        duration=200,
        stagger=2.5,
        faults=[
            Fault(65, 145, regions=("de",), cls="tcp_timeout"),
            Fault(95, 175, agents=("fr-2",), cls="tcp_reset"),
        ],
    ),
}


def _comparable(evaluation: Any) -> Any:
    verdicts = {
        c: (v.status, v.scope, v.regions, v.cause, v.region_states) for c, v in evaluation.verdicts.items()
    }
    return (
        verdicts,
        evaluation.vantage,
        evaluation.certs,
        evaluation.impaired_agents,
        evaluation.impaired_regions,
        evaluation.held_agents,
        evaluation.held_regions,
        evaluation.memory,
    )


def test_sql_agent_states_match_the_pure_engine(tmp_path: Path) -> None:
    from collector.verdicts import CheckOptions, Engine
    from collector.verdicts.evaluator import load_samples
    from tests.collector.verdicts.sim import START

    base = math.floor(time.time() / 3600) * 3600 - 3 * 3600
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        store.migrate()
        noticed: dict[str, set[str]] = {}
        for name, network in PARITY.items():
            store.command("TRUNCATE TABLE probe_results")
            probe = "tls" if network.days_left is not None else "page"
            engine = Engine(
                [
                    CheckOptions(c, probe=probe, target=f"{c}.example:443", interval=INTERVAL)
                    for c in network.checks
                ]
            )
            results = sorted(_shifted(network.results(), base, START), key=lambda r: r.started_at)
            inserted = 0
            expected = got = None  # each path carries its own vantage memory
            for k in range(1, int(network.duration / INTERVAL) + 2):
                now = base + k * INTERVAL
                upto = next((i for i, r in enumerate(results) if r.started_at > now), len(results))
                if upto > inserted:
                    _insert(store, results[inserted:upto])
                    inserted = upto
                expected = engine.evaluate(now, results[:upto], expected)
                samples, quiet = load_samples(store, engine.options.values(), now)
                got = engine.evaluate_samples(now, samples, quiet, got)
                assert _comparable(got) == _comparable(expected), f"{name} at +{k * INTERVAL:.0f}s"
                seen = noticed.setdefault(name, set())
                seen |= {v.scope for v in got.vantage} | {"cert" for _ in got.certs}
                seen |= {f"{h.scope} {h.phase}" for h in got.memory if h.held}
                seen |= {v.status for v in got.verdicts.values()}
        assert noticed == {
            "impaired agent": {"agent", "ok", "agent onset"},
            "impaired agent named as another region's": {"agent", "ok", "agent onset"},
            "impaired region": {"region", "ok", "region onset"},
            "partial page and mixed classes": {"partial", "ok"},
            "cert days": {"cert", "ok"},
            "staggered region incident and an impaired agent": {
                "region",
                "agent",
                "ok",
                "region onset",
                "region recovering",
                "agent onset",
                "agent recovering",
            },
        }
    finally:
        store.close()
