"""Run a scenario: collector + agents as real processes, target servers, DNS, fault clock.

Order: lab CA and mTLS certificates -> the router chains of path_break agents (network
namespaces, `paths`) -> DNS + target servers (in this process) -> collector subprocess on a
fresh embedded store -> one agent subprocess per agent -> wait until every
agent has stored results (the scenario clock starts there) -> apply faults on a tick while
polling the collector's API for verdicts and events -> final events, expect, SQL examples
-> stop agents, collector, servers; remove the work directory. The teardown runs on every
exit path (error, Ctrl-C, SIGTERM); children also get SIGTERM if this process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yaml

from collector import ca
from collector.errors import CollectorError, ConfigError
from collector.lab import expect as expect_mod
from collector.lab import netns
from collector.lab.dns import LabDns
from collector.lab.expect import EventHistory, ExpectOutcome
from collector.lab.faults import Effect, Timeline
from collector.lab.paths import LabPaths
from collector.lab.scenario import PATH_ROUTERS, Scenario
from collector.lab.targets import (
    DOMAIN,
    CertificateSet,
    LabCA,
    TargetServers,
    dns_address,
    hostname,
    target_address,
)

log = logging.getLogger(__name__)

COLLECTOR_READY_TIMEOUT_S = 60.0
AGENTS_READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# An agent's path trace takes up to 10 s (probe_agent.pathtrace.BUDGET_S); the report waits for
# the traces of path_break events that long and a little more, at any --speed.
TRACE_WAIT_S = 15.0
TICK_S = 0.05
_PY_MAIN = "import sys; from {module} import main; sys.exit(main())"

EXAMPLE_QUERIES = (
    (
        "Failing results by region and failure class",
        "SELECT region, failure_class, count() AS results FROM probe_results "
        "WHERE outcome != 'success' GROUP BY region, failure_class ORDER BY results DESC, region LIMIT 12",
    ),
    (
        "Success ratio and p95 latency per check and region",
        "SELECT check_id, region, round(countIf(outcome = 'success') / count(), 3) AS ok_ratio, "
        "round(quantile(0.95)(total_ms)) AS p95_ms FROM probe_results GROUP BY check_id, region "
        "ORDER BY check_id, region",
    ),
    (
        "Failing hosts (page sub-resources and targets), with the regions that saw them",
        "SELECT failure_host AS host, failure_class, count() AS results, "
        "arraySort(groupUniqArray(region)) AS regions FROM probe_results WHERE failure_host != '' "
        "GROUP BY host, failure_class ORDER BY results DESC LIMIT 10",
    ),
)


def _require_icmp(scenario: Scenario) -> None:
    """icmp checks need ping sockets or CAP_NET_RAW here: the agents would leave them out otherwise."""
    checks = [c.id for c in scenario.checks if c.probe == "icmp"]
    if not checks:
        return
    for sock_type in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, sock_type, socket.IPPROTO_ICMP).close()
        except OSError:
            continue
        return
    raise LabError(
        f"icmp checks ({', '.join(checks)}) need unprivileged ping sockets on this machine "
        "(sysctl net.ipv4.ping_group_range covering your group) or CAP_NET_RAW"
    )


def require_namespaces(scenario: Scenario) -> None:
    """path_break needs real network namespaces: refuse the scenario here rather than run it
    with paths that cannot break."""
    breaks = [f for f in scenario.faults if f.kind == "path_break"]
    if not breaks:
        return
    reason = netns.unavailable_reason()
    if reason:
        raise ConfigError(
            scenario.source,
            f"faults[{breaks[0].index}].fault",
            f"path_break runs the agents' paths through network namespaces, which this machine "
            f"cannot make: {reason}",
        )


class LabError(CollectorError):
    """The lab could not run (a process did not start, the API did not answer...)."""


class Observer(Protocol):
    """What the view and the JSON printer are told."""

    def started(self, lab: Lab) -> None: ...
    def tick(self, lab: Lab) -> None: ...
    def verdict_changed(self, lab: Lab, change: dict[str, Any]) -> None: ...
    def event_version(self, lab: Lab, event: EventHistory, version: dict[str, Any]) -> None: ...
    def fault_changed(self, lab: Lab, message: str) -> None: ...
    def finished(self, lab: Lab, report: LabReport) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class LatencyFigure:
    event_id: str
    check: str
    fault: str
    fault_at: float  # scenario seconds (as written in the file)
    latency_s: float  # scenario seconds from fault start to event open
    intervals: float  # the same in probe intervals
    budget_intervals: float  # confirm + 1


@dataclass
class LabReport:
    scenario: str
    wall_s: float
    startup_s: float  # from launch until every agent had stored results (the clock start)
    events: list[EventHistory]
    expect: list[ExpectOutcome]
    latencies: list[LatencyFigure]
    queries: list[tuple[str, str, list[str], list[list[Any]]]]

    @property
    def expect_met(self) -> bool:
        return all(o.met for o in self.expect)


@dataclass
class _Child:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    stopped: bool = False  # SIGSTOPped by an agent_offline fault

    def start(self, workdir: Path) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, looked up before fork
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _load_prctl() -> Any:
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once in the parent: a child between fork and exec must not load libraries.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the lab dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-c", _PY_MAIN.format(module=module), *args]


def _shared_port(addresses: list[str]) -> int:
    """A port free on every lab address (TCP and UDP), so all lab servers can share it."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind((address, port))
        except OSError:
            continue
        return port
    raise LabError("no port is free on every lab loopback address")


@dataclass
class Lab:
    scenario: Scenario
    observer: Observer
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="probenet-lab-")))
    timeline: Timeline = field(init=False)
    agent_numbers: dict[str, int] = field(init=False)
    api: str = ""
    grpc: str = ""
    port: int = 0
    clock_start: float = 0.0  # time.monotonic() at scenario t=0; 0 before the clock runs
    clock_start_epoch: float = 0.0
    phase: str = "starting"
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    vantage: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, EventHistory] = field(default_factory=dict)
    effects: dict[tuple[str, str], Effect] = field(default_factory=dict)
    started_monotonic: float = field(default_factory=time.monotonic)
    keep_workdir: bool = False  # leave logs and the store behind for inspection
    notify: tuple[dict[str, Any], ...] = ()  # collector.yaml `notify:` entries (--notify)

    def __post_init__(self) -> None:
        self.timeline = Timeline(self.scenario)
        self.agent_numbers = {agent: i + 1 for i, (agent, _) in enumerate(self.scenario.agents)}
        self._children: list[_Child] = []
        self._agents: dict[str, _Child] = {}
        self._servers: TargetServers | None = None
        self._dns: LabDns | None = None
        agents = self.scenario.path_agents
        self._paths = LabPaths(agents, list(self.scenario.targets)) if agents else None
        self._session: aiohttp.ClientSession | None = None
        self._seen_versions: set[tuple[str, Any, Any]] = set()
        self._verdict_keys: dict[str, tuple[Any, ...]] = {}
        self._active_faults: set[int] = set()

    # ------------------------------------------------------------ clock

    @property
    def t(self) -> float:
        """Seconds on the (scaled) scenario clock; negative before it starts."""
        return time.monotonic() - self.clock_start if self.clock_start else -1.0

    @property
    def scenario_t(self) -> float:
        """The clock in the scenario file's own seconds (times `--speed`)."""
        return max(self.t, 0.0) * self.scenario.speed

    @property
    def namespaces(self) -> list[str]:
        """The network namespaces of path_break agents' paths (made at setup, gone after)."""
        return self._paths.names if self._paths is not None else []

    def effect(self, agent: str, target: str) -> Effect | None:
        return self.effects.get((agent, target))

    # ------------------------------------------------------------ run

    async def run(self) -> LabReport:
        try:
            require_namespaces(self.scenario)
            _require_icmp(self.scenario)
            await self._setup()
            await self._wait_for_agents()
            self.clock_start = time.monotonic()
            self.clock_start_epoch = time.time()
            self.phase = "running"
            self.observer.started(self)
            await self._drive()
            self.phase = "finishing"
            await self._poll()
            await self._take_path_traces()
            report = await self._report()
            self.observer.finished(self, report)
            return report
        finally:
            await self._teardown()

    async def _setup(self) -> None:
        self.observer.message(f"lab {self.scenario.name}: work directory {self.workdir}")
        agents = list(self.agent_numbers)
        targets = list(self.scenario.targets)
        addresses = [dns_address(n) for n in self.agent_numbers.values()] + [
            target_address(n, i) for n in self.agent_numbers.values() for i in range(len(targets))
        ]
        self.port = _shared_port(addresses)
        target_ca = LabCA.create()
        certs = CertificateSet(target_ca, self.workdir)
        if self._paths is not None:
            # Not in a thread: a Ctrl-C must not find namespaces still being made after teardown.
            self._paths.start()
            self.observer.message(
                f"path_break: {', '.join(self._paths.agents)} reach the targets through "
                f"{PATH_ROUTERS} routers (network namespaces {self._paths.prefix}*)"
            )
        self._servers = TargetServers(
            self.scenario, self.agent_numbers, self.port, certs, self.effect, paths=self._paths
        )
        await self._servers.start()
        self._dns = LabDns(
            DOMAIN,
            {
                agent: (dns_address(n), {t: self._servers.address(agent, t) for t in targets})
                for agent, n in self.agent_numbers.items()
            },
            self.port,
            self.effect,
            {a: self._paths.agent_namespace(a) for a in self._paths.agents} if self._paths else None,
        )
        await self._dns.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        pki = self._issue_mtls()
        await self._start_collector(target_ca, pki)
        if self._paths is not None:
            host, _, port = self.grpc.rpartition(":")
            for agent in self._paths.agents:
                await self._paths.relay(agent, host, int(port))
        for agent, region in self.scenario.agents:
            self._start_agent(agent, region, pki)
        self.observer.message(f"started collector and {len(agents)} agents; waiting for their first results")

    def _issue_mtls(self) -> Path:
        pki = self.workdir / "pki"
        ca.init_ca(pki, name="probenet lab mTLS CA", days=2)
        ca.issue_collector(pki, pki, ["127.0.0.1", "localhost"], days=2)
        for agent, region in self.scenario.agents:
            ca.issue_agent(pki, pki, region, agent, days=2)
        return pki

    def collector_config(self, target_ca: LabCA, pki: Path) -> dict[str, Any]:
        s = self.scenario
        checks = [self._check_spec(check.id, target_ca) for check in s.checks]
        return {
            "listen": "127.0.0.1:0",
            "insecure": False,
            "tls": {
                "ca": str(pki / ca.CA_CERT),
                "cert": str(pki / "collector.pem"),
                "key": str(pki / "collector-key.pem"),
            },
            "api": {"listen": "127.0.0.1:0"},
            "store": {"url": f"chdb://{self.workdir / 'store'}", "flush_interval": min(0.5, s.interval / 4)},
            "evaluate_every": s.interval / 2,
            "notify": list(self.notify),
            "checks": checks,
        }

    def _check_spec(self, check_id: str, target_ca: LabCA) -> dict[str, Any]:
        check = next(c for c in self.scenario.checks if c.id == check_id)
        target = self.scenario.targets[check.target]
        host = hostname(target.name)
        scheme = "https" if target.tls else "http"
        where = {
            "http": f"{scheme}://{host}:{self.port}/",
            "page": f"{scheme}://{host}:{self.port}/",
            "tls": f"{host}:{self.port}",
            "tcp": f"{host}:{self.port}",
            "grpc": f"{host}:{self.port}",
            "dns": host,
            "icmp": host,
        }[check.probe]
        interval = self.scenario.interval
        spec: dict[str, Any] = {
            "id": check.id,
            "probe": check.probe,
            "target": where,
            "interval": interval,
            "timeout": min(interval, 10.0),
        }
        spec.update(dict(check.options))
        if target.tls:
            spec["tls"] = {**dict(check.options.get("tls") or {}), "ca_pem": target_ca.pem}
        return spec

    async def _start_collector(self, target_ca: LabCA, pki: Path) -> None:
        config_file = self.workdir / "collector.yaml"
        config_file.write_text(yaml.safe_dump(self.collector_config(target_ca, pki), sort_keys=False))
        child = _Child(
            "collector",
            _python("collector.cli", "--log-level", "WARNING", "serve", "--config", str(config_file)),
            self.workdir / "collector.log",
        )
        child.start(self.workdir)
        self._children.append(child)
        deadline = time.monotonic() + COLLECTOR_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in child.log.read_text(errors="replace").splitlines():
                if line.startswith("collector ready "):
                    fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
                    self.grpc, self.api = fields["grpc"], fields["api"]
                    return
            if not child.alive:
                raise LabError(f"the collector exited during start; its log:\n{child.tail()}")
            await asyncio.sleep(0.1)
        raise LabError(f"the collector was not ready within {COLLECTOR_READY_TIMEOUT_S:g}s:\n{child.tail()}")

    def _start_agent(self, agent: str, region: str, pki: Path) -> None:
        config = {
            "agent_id": agent,
            "region": region,
            "collector": self.grpc,
            "tls": {
                "ca": str(pki / ca.CA_CERT),
                "cert": str(pki / f"agent-{agent}.pem"),
                "key": str(pki / f"agent-{agent}-key.pem"),
            },
            "spool": {"dir": str(self.workdir / "spool" / agent)},
            "dns_server": f"{dns_address(self.agent_numbers[agent])}:{self.port}",
            "batch_size": 200,
        }
        phase = self.scenario.phase(agent)
        if phase is not None:
            config["phase"] = round(phase, 4)
        config_file = self.workdir / f"agent-{agent}.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        command = _python("probe_agent.cli", "--log-level", "WARNING", "run", "--config", str(config_file))
        if self._paths is not None and agent in self._paths:
            command = ["ip", "netns", "exec", self._paths.agent_namespace(agent), *command]
        child = _Child(agent, command, self.workdir / f"agent-{agent}.log")
        child.start(self.workdir)
        self._children.append(child)
        self._agents[agent] = child

    async def _wait_for_agents(self) -> None:
        wanted = len(self.agent_numbers)
        deadline = time.monotonic() + AGENTS_READY_TIMEOUT_S
        sql = "SELECT count(DISTINCT agent_id) FROM probe_results"
        while time.monotonic() < deadline:
            self._check_children()
            with contextlib.suppress(LabError):
                _, rows = await self.query(sql)
                if rows and int(rows[0][0]) >= wanted:
                    return
            self.observer.tick(self)
            await asyncio.sleep(0.25)
        raise LabError(f"not every agent delivered results within {AGENTS_READY_TIMEOUT_S:g}s")

    def _check_children(self) -> None:
        for child in self._children:
            if not child.alive:
                raise LabError(f"{child.name} exited unexpectedly; its log:\n{child.tail()}")

    async def _drive(self) -> None:
        poll_every = max(0.2, min(1.0, self.scenario.interval / 4))
        next_poll = 0.0
        while self.t < self.scenario.duration:
            await self._apply_faults()
            if self.t >= next_poll:
                self._check_children()
                await self._poll()
                next_poll = self.t + poll_every
            self.observer.tick(self)
            await asyncio.sleep(TICK_S)

    async def _apply_faults(self) -> None:
        t = self.t
        self.effects = self.timeline.effects(t)
        assert self._servers is not None
        await self._servers.apply()
        if self._paths is not None:
            await self._paths.apply(self.timeline.path_breaks(t))
        offline = self.timeline.offline_agents(t)
        for agent, child in self._agents.items():
            if (agent in offline) != child.stopped:
                child.signal(signal.SIGSTOP if agent in offline else signal.SIGCONT)
                child.stopped = agent in offline
        active = {f.index for f in self.timeline.active_faults(t)}
        for fault in self.scenario.faults:
            if (fault.index in active) != (fault.index in self._active_faults):
                verb = "starts" if fault.index in active else "ends"
                who = _who(self.scenario, fault.agents)
                what = (
                    f"{fault.target or 'all targets'}" if fault.kind not in ("agent_offline",) else "agents"
                )
                self.observer.fault_changed(self, f"fault {fault.label} {verb}: {what} for {who}")
        self._active_faults = active

    # ------------------------------------------------------------ API

    async def _get(self, path: str) -> Any:
        assert self._session is not None
        try:
            async with self._session.get(self.api + path) as response:
                if response.status != 200:
                    raise LabError(f"GET {path}: HTTP {response.status}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise LabError(f"GET {path}: {exc}") from exc

    async def query(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        assert self._session is not None
        try:
            async with self._session.post(self.api + "/api/v1/query", json={"sql": sql}) as response:
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise LabError(f"query failed: {exc}") from exc
        if "error" in body:
            raise LabError(f"query failed: {body['error']}")
        return list(body.get("columns") or []), list(body.get("rows") or [])

    async def _poll(self) -> None:
        with contextlib.suppress(LabError):
            self._take_status(await self._get("/api/v1/status"))
        with contextlib.suppress(LabError):
            self._take_events(await self._get("/api/v1/events?versions=all&limit=1000"))

    def _take_status(self, payload: Any) -> None:
        checks = payload.get("checks", []) if isinstance(payload, Mapping) else []
        if isinstance(checks, Mapping):
            checks = list(checks.values())
        for raw in checks:
            if not isinstance(raw, Mapping):
                continue
            check = str(raw.get("check") or raw.get("check_id") or raw.get("id") or "")
            self.status[check] = dict(raw)
            key = (
                raw.get("status"),
                raw.get("scope"),
                tuple(raw.get("regions") or ()),
                expect_mod.cause_class(raw),
            )
            if self._verdict_keys.get(check) != key:
                first = check not in self._verdict_keys
                self._verdict_keys[check] = key
                if not (first and raw.get("status") in ("ok", "unknown")):
                    self.observer.verdict_changed(
                        self,
                        {
                            "check": check,
                            "status": raw.get("status"),
                            "scope": raw.get("scope"),
                            "regions": list(raw.get("regions") or ()),
                            "cause": raw.get("cause"),
                            "region_states": raw.get("region_states") or {},
                        },
                    )
        vantage = payload.get("vantage", []) if isinstance(payload, Mapping) else []
        self.vantage = [dict(v) for v in vantage if isinstance(v, Mapping)]

    def _take_events(self, payload: Any) -> None:
        events = payload.get("events", []) if isinstance(payload, Mapping) else payload
        for raw in sorted(
            events or [],
            key=lambda e: (str(e.get("opened_at")), str(e.get("id")), int(e.get("version") or 0)),
        ):
            if not isinstance(raw, Mapping):
                continue
            versions = raw.get("versions")
            for version in versions if isinstance(versions, list) and versions else [raw]:
                merged = {**{k: v for k, v in raw.items() if k != "versions"}, **version}
                self._take_event_version(merged)

    def _take_event_version(self, event: dict[str, Any]) -> None:
        event_id = str(event.get("id"))
        key = (event_id, event.get("version"), event.get("closed_at"))
        if key in self._seen_versions:
            return
        self._seen_versions.add(key)
        history = self.events.get(event_id)
        if history is None:
            history = EventHistory(event_id, str(event.get("kind") or "check"), str(event.get("check") or ""))
            self.events[event_id] = history
        if history.versions and history.versions[-1].get("version") == event.get("version"):
            history.versions[-1] = event  # same version, now closed
        else:
            history.versions.append(event)
        self.observer.event_version(self, history, event)

    # ------------------------------------------------------------ report

    async def _take_path_traces(self) -> None:
        """Each check event's stored path traces. An event in a region of path_break agents
        waits (TRACE_WAIT_S in all) for a trace from each such agent: traces take seconds, and
        the agents of one region finish theirs apart."""
        broken = {(a, r) for a, r in self.scenario.agents if self._paths is not None and a in self._paths}
        deadline = time.monotonic() + TRACE_WAIT_S
        for event in self.events.values():
            if event.kind != "check":
                continue
            regions = {r for v in event.versions for r in v.get("regions") or ()}
            wanted = {a for a, r in broken if r in regions}
            while True:
                with contextlib.suppress(LabError):
                    event.path_traces = list((await self._get(f"/api/v1/events/{event.id}"))["path_traces"])
                if wanted <= {t.get("agent") for t in event.path_traces} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)

    async def _report(self) -> LabReport:
        events = sorted(self.events.values(), key=lambda e: (str(e.opened_at), e.id))
        queries: list[tuple[str, str, list[str], list[list[Any]]]] = []
        for title, sql in EXAMPLE_QUERIES:
            try:
                columns, rows = await self.query(sql)
            except LabError as exc:
                columns, rows = ["error"], [[str(exc)]]
            queries.append((title, sql, columns, rows))
        return LabReport(
            scenario=self.scenario.name,
            wall_s=time.monotonic() - self.started_monotonic,
            startup_s=self.clock_start - self.started_monotonic,
            events=events,
            expect=self._expect(events),
            latencies=[f for f in (self._latency(e) for e in events) if f is not None],
            queries=queries,
        )

    def _expect(self, events: list[EventHistory]) -> list[ExpectOutcome]:
        outcomes = expect_mod.evaluate(self.scenario.expect, events)
        if self.scenario.strict:
            outcomes.append(expect_mod.unexpected_events(self.scenario.expect, events))
        return outcomes

    def _latency(self, event: EventHistory) -> LatencyFigure | None:
        opened = _epoch(event.opened_at)
        if opened is None or not self.clock_start_epoch:
            return None
        t_open = opened - self.clock_start_epoch
        targets = set(self.scenario.targets) if event.kind == "vantage" else self._targets_of(event.check)
        found = self.timeline.fault_start_before(t_open, targets)
        if found is None or event.kind == "cert_expiring":
            return None
        fault, onset = found
        check = next((c for c in self.scenario.checks if c.id == event.check), None)
        confirm = int(((check.options.get("verdict") or {}).get("confirm") or 2) if check else 2)
        latency = t_open - onset
        return LatencyFigure(
            event.id,
            event.check or event.kind,
            fault.label,
            onset * self.scenario.speed,
            latency * self.scenario.speed,
            latency / self.scenario.interval,
            confirm + 1,
        )

    def _targets_of(self, check_id: str) -> set[str]:
        check = next((c for c in self.scenario.checks if c.id == check_id), None)
        if check is None:
            return set(self.scenario.targets)
        target = self.scenario.targets[check.target]
        return {target.name, target.asset_host} - {""}

    # ------------------------------------------------------------ teardown

    async def _teardown(self) -> None:
        agents = [c for c in self._children if c.name != "collector"]
        collector = [c for c in self._children if c.name == "collector"]
        # Agents first (they drain their spool to the collector), then the collector.
        for group in (agents, collector):
            for child in group:
                child.signal(signal.SIGCONT)
                child.signal(signal.SIGTERM)
            await _wait_all(group, STOP_TIMEOUT_S)
        if self._session is not None:
            await self._session.close()
        if self._dns is not None:
            self._dns.close()
        if self._servers is not None:
            await self._servers.close()
        if self._paths is not None:  # after the agents: their spool drains through its relays
            await self._paths.close()
        if self.keep_workdir:
            self.observer.message(f"kept the work directory (logs, store): {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def _wait_all(children: list[_Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(c.alive for c in children) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling child exits
        await asyncio.sleep(0.05)
    for child in children:
        if child.alive:
            log.warning("%s did not stop within %gs; killing it", child.name, timeout)
            child.signal(signal.SIGKILL)
        if child.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(5)


def _who(scenario: Scenario, agents: tuple[str, ...]) -> str:
    """`it, fr` when whole regions are concerned, else the agent ids."""
    regions = [r for r, n in scenario.regions.items() if all(f"{r}-{i}" in agents for i in range(1, n + 1))]
    if len(regions) == len(scenario.regions):
        return "every region"
    covered = {f"{r}-{i}" for r in regions for i in range(1, scenario.regions[r] + 1)}
    return ", ".join([*regions, *(a for a in agents if a not in covered)])


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        import datetime as dt

        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None
