"""Lab scenario files (DESIGN.md section 6, a contract): parse, validate, scale.

Every error names the file, the key (``faults[2].until``) and the reason, and the command
exits 2. Times are seconds (floats) once parsed; `Scenario.scaled(speed)` divides them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from collector.config import parse_seconds, read_yaml_mapping
from collector.errors import ConfigError
from probenet.v1.probe_pb2 import FailureClass

# grpc: a grpc.health.v1 server over TLS (lab certificates, so certificate faults apply).
TARGET_KINDS = ("http", "https", "page", "grpc")
PROBES = ("http", "tls", "page", "dns", "tcp", "grpc", "icmp")
# Faults that take a parameter after a colon, and those that take none.
PARAM_FAULTS = ("http_status", "slow", "flap")
PLAIN_FAULTS = (
    "cert_expired",
    "cert_not_yet_valid",
    "cert_wrong_host",
    "cert_untrusted",
    "refuse",
    "blackhole",
    "reset",
    "dns_nxdomain",
    "agent_offline",
    "region_offline",
    "grpc_not_serving",
    "path_break",
)
_PARAM_NAMES = {"http_status": "code", "slow": "ms", "flap": "period"}
DEFAULT_PHASE_SPREAD = 0.9
CERT_FAULTS = ("cert_expired", "cert_not_yet_valid", "cert_wrong_host", "cert_untrusted")
# Faults about the vantage point (agents, their network), not about one target.
VANTAGE_FAULTS = ("agent_offline", "region_offline")
# path_break: the agents' path to the target runs through this many routers (network namespaces);
# the fault silences the router at `hop` (1 = the first) and everything beyond it.
PATH_ROUTERS = 3
DEFAULT_BREAK_HOP = 2
# Faults that may leave `target` out (then: every target).
ANY_TARGET_FAULTS = ("refuse", "blackhole", "reset", "slow", "path_break")
# Event statuses: check events are partial/outage, vantage events impaired, cert_expiring warning.
STATUSES = ("ok", "partial", "outage", "unknown", "impaired", "warning")
SCOPES = ("global", "regional", "undetermined", "agent", "region")
EVENT_KINDS = ("check", "vantage", "cert_expiring")
STRICT_KIND = "strict"  # the kind of the outcome reporting `strict: true` (not an event kind)
FAILURE_CLASSES = frozenset(n.lower() for n in FailureClass.DESCRIPTOR.values_by_name if n != "NONE") | {
    "tls_cert_expiring"
}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_AGENT = re.compile(r"^([a-z][a-z0-9-]*)-(\d+)$")
DEFAULT_SCENARIO = "shop-assets-cert-expired"


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # http | https | page
    assets: int = 0
    asset_host: str = ""  # page kind: the target serving its assets ("" = itself)
    cert_days_left: float = 90.0  # https/page: lifetime left on the served certificate

    @property
    def tls(self) -> bool:
        return self.kind != "http"


@dataclass(frozen=True)
class Check:
    id: str
    probe: str
    target: str
    # Extra CheckSpec fields passed through (timeout, verdict, http, page...), proto3 JSON form.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    at: float
    until: float
    param: float = 0.0  # status code, delay in ms or flap period in seconds
    target: str = ""  # "" = every target
    agents: tuple[str, ...] = ()  # resolved from regions/agents: never empty
    hop: int = 0  # path_break: the router that drops (1..PATH_ROUTERS)

    @property
    def label(self) -> str:
        if self.kind == "path_break":
            return f"path_break@hop{self.hop}"
        if self.kind == "http_status":
            return f"http_status:{int(self.param)}"
        if self.kind == "slow":
            return f"slow:{self.param:g}ms"
        if self.kind == "flap":
            return f"flap:{self.param:g}s"
        return self.kind


@dataclass(frozen=True)
class Expectation:
    check: str
    status: str
    scope: str = ""
    regions: tuple[str, ...] | None = None
    cause: str = ""
    kind: str = ""
    closed: bool = False  # also require the matching event to be closed by the end of the run
    host: str = ""  # the target the cause concerns (for a page: the failing asset host)
    first: bool = False  # the matching version must be the event's first (right from the start)
    versions: int = 0  # when > 0: the matching event has exactly this many versions (closing included)
    broken_at: int = 0  # when > 0: the event's path traces answer before this hop and not from it on

    def describe(self) -> str:
        if self.kind == STRICT_KIND:
            return "no event expect does not ask for (strict)"
        parts = [f"{self.check or '(any check)'} {self.status}"]
        if self.kind:
            parts.append(f"kind={self.kind}")
        if self.scope:
            parts.append(f"scope={self.scope}")
        if self.regions is not None:
            parts.append(f"regions={','.join(self.regions)}")
        if self.cause:
            parts.append(f"cause={self.cause}")
        if self.host:
            parts.append(f"on {self.host}")
        if self.first:
            parts.append("from its first version")
        if self.versions:
            parts.append(f"in {self.versions} versions")
        if self.broken_at:
            parts.append(f"path broken at hop {self.broken_at}")
        if self.closed:
            parts.append("then closed")
        return " ".join(parts)


@dataclass(frozen=True)
class Scenario:
    name: str
    interval: float
    duration: float
    regions: Mapping[str, int]
    targets: Mapping[str, Target]
    checks: tuple[Check, ...]
    faults: tuple[Fault, ...] = ()
    expect: tuple[Expectation, ...] = ()
    description: str = ""
    source: str = "<memory>"
    speed: float = 1.0
    # Agent k of n (in `agents` order) probes at phase_spread x k/(n-1) of every interval; None:
    # the scheduler's random phases and jitter. Spread is what production looks like.
    phase_spread: float | None = DEFAULT_PHASE_SPREAD
    # Every event must be one an entry of `expect` asks for (by kind and check): nothing else fails.
    strict: bool = False

    def phase(self, agent_id: str) -> float | None:
        if self.phase_spread is None:
            return None
        order = [a for a, _ in self.agents]
        return self.phase_spread * order.index(agent_id) / max(len(order) - 1, 1)

    @property
    def agents(self) -> list[tuple[str, str]]:
        """(agent_id, region) in a stable order: region order of the file, then number."""
        return [
            (f"{region}-{n}", region) for region, count in self.regions.items() for n in range(1, count + 1)
        ]

    @property
    def path_agents(self) -> tuple[str, ...]:
        """Agents of a path_break fault: their path to the targets runs through routers."""
        listed = [a for f in self.faults if f.kind == "path_break" for a in f.agents]
        return tuple(a for a, _ in self.agents if a in listed)

    def scaled(self, speed: float) -> Scenario:
        """The same scenario with every time divided by `speed` (so tests run fast)."""
        if speed == 1.0:
            return self
        faults = tuple(
            dataclasses.replace(
                f,
                at=f.at / speed,
                until=f.until / speed,
                param=f.param / speed if f.kind in ("slow", "flap") else f.param,
            )
            for f in self.faults
        )
        checks = tuple(dataclasses.replace(c, options=_scaled_options(c.options, speed)) for c in self.checks)
        return dataclasses.replace(
            self,
            interval=self.interval / speed,
            duration=self.duration / speed,
            faults=faults,
            checks=checks,
            speed=self.speed * speed,
        )


def _scaled_options(options: Mapping[str, Any], speed: float) -> Mapping[str, Any]:
    if "timeout" not in options:
        return options
    return {**options, "timeout": float(options["timeout"]) / speed}


# ---------------------------------------------------------------- loading


def builtin_names() -> list[str]:
    folder = resources.files("collector.lab") / "scenarios"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("collector.lab") / "scenarios" / f"{name}.yaml"))


def resolve_scenario_path(arg: str | None) -> Path:
    """A path, or the name of a built-in scenario, or (None) the default replay."""
    if not arg:
        return builtin_path(DEFAULT_SCENARIO)
    path = Path(arg)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in arg:
        return path
    if arg in builtin_names():
        return builtin_path(arg)
    raise ConfigError(arg, "-", f"no such file or built-in scenario; built-in: {', '.join(builtin_names())}")


def load_scenario(path: str | Path) -> Scenario:
    return scenario_from_mapping(read_yaml_mapping(path), str(path))


_TOP_KEYS = (
    "name",
    "description",
    "interval",
    "duration",
    "regions",
    "targets",
    "checks",
    "faults",
    "expect",
    "phase_spread",
    "strict",
)


def scenario_from_mapping(raw: object, file: str) -> Scenario:
    if not isinstance(raw, Mapping):
        raise ConfigError(file, "-", "top level must be a mapping")
    _known_keys(raw, _TOP_KEYS, file, "")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(file, "name", "is required (a non-empty string)")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(file, "description", "expected a string")
    interval = float(parse_seconds(raw.get("interval", 2.0), file, "interval"))
    duration = float(parse_seconds(raw.get("duration", 60.0), file, "duration"))
    if duration < 3 * interval:
        raise ConfigError(file, "duration", f"must be at least 3 intervals ({3 * interval:g}s)")
    regions = _regions(raw.get("regions"), file)
    targets = _targets(raw.get("targets"), file)
    checks = _checks(raw.get("checks"), targets, interval, file)
    faults = _faults(raw.get("faults"), regions, targets, duration, file)
    expect = _expectations(raw.get("expect"), checks, regions, targets, file)
    strict = raw.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(file, "strict", f"expected true or false, got {strict!r}")
    return Scenario(
        name=name,
        interval=interval,
        duration=duration,
        regions=regions,
        targets=targets,
        checks=checks,
        faults=faults,
        expect=expect,
        description=description.strip(),
        source=file,
        phase_spread=_phase_spread(raw.get("phase_spread", DEFAULT_PHASE_SPREAD), file),
        strict=strict,
    )


def _phase_spread(raw: object, file: str) -> float | None:
    if raw == "random":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < 1:
        raise ConfigError(file, "phase_spread", f"expected a number in [0, 1) or 'random', got {raw!r}")
    return float(raw)


def _known_keys(raw: Mapping[Any, Any], known: tuple[str, ...], file: str, prefix: str) -> None:
    for key in raw:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(file, where, f"unknown key; known: {', '.join(known)}")


def _list(raw: object, file: str, key: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(file, key, "expected a list")
    return raw


def _mapping(raw: object, file: str, key: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(file, key, "expected a mapping")
    return raw


def _regions(raw: object, file: str) -> dict[str, int]:
    if raw is None:
        raise ConfigError(file, "regions", "is required, e.g. {it: 2, fr: 2}")
    regions: dict[str, int] = {}
    for name, count in _mapping(raw, file, "regions").items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                file, f"regions.{name}", "region names are lower-case letters, digits and dashes"
            )
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 20:
            raise ConfigError(
                file, f"regions.{name}", f"agents per region must be an integer 1-20, got {count!r}"
            )
        regions[name] = count
    if not regions:
        raise ConfigError(file, "regions", "needs at least one region")
    if sum(regions.values()) > 200:
        raise ConfigError(file, "regions", "at most 200 agents in a lab")
    return regions


def _targets(raw: object, file: str) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name, raw_spec in _mapping(raw, file, "targets").items():
        key = f"targets.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(file, key, "target names are lower-case letters, digits and dashes")
        spec = _mapping(raw_spec, file, key)
        _known_keys(spec, ("kind", "assets", "asset_host", "cert_days_left"), file, key)
        kind = spec.get("kind")
        if kind not in TARGET_KINDS:
            raise ConfigError(file, f"{key}.kind", f"expected one of {', '.join(TARGET_KINDS)}, got {kind!r}")
        assets = spec.get("assets", 0)
        if not isinstance(assets, int) or isinstance(assets, bool) or not 0 <= assets <= 200:
            raise ConfigError(file, f"{key}.assets", f"expected an integer 0-200, got {assets!r}")
        if assets and kind != "page":
            raise ConfigError(file, f"{key}.assets", "only a page target has assets")
        asset_host = spec.get("asset_host", "")
        if not isinstance(asset_host, str):
            raise ConfigError(file, f"{key}.asset_host", "expected a target name")
        days = spec.get("cert_days_left", 90.0)
        if not isinstance(days, int | float) or isinstance(days, bool) or days <= 0:
            raise ConfigError(
                file, f"{key}.cert_days_left", f"expected a positive number of days, got {days!r}"
            )
        targets[name] = Target(name, kind, assets, asset_host, float(days))
    if not targets:
        raise ConfigError(file, "targets", "needs at least one target")
    for name, target in targets.items():
        if target.asset_host and target.asset_host not in targets:
            raise ConfigError(
                file,
                f"targets.{name}.asset_host",
                f"unknown target {target.asset_host!r}; known: {', '.join(targets)}",
            )
        if target.asset_host and not targets[target.asset_host].tls and target.tls:
            raise ConfigError(file, f"targets.{name}.asset_host", "an https page needs an https asset host")
    return targets


def _checks(raw: object, targets: Mapping[str, Target], interval: float, file: str) -> tuple[Check, ...]:
    checks: list[Check] = []
    items = _list(raw, file, "checks")
    if not items:
        raise ConfigError(file, "checks", "needs at least one check")
    for i, item in enumerate(items):
        key = f"checks[{i}]"
        spec = dict(_mapping(item, file, key))
        check_id, probe, target = spec.pop("id", None), spec.pop("probe", None), spec.pop("target", None)
        if not isinstance(check_id, str) or not _NAME.match(check_id):
            raise ConfigError(file, f"{key}.id", "is required: lower-case letters, digits and dashes")
        if any(c.id == check_id for c in checks):
            raise ConfigError(file, f"{key}.id", f"duplicate check id {check_id!r}")
        if probe not in PROBES:
            raise ConfigError(file, f"{key}.probe", f"expected one of {', '.join(PROBES)}, got {probe!r}")
        if target not in targets:
            raise ConfigError(
                file, f"{key}.target", f"unknown target {target!r}; known: {', '.join(targets)}"
            )
        if probe == "tls" and not targets[target].tls:
            raise ConfigError(
                file, f"{key}.probe", f"target {target!r} is plain http: a tls check needs https"
            )
        kind = targets[target].kind
        if probe == "grpc" and kind != "grpc":
            raise ConfigError(
                file, f"{key}.probe", f"target {target!r} is {kind}: a grpc check needs a grpc target"
            )
        if probe in ("http", "page") and kind == "grpc":
            raise ConfigError(
                file, f"{key}.probe", f"target {target!r} is grpc: check it with grpc, tcp, tls, dns or icmp"
            )
        for option in spec:
            if option in ("interval", "regions", "resolve", "dns_server", "target"):
                raise ConfigError(file, f"{key}.{option}", "set by the lab, not by the scenario")
        if "timeout" in spec:
            spec["timeout"] = float(parse_seconds(spec["timeout"], file, f"{key}.timeout"))
            if spec["timeout"] > interval:
                raise ConfigError(file, f"{key}.timeout", f"must not exceed the interval ({interval:g}s)")
        checks.append(Check(check_id, probe, target, spec))
    return tuple(checks)


def _fault_kind(value: object, file: str, key: str) -> tuple[str, float]:
    if not isinstance(value, str):
        raise ConfigError(file, key, "is required, e.g. cert_expired or http_status:503")
    kind, sep, arg = value.partition(":")
    if kind in PLAIN_FAULTS and not sep:
        return kind, 0.0
    if kind not in PARAM_FAULTS:
        known = ", ".join([*PLAIN_FAULTS, "http_status:<code>", "slow:<ms>", "flap:<period>"])
        raise ConfigError(file, key, f"unknown fault {value!r}; known: {known}")
    if not sep:
        raise ConfigError(file, key, f"{kind} needs a parameter: {kind}:<{_PARAM_NAMES[kind]}>")
    if kind == "http_status":
        if not arg.isdigit() or not 100 <= int(arg) <= 599:
            raise ConfigError(file, key, f"expected http_status:<code> with a code 100-599, got {value!r}")
        return kind, float(arg)
    if kind == "slow":
        number = arg.removesuffix("ms")
        if not number.replace(".", "", 1).isdigit() or float(number) <= 0:
            raise ConfigError(file, key, f"expected slow:<ms> such as slow:1500, got {value!r}")
        return kind, float(number)
    return kind, float(parse_seconds(arg or None, file, key))


def _faults(
    raw: object, regions: Mapping[str, int], targets: Mapping[str, Target], duration: float, file: str
) -> tuple[Fault, ...]:
    faults: list[Fault] = []
    for i, item in enumerate(_list(raw, file, "faults")):
        key = f"faults[{i}]"
        spec = _mapping(item, file, key)
        _known_keys(spec, ("at", "until", "target", "regions", "agents", "fault", "hop"), file, key)
        kind, param = _fault_kind(spec.get("fault"), file, f"{key}.fault")
        at = float(parse_seconds(spec.get("at", 0), file, f"{key}.at", allow_zero=True))
        until = float(parse_seconds(spec["until"], file, f"{key}.until")) if "until" in spec else duration
        if at >= duration:
            raise ConfigError(file, f"{key}.at", f"must be before the end of the run ({duration:g}s)")
        if until <= at:
            raise ConfigError(file, f"{key}.until", f"must be after at ({at:g}s)")
        if until > duration:
            raise ConfigError(file, f"{key}.until", f"must not be after the end of the run ({duration:g}s)")
        target = spec.get("target", "")
        if target and target not in targets:
            raise ConfigError(
                file, f"{key}.target", f"unknown target {target!r}; known: {', '.join(targets)}"
            )
        if kind in VANTAGE_FAULTS and target:
            raise ConfigError(file, f"{key}.target", f"{kind} concerns agents, not a target")
        if kind not in VANTAGE_FAULTS and not target and kind not in ANY_TARGET_FAULTS:
            raise ConfigError(file, f"{key}.target", f"is required for {kind}")
        if kind in CERT_FAULTS and not targets[target].tls:
            raise ConfigError(
                file, f"{key}.fault", f"target {target!r} is plain http: no certificate to swap"
            )
        if kind == "grpc_not_serving" and (not target or targets[target].kind != "grpc"):
            raise ConfigError(file, f"{key}.target", "grpc_not_serving needs a grpc target")
        agents = _fault_agents(spec, regions, file, key)
        hop = _break_hop(spec, kind, file, key)
        faults.append(Fault(i, kind, at, until, param, target, agents, hop))
    return tuple(faults)


def _break_hop(spec: Mapping[str, Any], kind: str, file: str, key: str) -> int:
    if kind != "path_break":
        if "hop" in spec:
            raise ConfigError(file, f"{key}.hop", "only a path_break fault has a hop")
        return 0
    hop = spec.get("hop", DEFAULT_BREAK_HOP)
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= PATH_ROUTERS:
        raise ConfigError(
            file, f"{key}.hop", f"expected the router that breaks, an integer 1-{PATH_ROUTERS}, got {hop!r}"
        )
    return hop


def _fault_agents(
    spec: Mapping[str, Any], regions: Mapping[str, int], file: str, key: str
) -> tuple[str, ...]:
    chosen_regions = _list(spec.get("regions"), file, f"{key}.regions")
    chosen_agents = _list(spec.get("agents"), file, f"{key}.agents")
    agents: list[str] = []
    for j, region in enumerate(chosen_regions):
        if region not in regions:
            raise ConfigError(
                file, f"{key}.regions[{j}]", f"unknown region {region!r}; known: {', '.join(regions)}"
            )
        agents.extend(f"{region}-{n}" for n in range(1, regions[region] + 1))
    for j, agent in enumerate(chosen_agents):
        match = _AGENT.match(agent) if isinstance(agent, str) else None
        if (
            not match
            or match.group(1) not in regions
            or not 1 <= int(match.group(2)) <= regions[match.group(1)]
        ):
            known = ", ".join(f"{r}-1..{r}-{n}" for r, n in regions.items())
            raise ConfigError(file, f"{key}.agents[{j}]", f"unknown agent {agent!r}; agents are {known}")
        agents.append(agent)
    if not chosen_regions and not chosen_agents:
        agents = [f"{r}-{n}" for r, count in regions.items() for n in range(1, count + 1)]
    return tuple(dict.fromkeys(agents))


def _expectations(
    raw: object,
    checks: tuple[Check, ...],
    regions: Mapping[str, int],
    targets: Mapping[str, Target],
    file: str,
) -> tuple[Expectation, ...]:
    expectations: list[Expectation] = []
    check_ids = [c.id for c in checks]
    for i, item in enumerate(_list(raw, file, "expect")):
        key = f"expect[{i}]"
        spec = _mapping(item, file, key)
        _known_keys(
            spec,
            (
                "check",
                "status",
                "scope",
                "regions",
                "cause",
                "host",
                "kind",
                "closed",
                "first",
                "versions",
                "broken_at",
            ),
            file,
            key,
        )
        kind = spec.get("kind", "")
        if kind and kind not in EVENT_KINDS:
            raise ConfigError(file, f"{key}.kind", f"expected one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        check = spec.get("check", "")
        # A vantage event is about agents or regions, so it may name no check.
        if check not in check_ids and not (kind == "vantage" and not check):
            raise ConfigError(file, f"{key}.check", f"unknown check {check!r}; known: {', '.join(check_ids)}")
        status = spec.get("status")
        if status not in STATUSES:
            raise ConfigError(file, f"{key}.status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
        scope = spec.get("scope", "")
        if scope and scope not in SCOPES:
            raise ConfigError(file, f"{key}.scope", f"expected one of {', '.join(SCOPES)}, got {scope!r}")
        cause = spec.get("cause", "")
        if cause and cause not in FAILURE_CLASSES:
            raise ConfigError(file, f"{key}.cause", f"unknown failure class {cause!r}")
        host = spec.get("host", "")
        if host and host not in targets:
            raise ConfigError(file, f"{key}.host", f"unknown target {host!r}; known: {', '.join(targets)}")
        expected_regions = _expect_regions(spec, regions, file, key)
        closed = spec.get("closed", False)
        if not isinstance(closed, bool):
            raise ConfigError(file, f"{key}.closed", f"expected true or false, got {closed!r}")
        first = spec.get("first", False)
        if not isinstance(first, bool):
            raise ConfigError(file, f"{key}.first", f"expected true or false, got {first!r}")
        versions = spec.get("versions", 0)
        if isinstance(versions, bool) or not isinstance(versions, int) or versions < 0:
            raise ConfigError(
                file, f"{key}.versions", f"expected a number of versions (>= 1), got {versions!r}"
            )
        broken_at = _expect_broken_at(spec, kind, file, key)
        if status == "ok" and (
            scope or cause or host or closed or first or versions or broken_at or expected_regions is not None
        ):
            raise ConfigError(
                file,
                key,
                "status: ok takes no scope, regions, cause, host, closed, first, versions or broken_at",
            )
        expectations.append(
            Expectation(
                check, status, scope, expected_regions, cause, kind, closed, host, first, versions, broken_at
            )
        )
    return tuple(expectations)


def _expect_broken_at(spec: Mapping[str, Any], kind: str, file: str, key: str) -> int:
    if "broken_at" not in spec:
        return 0
    hop = spec["broken_at"]
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= PATH_ROUTERS:
        raise ConfigError(
            file, f"{key}.broken_at", f"expected the hop where the path breaks, 1-{PATH_ROUTERS}, got {hop!r}"
        )
    if kind not in ("", "check"):
        raise ConfigError(file, f"{key}.broken_at", "only check events have path traces")
    return hop


def _expect_regions(
    spec: Mapping[str, Any], regions: Mapping[str, int], file: str, key: str
) -> tuple[str, ...] | None:
    if "regions" not in spec:
        return None
    listed = _list(spec["regions"], file, f"{key}.regions")
    for j, region in enumerate(listed):
        if region not in regions:
            raise ConfigError(
                file, f"{key}.regions[{j}]", f"unknown region {region!r}; known: {', '.join(regions)}"
            )
    return tuple(sorted(listed))
