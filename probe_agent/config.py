"""Agent configuration: typed, validated at load, defaults in one place.

The YAML file looks like::

    agent_id: it-1
    region: it
    collector: collector.example.net:4317
    insecure: false                 # plaintext gRPC; only for local labs
    tls: {ca: ca.pem, cert: agent.pem, key: agent-key.pem}
    spool: {dir: /var/lib/probenet/spool, max_results: 1000000, max_bytes: 536870912}
    shutdown_grace: 10s             # on SIGTERM, keep streaming the spool this long (0 = leave at once)
    phase: 0.25                     # optional: probe at this share of every interval, no jitter
    checks:                         # local checks (the collector's central config overrides them)
      - {id: shop, probe: http, target: "https://shop.example/", interval: 30s}

Checks use the proto3 JSON form of probenet.v1.CheckSpec, with durations also accepted as
"500ms", "2s", "1m" or a number of seconds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from probe_agent.errors import ConfigError
from probe_agent.limits import ID_BYTES
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.dnssec import parse_trust_anchor
from probe_agent.probes.failures import ProbeFailure
from probe_agent.probes.icmp import MAX_COUNT as MAX_ICMP_COUNT
from probe_agent.probes.tcp import compile_expect
from probe_agent.probes.tls import parse_target
from probe_agent.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from probe_agent.spool_space import MIN_MAX_BYTES
from probenet.v1 import probe_pb2

DEFAULT_INTERVAL_S = 30.0
DEFAULT_TIMEOUT_S = 10.0
# Time a stopping agent keeps streaming its spool; Kubernetes' default grace is 30 s.
DEFAULT_SHUTDOWN_GRACE_S = 10.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class TlsFiles:
    ca: str = ""
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class SpoolConfig:
    dir: str = "spool"
    max_results: int = 1_000_000
    max_bytes: int = DEFAULT_SPOOL_BYTES  # database, WAL and reserve together


@dataclass(frozen=True)
class AgentConfig:
    agent_id: str
    region: str
    collector: str = "127.0.0.1:4317"
    insecure: bool = False
    tls: TlsFiles = field(default_factory=TlsFiles)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    batch_size: int = 500
    max_concurrency: int = 256
    dns_server: str = ""
    metrics_listen: str = ""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S
    # A fixed probe slot: this share of each interval past its multiples (wall clock), without
    # jitter, so a lab can place its agents deterministically (the agent's checks take turns from
    # there: check i of n, by id, at phase + i/n). None: a random phase per check and
    # jitter (production: many agents should not hit a target in lockstep).
    phase: float | None = None
    checks: tuple[probe_pb2.CheckSpec, ...] = ()


_TOP_KEYS = {f.name for f in dataclasses.fields(AgentConfig)}


def parse_duration_seconds(value: object, file: str, key: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool):
        raise ConfigError(file, key, f"expected a duration like 2s or 500ms, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(file, key, f"expected a duration like 2s or 500ms, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigError(file, key, f"must be {'zero or more' if allow_zero else 'positive'}, got {value!r}")
    return seconds


def check_from_mapping(raw: object, file: str, key: str) -> probe_pb2.CheckSpec:
    """Parse and validate one check; defaults filled in."""
    if not isinstance(raw, Mapping):
        raise ConfigError(file, key, "expected a mapping")
    data = dict(raw)
    interval = parse_duration_seconds(data.pop("interval", DEFAULT_INTERVAL_S), file, f"{key}.interval")
    timeout = parse_duration_seconds(
        data.pop("timeout", min(DEFAULT_TIMEOUT_S, interval)), file, f"{key}.timeout"
    )
    page = data.get("page")
    if isinstance(page, Mapping) and "budget" in page:
        budget = parse_duration_seconds(page["budget"], file, f"{key}.page.budget")
        data["page"] = {**page, "budget": f"{budget:.3f}s"}
    try:
        spec = json_format.ParseDict(data, probe_pb2.CheckSpec())
    except json_format.ParseError as exc:
        raise ConfigError(file, key, str(exc)) from exc
    spec.interval.FromMilliseconds(round(interval * 1000))
    spec.timeout.FromMilliseconds(round(timeout * 1000))
    _validate_check(spec, file, key)
    return spec


def _validate_check(spec: probe_pb2.CheckSpec, file: str, key: str) -> None:
    if not spec.id:
        raise ConfigError(file, f"{key}.id", "is required")
    if len(spec.id.encode()) > ID_BYTES:
        raise ConfigError(file, f"{key}.id", f"longer than {ID_BYTES} bytes")
    if spec.probe not in PROBE_TYPES:
        raise ConfigError(file, f"{key}.probe", f"unknown probe {spec.probe!r}; known: {sorted(PROBE_TYPES)}")
    if not spec.target:
        raise ConfigError(file, f"{key}.target", "is required")
    if spec.timeout.ToMilliseconds() > spec.interval.ToMilliseconds():
        raise ConfigError(file, f"{key}.timeout", "must not exceed the interval")
    _validate_protocol(spec, file, key)


def _validate_protocol(spec: probe_pb2.CheckSpec, file: str, key: str) -> None:
    """What the tcp, grpc, icmp and DNSSEC probes would otherwise only say in every result."""
    if spec.probe in ("tcp", "grpc"):
        try:
            parse_target(spec.target, default_port=None)
        except ProbeFailure as exc:
            raise ConfigError(file, f"{key}.target", f"a {spec.probe} check needs host:port") from exc
    if spec.tcp.expect:
        try:
            compile_expect(spec.tcp.expect)
        except ProbeFailure as exc:
            raise ConfigError(file, f"{key}.tcp.expect", exc.message) from exc
    if spec.icmp.count > MAX_ICMP_COUNT:
        raise ConfigError(file, f"{key}.icmp.count", f"at most {MAX_ICMP_COUNT}")
    if spec.dns.trust_anchor:
        try:
            parse_trust_anchor(spec.dns.trust_anchor)
        except ValueError as exc:
            raise ConfigError(file, f"{key}.dns.trust_anchor", str(exc)) from exc


def _sub(raw: object, cls: type[Any], file: str, key: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(file, key, "expected a mapping")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name in raw:
        if name not in known:
            raise ConfigError(file, f"{key}.{name}", f"unknown key; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        expected = type(getattr(cls(), name))
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ConfigError(file, f"{key}.{name}", f"expected {expected.__name__}, got {value!r}")
        values[name] = value
    return cls(**values)


def _spool(raw: object, file: str) -> SpoolConfig:
    spool: SpoolConfig = _sub(raw, SpoolConfig, file, "spool")
    if spool.max_results < 1:
        raise ConfigError(file, "spool.max_results", "must be at least 1")
    if spool.max_bytes < MIN_MAX_BYTES:
        raise ConfigError(
            file, "spool.max_bytes", f"must be at least {MIN_MAX_BYTES} (1 MiB), got {spool.max_bytes}"
        )
    return spool


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Read, validate and return the agent config; flags in `overrides` win over the file."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(file, "-", f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(file, "-", f"invalid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(file, "-", "top level must be a mapping")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_mapping(raw, file)


def config_from_mapping(raw: Mapping[str, Any], file: str) -> AgentConfig:
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(file, str(key), f"unknown key; known: {sorted(_TOP_KEYS)}")
    for key in ("agent_id", "region"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(file, key, "is required (a non-empty string)")
        if len(raw[key].encode()) > ID_BYTES:
            raise ConfigError(file, key, f"longer than {ID_BYTES} bytes")
    values: dict[str, Any] = {k: raw[k] for k in ("agent_id", "region")}
    for key, kind in (
        ("collector", str),
        ("insecure", bool),
        ("batch_size", int),
        ("max_concurrency", int),
        ("dns_server", str),
        ("metrics_listen", str),
    ):
        if key in raw:
            value = raw[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(file, key, f"expected {kind.__name__}, got {value!r}")
            values[key] = value
    for key in ("batch_size", "max_concurrency"):
        if key in values and values[key] < 1:
            raise ConfigError(file, key, "must be at least 1")
    if "shutdown_grace" in raw:
        values["shutdown_grace"] = parse_duration_seconds(
            raw["shutdown_grace"], file, "shutdown_grace", allow_zero=True
        )
    if raw.get("phase") is not None:
        phase = raw["phase"]
        if isinstance(phase, bool) or not isinstance(phase, int | float) or not 0 <= phase < 1:
            raise ConfigError(
                file, "phase", f"expected a number in [0, 1) (a share of the interval), got {phase!r}"
            )
        values["phase"] = float(phase)
    values["tls"] = _sub(raw.get("tls"), TlsFiles, file, "tls")
    values["spool"] = _spool(raw.get("spool"), file)
    if not values.get("insecure") and not (values["tls"].cert and values["tls"].key and values["tls"].ca):
        raise ConfigError(file, "tls", "ca, cert and key are required unless insecure: true")
    checks = raw.get("checks")
    if checks is None:
        checks = []
    if not isinstance(checks, list):
        raise ConfigError(file, "checks", "expected a list")
    specs = tuple(check_from_mapping(c, file, f"checks[{i}]") for i, c in enumerate(checks))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.id in seen:
            raise ConfigError(file, f"checks[{i}].id", f"duplicate check id {spec.id!r}")
        seen.add(spec.id)
    return AgentConfig(**values, checks=specs)
