"""Collector configuration: typed, validated at load, defaults in one place.

    listen: 0.0.0.0:4317            # gRPC for agents
    insecure: false                 # plaintext gRPC, identity from the hello (local labs only)
    tls: {ca: ca.pem, cert: collector.pem, key: collector-key.pem}
    api: {listen: 127.0.0.1:8080, token: ""}
    store:
      url: chdb:///var/lib/probenet/store      # or http(s)://user:pass@host:8123/db
      ttl_days: 90
      batch_rows: 10000
      flush_interval: 1s
      max_pending_rows: 200000      # received, not yet committed: past either bound agents
      max_pending_bytes: 268435456  # are not read until commits make room
      cluster: ""                   # ON CLUSTER name: replicated engines + Distributed tables
      query_url: ""                 # server store: the SQL endpoint's read-only user (README)
    evaluate_every: 0s              # verdict tick; 0 = the smallest check interval
    limits: {max_batch_results: 5000, max_age_s: 2592000, max_future_s: 300,
             rate_per_agent: 50000, burst_per_agent: 200000,      # per (region, agent id)
             rate_per_certificate: 50000, burst_per_certificate: 200000,  # per region cert
             max_message_bytes: 16777216}   # one AgentMessage, encoded; larger: refused, counted
    metrics: {max_check_series: 20000}   # above: verdict series of non-ok checks only
    notify:                         # sinks; the old `webhooks: [{url, format: json|slack}]` still works
      - {type: alertmanager, url: "http://alertmanager:9093", resend: 60s}
      - {type: pagerduty, key_env: PD_ROUTING_KEY, match: {min_severity: critical}}
    maintenance:                    # events of covered checks notify nobody (collector.maintenance),
                                    # and availability leaves their time out (verdicts.report)
      - {name: db-upgrade, checks: ["shop-*"], regions: [it], start: 2026-12-06T02:00:00Z, end: 2026-12-06T04:00:00Z}
      - {name: weekly, checks: ["*"], every: "sun 02:00-04:00 UTC"}
    checks:                         # central checks pushed to agents (proto3 JSON of CheckSpec)
      - {id: shop, probe: page, target: "https://shop.example/", interval: 30s, regions: [it, fr],
         slo: {target: 99.9, window: 30d}}    # optional availability objective (collector only)
    availability: {partial_weight: 0.5}       # partial time counts this much against availability

Relative paths are resolved against the config file's directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from collector.errors import ConfigError
from collector.maintenance import Window, parse_windows
from probenet.v1.probe_pb2 import CheckSpec

PROBE_TYPES = frozenset({"http", "tls", "page", "dns", "tcp", "grpc", "icmp"})
DEFAULT_STORE_DIR = "probenet-data"
STORE_URL_ENV = "PROBENET_STORE_URL"
API_TOKEN_ENV = "PROBENET_API_TOKEN"
QUERY_URL_ENV = "PROBENET_QUERY_URL"
MIN_MESSAGE_BYTES = 1 << 20
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, None: 1.0}


class Seconds(float):
    """A duration in seconds; in YAML written 500ms, 2s, 1m, 1h or a plain number."""


@dataclass(frozen=True)
class Limits:
    """Per-agent input limits (`limits:`), enforced by collector.ingest.validate."""

    max_batch_results: int = 5_000
    max_future_s: float = 300.0
    # Partitioning is by day and an insert may touch at most 100 partitions: bounding the age
    # keeps one agent's old spool from making an insert fail for everybody.
    max_age_s: float = 30 * 86_400.0
    rate_per_agent: float = 50_000.0  # results/s
    burst_per_agent: float = 200_000.0
    # A region certificate speaks for any agent id of its region: all of them together get this.
    rate_per_certificate: float = 50_000.0
    burst_per_certificate: float = 200_000.0
    # The largest encoded AgentMessage; gRPC's own cap is twice the value at start (see
    # CollectorService.grpc_options), so every size refusal below that is ours and counted.
    max_message_bytes: int = 16 << 20


@dataclass(frozen=True)
class TlsFiles:
    ca: str = ""
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class ApiConfig:
    listen: str = "127.0.0.1:8080"
    token: str = ""


@dataclass(frozen=True)
class StoreConfig:
    url: str = ""
    ttl_days: int = 90
    batch_rows: int = 10_000
    flush_interval: Seconds = Seconds(1.0)  # noqa: RUF009 - immutable float
    max_pending_rows: int = 200_000
    # Results received and not yet committed, by encoded size: past it agents are not read.
    max_pending_bytes: int = 256 << 20
    cluster: str = ""
    database: str = ""
    query_url: str = ""


@dataclass(frozen=True)
class WebhookConfig:
    """The old `webhooks:` entry; kept working as a `notify:` sink of type webhook or slack."""

    url: str
    format: str = "json"  # json | slack

    def as_notify(self) -> NotifyConfig:
        return NotifyConfig(type="webhook" if self.format == "json" else self.format, url=self.url)


@dataclass(frozen=True)
class MatchConfig:
    """Which events a sink gets; an empty list matches everything. Vantage events have no check
    id, so a `checks` list matches them only through a `*` glob."""

    checks: tuple[str, ...] = ()  # check ids or fnmatch globs
    statuses: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    min_severity: str = "info"


@dataclass(frozen=True)
class NotifyConfig:
    """One notification sink (`notify:`). Secrets (PagerDuty routing key, Opsgenie API key) come
    from `key_env` or `key_file`, never from the config itself."""

    type: str = "webhook"  # one of NOTIFY_TYPES
    url: str = ""  # the sink's endpoint; pagerduty and opsgenie default to the public service
    match: MatchConfig = field(default_factory=MatchConfig)
    key_env: str = ""
    key_file: str = ""
    # Alertmanager: how often an open event is posted again; its endsAt is 4 of these ahead,
    # so Alertmanager resolves it by itself only if the collector stops posting.
    resend: Seconds = Seconds(60.0)  # noqa: RUF009 - immutable float
    link: str = ""  # the status page's public URL, put in annotations and links


NOTIFY_TYPES = ("webhook", "slack", "alertmanager", "pagerduty", "opsgenie")
SECRET_SINKS = {"pagerduty": "routing key", "opsgenie": "API key"}
DEFAULT_SINK_URLS = {
    "pagerduty": "https://events.pagerduty.com/v2/enqueue",
    "opsgenie": "https://api.opsgenie.com",
}
SEVERITIES = ("info", "warning", "error", "critical")
EVENT_STATUSES = ("outage", "partial", "impaired", "warning", "fast_burn", "slow_burn")
EVENT_SCOPES = ("global", "regional", "undetermined", "agent", "region")


@dataclass(frozen=True)
class MetricsConfig:
    # Above this many checks /metrics exports the verdict series of the non-ok checks only.
    max_check_series: int = 20_000


@dataclass(frozen=True)
class Slo:
    """A check's availability objective (`slo:` of a check): `target` percent over `window`."""

    target: float
    window: Seconds = Seconds(30 * 86_400.0)  # noqa: RUF009 - immutable float


@dataclass(frozen=True)
class AvailabilityConfig:
    """`availability:`: how partial time counts against availability (1 = like an outage)."""

    partial_weight: float = 0.5


@dataclass(frozen=True)
class CollectorConfig:
    listen: str = "127.0.0.1:4317"
    insecure: bool = False
    tls: TlsFiles = field(default_factory=TlsFiles)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    evaluate_every: Seconds = Seconds(0.0)  # noqa: RUF009 - immutable float
    webhooks: tuple[WebhookConfig, ...] = ()  # the old form of `notify`, merged into it at load
    notify: tuple[NotifyConfig, ...] = ()
    # What the collector accepts from one agent (see collector/validate.py for each rule).
    limits: Limits = field(default_factory=Limits)
    checks: tuple[CheckSpec, ...] = ()
    maintenance: tuple[Window, ...] = ()  # collector.maintenance: when events notify nobody
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Per check id, the `slo:` given with the check (kept out of the CheckSpec agents receive).
    slos: Mapping[str, Slo] = field(default_factory=dict)
    availability: AvailabilityConfig = field(default_factory=AvailabilityConfig)
    source: str = "<defaults>"
    # Whether the file has a `checks:` key at all (see central_checks).
    checks_declared: bool = False

    @property
    def central_checks(self) -> bool:
        """Whether there is a central config: without one agents run their local checks;
        `checks: []` is a central config of no checks (every one was removed)."""
        return self.checks_declared or bool(self.checks)

    @property
    def checks_version(self) -> str:
        digest = hashlib.sha256()
        for spec in self.checks:
            digest.update(spec.SerializeToString(deterministic=True))
        return digest.hexdigest()[:16]

    def checks_for_region(self, region: str) -> list[CheckSpec]:
        return [c for c in self.checks if not c.regions or region in c.regions]


def parse_seconds(value: object, file: str, key: str, allow_zero: bool = False) -> Seconds:
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
        raise ConfigError(file, key, f"must be positive, got {value!r}")
    return Seconds(seconds)


def _typed(value: object, kind: Any, file: str, key: str) -> Any:
    """Check `value` against the annotation `kind`, converting dataclasses and durations."""
    if kind is Seconds:
        return parse_seconds(value, file, key, allow_zero=True)
    if dataclasses.is_dataclass(kind):
        return build(kind, value, file, key)  # type: ignore[arg-type]
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(file, key, "expected a list")
        item_kind = typing.get_args(kind)[0]
        return tuple(_typed(v, item_kind, file, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(kind, types.UnionType):
        kind = typing.get_args(kind)[0]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(file, key, f"expected {kind.__name__}, got {value!r}")
    return value


# Fields of a config that are facts about its file, never keys in it.
_NOT_KEYS = ("source", "slos", "checks_declared")


def build(cls: type[Any], raw: object, file: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types name file and key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(file, prefix or "-", "expected a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in known:
            raise ConfigError(file, key, f"unknown key; known: {sorted(known)}")
        if cls is CollectorConfig and name in ("checks", "maintenance"):  # parsed on their own
            continue
        values[name] = _typed(value, hints[name], file, key)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values]
        raise ConfigError(
            file, f"{prefix}.{missing[0]}" if prefix and missing else prefix or "-", "is required"
        ) from exc


def parse_slo(raw: object, file: str, key: str) -> Slo:
    slo: Slo = build(Slo, raw, file, key)
    if not 0 < slo.target < 100:
        raise ConfigError(file, f"{key}.target", f"a percentage above 0 and below 100, got {slo.target!r}")
    if slo.window < 3600:
        raise ConfigError(file, f"{key}.window", f"at least 1h, got {float(slo.window):g}s")
    return slo


def parse_check(raw: object, file: str, key: str) -> CheckSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(file, key, "expected a mapping")
    data = dict(raw)
    data.pop("slo", None)  # the collector's own (parse_slos); agents never see it
    interval = parse_seconds(data.pop("interval", 30.0), file, f"{key}.interval")
    timeout = parse_seconds(data.pop("timeout", min(10.0, interval)), file, f"{key}.timeout")
    page = data.get("page")
    if isinstance(page, Mapping) and "budget" in page:
        data["page"] = {**page, "budget": f"{parse_seconds(page['budget'], file, f'{key}.page.budget'):.3f}s"}
    try:
        spec = json_format.ParseDict(data, CheckSpec())
    except json_format.ParseError as exc:
        raise ConfigError(file, key, str(exc)) from exc
    spec.interval.FromMilliseconds(round(interval * 1000))
    spec.timeout.FromMilliseconds(round(timeout * 1000))
    if not spec.id:
        raise ConfigError(file, f"{key}.id", "is required")
    if spec.probe not in PROBE_TYPES:
        raise ConfigError(file, f"{key}.probe", f"unknown probe {spec.probe!r}; known: {sorted(PROBE_TYPES)}")
    if not spec.target:
        raise ConfigError(file, f"{key}.target", "is required")
    if timeout > interval:
        raise ConfigError(file, f"{key}.timeout", "must not exceed the interval")
    if spec.verdict.region_quorum and not 0 < spec.verdict.region_quorum <= 1:
        raise ConfigError(file, f"{key}.verdict.region_quorum", "must be in (0, 1]")
    return spec


def parse_checks(raw: object, file: str, key: str = "checks") -> tuple[CheckSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(file, key, "expected a list")
    specs = tuple(parse_check(c, file, f"{key}[{i}]") for i, c in enumerate(raw))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.id in seen:
            raise ConfigError(file, f"{key}[{i}].id", f"duplicate check id {spec.id!r}")
        seen.add(spec.id)
    return specs


def parse_slos(raw: object, file: str) -> dict[str, Slo]:
    """`slo:` of each check in `checks:` (already validated as a list of mappings)."""
    slos = {}
    for i, check in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(check, Mapping) and check.get("slo") is not None:
            slos[str(check["id"])] = parse_slo(check["slo"], file, f"checks[{i}].slo")
    return slos


def config_from_mapping(raw: Mapping[str, Any], file: str, base_dir: Path | None = None) -> CollectorConfig:
    _refuse_inline_secrets(raw.get("notify"), file)
    config: CollectorConfig = build(CollectorConfig, raw, file)
    checks = parse_checks(raw.get("checks"), file)
    maintenance = parse_windows(raw.get("maintenance"), file)
    slos = parse_slos(raw.get("checks"), file)
    if not 0 <= config.availability.partial_weight <= 1:
        raise ConfigError(file, "availability.partial_weight", "must be between 0 and 1")
    base = base_dir or Path.cwd()
    tls = TlsFiles(*(str(base / p) if p else "" for p in (config.tls.ca, config.tls.cert, config.tls.key)))
    store = dataclasses.replace(config.store, url=_store_url(config.store.url, base, file))
    if store.query_url and not (
        store.url.startswith(("http://", "https://")) and store.query_url.startswith(("http://", "https://"))
    ):
        raise ConfigError(file, "store.query_url", "an http(s):// URL, and only for a server store")
    if not config.insecure and not (tls.ca and tls.cert and tls.key):
        raise ConfigError(file, "tls", "ca, cert and key are required unless insecure: true")
    if not config.api.token and not is_loopback_listen(config.api.listen):
        raise ConfigError(
            file,
            "api.token",
            f"required when api.listen ({config.api.listen}) is not a loopback "
            "address: the API serves every stored result and runs SQL",
        )
    for i, hook in enumerate(config.webhooks):
        if hook.format not in ("json", "slack"):
            raise ConfigError(file, f"webhooks[{i}].format", "must be json or slack")
    sinks = tuple(
        _check_sink(sink, file, f"notify[{i}]", base) for i, sink in enumerate(config.notify)
    ) + tuple(hook.as_notify() for hook in config.webhooks)
    if config.metrics.max_check_series < 0:
        raise ConfigError(
            file, "metrics.max_check_series", f"must be 0 or more, got {config.metrics.max_check_series}"
        )
    for name, value in dataclasses.asdict(config.limits).items():
        if value <= 0:
            raise ConfigError(file, f"limits.{name}", f"must be positive, got {value!r}")
    if config.limits.max_message_bytes < MIN_MESSAGE_BYTES:
        raise ConfigError(
            file,
            "limits.max_message_bytes",
            f"must be at least {MIN_MESSAGE_BYTES} (one agent result may encode to 512 KiB), "
            f"got {config.limits.max_message_bytes}",
        )
    return dataclasses.replace(
        config,
        tls=tls,
        store=store,
        checks=checks,
        notify=sinks,
        webhooks=(),
        maintenance=maintenance,
        slos=slos,
        source=file,
        checks_declared="checks" in raw,
    )


def _refuse_inline_secrets(raw: object, file: str) -> None:
    """A routing key in collector.yaml would end up in version control and in backups."""
    for i, entry in enumerate(raw if isinstance(raw, list) else ()):
        for name in ("routing_key", "api_key", "key", "token"):
            if isinstance(entry, Mapping) and name in entry:
                raise ConfigError(
                    file,
                    f"notify[{i}].{name}",
                    "secrets are never read from the config: use key_env or key_file",
                )


def _check_sink(sink: NotifyConfig, file: str, key: str, base: Path) -> NotifyConfig:
    """Validate one `notify:` entry; a key file is resolved against the config's directory."""
    if sink.type not in NOTIFY_TYPES:
        raise ConfigError(
            file, f"{key}.type", f"unknown sink type {sink.type!r}; known: {list(NOTIFY_TYPES)}"
        )
    url = sink.url or DEFAULT_SINK_URLS.get(sink.type, "")
    if not url:
        raise ConfigError(file, f"{key}.url", f"is required for a {sink.type} sink")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(file, f"{key}.url", f"expected an http(s):// URL, got {url!r}")
    match = sink.match
    for name, allowed in (("statuses", EVENT_STATUSES), ("scopes", EVENT_SCOPES)):
        for j, value in enumerate(getattr(match, name)):
            if value not in allowed:
                raise ConfigError(
                    file, f"{key}.match.{name}[{j}]", f"unknown {value!r}; known: {list(allowed)}"
                )
    if match.min_severity not in SEVERITIES:
        raise ConfigError(
            file, f"{key}.match.min_severity", f"unknown {match.min_severity!r}; known: {list(SEVERITIES)}"
        )
    if sink.resend < 1:
        raise ConfigError(file, f"{key}.resend", f"must be at least 1s, got {sink.resend:g}s")
    key_file = str(base / sink.key_file) if sink.key_file else ""
    if sink.type in SECRET_SINKS:
        what = SECRET_SINKS[sink.type]
        if bool(sink.key_env) == bool(key_file):
            raise ConfigError(file, f"{key}.key_env", f"give exactly one of key_env or key_file: the {what}")
        read_secret(sink.key_env, key_file, file, key)
    elif sink.key_env or sink.key_file:
        raise ConfigError(file, f"{key}.key_env", f"a {sink.type} sink takes no key")
    return dataclasses.replace(sink, url=url, key_file=key_file)


def read_secret(env: str, path: str, file: str = "<notify>", key: str = "notify") -> str:
    """A sink's secret from the environment variable `env` or the file `path` (stripped)."""
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(file, f"{key}.key_env", f"environment variable {env} is not set")
        return value
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(file, f"{key}.key_file", f"cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(file, f"{key}.key_file", f"{path} is empty")
    return value


def is_loopback_listen(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _store_url(url: str, base: Path, file: str) -> str:
    if not url:
        return f"chdb://{(base / DEFAULT_STORE_DIR).resolve()}"
    if url.startswith("chdb://"):
        path = url.removeprefix("chdb://")
        return (
            f"chdb://{(base / path).resolve()}" if path else f"chdb://{(base / DEFAULT_STORE_DIR).resolve()}"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(file, "store.url", f"expected chdb:///dir or http(s)://host:8123/db, got {url!r}")
    return url


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (empty file: {}); errors name the file."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(file, "-", f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(file, "-", f"invalid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(file, "-", "top level must be a mapping")
    return raw


def load_config(path: str | Path) -> CollectorConfig:
    file = str(path)
    raw = read_yaml_mapping(path)
    # Secrets can come from the environment (a Kubernetes Secret) instead of the file.
    raw = _with_env(raw, file, "store", "url", STORE_URL_ENV)
    raw = _with_env(raw, file, "api", "token", API_TOKEN_ENV)
    raw = _with_env(raw, file, "store", "query_url", QUERY_URL_ENV)
    return config_from_mapping(raw, file, Path(path).resolve().parent)


def _with_env(raw: dict[str, Any], file: str, section: str, key: str, env: str) -> dict[str, Any]:
    """The environment variable `env`, when set, wins over `section.key` of the file."""
    value = os.environ.get(env)
    if not value:
        return raw
    current = raw.get(section) or {}
    if not isinstance(current, Mapping):
        raise ConfigError(file, section, "expected a mapping")
    return {**raw, section: {**current, key: value}}
