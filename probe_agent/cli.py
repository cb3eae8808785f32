"""probe-agent command line: `run` (the long-lived agent) and `check` (one probe, printed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from probe_agent.agent import run_agent
from probe_agent.config import check_from_mapping, load_config, parse_duration_seconds
from probe_agent.errors import AgentError, UsageError
from probe_agent.pathtrace import PathTracer
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext, is_ip
from probe_agent.probes.dnssec import parse_trust_anchor
from probe_agent.probes.icmp import MAX_COUNT as MAX_ICMP_COUNT
from probe_agent.probes.icmp import require_icmp
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from probenet.v1.stream_pb2 import PathTrace, PathTraceRequest

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_S = 10.0


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when present: much less memory per TLS connection than stock asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-agent", description="probenet probe agent")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run checks and stream results to the collector")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--collector", help="host:port of the collector (overrides the file)")
    run.add_argument("--region")
    run.add_argument("--agent-id")
    run.add_argument(
        "--shutdown-grace",
        metavar="DURATION",
        help="on SIGTERM, keep streaming the spool this long, e.g. 25s (overrides the file)",
    )
    check = sub.add_parser(
        "check",
        help="run one probe now and print the full result",
        description="Run one probe and print what it saw. Exit 0 on success, 1 on a failed or partial "
        "probe, 2 on a usage error. Give PROBE TARGET, or any check as --spec (flags then override it).",
    )
    trace = sub.add_parser(
        "trace",
        help="trace the path to a host now (UDP or TCP traceroute, no root), as the collector asks agents to",
    )
    trace.add_argument("host")
    trace.add_argument(
        "--tcp", type=_port, default=0, metavar="PORT", help="TCP SYNs to this port instead of UDP"
    )
    trace.add_argument("--json", action="store_true", help="print the trace as proto3 JSON")
    trace.add_argument("--dns-server", metavar="HOST:PORT", help="resolve through this DNS server")
    check.add_argument("probe", nargs="?", choices=sorted(PROBE_TYPES))
    check.add_argument(
        "target", nargs="?", help="URL for http/page, host:port for tls/tcp/grpc, host for dns/icmp"
    )
    check.add_argument(
        "--spec",
        metavar="JSON|@FILE[#ID]",
        help="the check as proto3 JSON of probenet.v1.CheckSpec, or @FILE (JSON or YAML: one check, a "
        "list, or a config with checks:); #ID picks a check from a file holding several",
    )
    check.add_argument("--json", action="store_true", help="print the result as proto3 JSON")
    check.add_argument("--ca", type=Path, help="PEM file of extra trusted CAs")
    check.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:IP",
        help="use IP for HOST (HOST:PORT:IP accepted too)",
    )
    check.add_argument("--timeout", type=float, metavar="S", help="default 10, or the spec's")
    check.add_argument("--dns-server", metavar="HOST:PORT", help="resolve through this DNS server")
    check.add_argument("--ip-version", choices=["4", "6"])
    check.add_argument("--server-name", help="TLS SNI and name to verify (default: the target host)")
    check.add_argument(
        "--insecure", action="store_true", help="record TLS verification but do not fail on it"
    )
    check.add_argument("--method", help="HTTP method (default GET)")
    check.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="request header (repeatable)"
    )
    check.add_argument("--body-contains", metavar="TEXT", help="fail unless the decoded body contains TEXT")
    check.add_argument("--max-body", type=int, metavar="BYTES", help="body size cap")
    tcp = check.add_argument_group("tcp")
    tcp.add_argument("--tls", action="store_true", help="TLS handshake after connecting (chain judged)")
    tcp.add_argument("--send", metavar="TEXT", help=r"send TEXT once connected (\r \n \t understood)")
    tcp.add_argument("--expect", metavar="REGEX", help="read until REGEX matches what the server sent")
    grpc = check.add_argument_group("grpc")
    grpc.add_argument("--service", metavar="NAME", help="grpc.health.v1 service to ask about")
    grpc.add_argument("--plaintext", action="store_true", help="gRPC without TLS")
    icmp = check.add_argument_group("icmp")
    icmp.add_argument("--count", type=int, metavar="N", help="echo requests to send (default 3)")
    dns = check.add_argument_group("dns")
    dns.add_argument("--dnssec", action="store_true", help="validate the answer's chain of trust")
    dns.add_argument(
        "--trust-anchor",
        type=Path,
        metavar="FILE",
        help="DS or DNSKEY records to trust (default: the root KSK)",
    )
    return parser


def _check(args: argparse.Namespace) -> int:
    spec = check_from_mapping(_check_mapping(args), "<command line>", "check")
    if spec.probe == "icmp":
        require_icmp()
    result = run_async(run_probe(PROBE_TYPES[spec.probe], spec, ProbeContext()))
    print(format_result(result, as_json=args.json))
    return EXIT_OK if result.outcome == Outcome.OUTCOME_SUCCESS else EXIT_FAILED


def _trace(args: argparse.Namespace) -> int:
    request = PathTraceRequest(host=args.host, dns_server=args.dns_server or "", tcp_port=args.tcp)
    trace = run_async(PathTracer(ProbeContext()).answer(request))
    assert trace is not None  # a fresh tracer has traced nothing yet
    if args.json:
        print(json.dumps(json_format.MessageToDict(trace, preserving_proto_field_name=True), sort_keys=True))
    else:
        print(format_trace(trace))
    return EXIT_OK if trace.hops and not trace.error else EXIT_FAILED


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (1-65535): {text!r}")
    return int(text)


def format_trace(trace: PathTrace) -> str:
    end = "reached" if trace.reached else "not reached"
    over = f" over {trace.method}" if trace.method else ""
    lines = [f"path to {trace.host} ({trace.address or '-'}){over}: {len(trace.hops)} hops, {end}"]
    if trace.error:
        lines.append(f"  error: {trace.error}")
    for hop in trace.hops:
        rtts = "  ".join(f"{r:.3f} ms" for r in hop.rtt_ms)
        lost = f"  ({hop.lost}/{hop.sent} lost)" if hop.lost else ""
        lines.append(f"  {hop.ttl:2d}  {hop.address or '*'}  {rtts}{lost}")
    return "\n".join(lines)


def _check_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """The check spec a `check` command line describes; UsageError when it cannot describe one."""
    raw: dict[str, Any] = load_spec(args.spec) if args.spec else {"id": "cli"}
    for key, value in (("probe", args.probe), ("target", args.target)):
        if value:
            raw[key] = value
        if not raw.get(key):
            raise UsageError(f"{key}: give PROBE TARGET or a --spec that has them")
    timeout = _timeout(args.timeout, raw.get("timeout"))
    _validate_target(str(raw["probe"]), str(raw["target"]))
    raw.update(timeout=timeout, interval=max(timeout, 1.0))
    _set(raw, "dns_server", args.dns_server)
    _set(raw, "ip_version", args.ip_version)
    if args.resolve:
        raw["resolve"] = {**_section(raw, "resolve"), **_parse_resolve(args.resolve)}
    tls = raw["tls"] = _section(raw, "tls")
    _set(tls, "server_name", args.server_name)
    if args.insecure:
        tls["insecure_skip_verify"] = True
    if args.ca:
        tls["ca_pem"] = _read_ca(args.ca)
    http = raw["http"] = _section(raw, "http")
    _set(http, "method", args.method)
    _set(http, "body_contains", args.body_contains)
    if args.max_body is not None:
        if args.max_body <= 0:
            raise UsageError(f"--max-body {args.max_body}: must be positive")
        http["max_body_bytes"] = args.max_body
    if args.header:
        http["headers"] = {**_section(http, "headers"), **_parse_headers(args.header)}
    _protocol_flags(raw, args)
    return raw


def _protocol_flags(raw: dict[str, Any], args: argparse.Namespace) -> None:
    """The tcp, grpc, icmp and dns flags, merged into their sections of the spec."""
    tcp = raw["tcp"] = _section(raw, "tcp")
    if args.tls:
        tcp["tls"] = True
    _set(tcp, "send", args.send)
    _set(tcp, "expect", args.expect)
    grpc = raw["grpc"] = _section(raw, "grpc")
    _set(grpc, "service", args.service)
    if args.plaintext:
        grpc["plaintext"] = True
    icmp = raw["icmp"] = _section(raw, "icmp")
    if args.count is not None:
        if not 1 <= args.count <= MAX_ICMP_COUNT:
            raise UsageError(f"--count {args.count}: must be 1..{MAX_ICMP_COUNT}")
        icmp["count"] = args.count
    dns = raw["dns"] = _section(raw, "dns")
    if args.dnssec:
        dns["dnssec"] = True
    if args.trust_anchor:
        dns["trust_anchor"] = _read_trust_anchor(args.trust_anchor)


def load_spec(value: str) -> dict[str, Any]:
    """--spec: inline proto3 JSON, or @FILE[#ID] (JSON or YAML) holding one or more checks."""
    if not value.startswith("@"):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--spec: invalid JSON: {exc}") from exc
        return _one_check(raw, "--spec", "")
    path, _, check_id = value[1:].partition("#")
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--spec {path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"--spec {path}: invalid JSON or YAML: {exc}") from exc
    return _one_check(raw, f"--spec {path}", check_id)


def _one_check(raw: object, where: str, check_id: str) -> dict[str, Any]:
    if isinstance(raw, dict) and "checks" in raw:
        raw = raw["checks"]
    listed = raw if isinstance(raw, list) else [raw]
    checks: list[dict[str, Any]] = [c for c in listed if isinstance(c, dict)]
    if len(checks) != len(listed) or not checks:
        raise UsageError(f"{where}: expected a check (a mapping), a list of them, or a config with checks:")
    if check_id:
        checks = [c for c in checks if c.get("id") == check_id]
        if not checks:
            raise UsageError(f"{where}: no check with id {check_id!r}")
    if len(checks) != 1:
        ids = ", ".join(str(c.get("id")) for c in checks)
        raise UsageError(f"{where}: {len(checks)} checks ({ids}); pick one with #ID")
    return dict(checks[0])


def _timeout(flag: float | None, in_spec: object) -> float:
    if flag is not None:
        if flag <= 0:
            raise UsageError(f"--timeout {flag:g}: must be positive")
        return flag
    if in_spec is None:
        return DEFAULT_TIMEOUT_S
    try:
        return parse_duration_seconds(in_spec, "--spec", "timeout")
    except AgentError as exc:
        raise UsageError(str(exc)) from exc


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested mapping of the spec, to merge flags into."""
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"--spec: {key}: expected a mapping, got {value!r}")
    return dict(value)


def _set(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def _read_ca(path: Path) -> str:
    try:
        pem = path.read_text()
    except OSError as exc:
        raise UsageError(f"--ca {path}: cannot read: {exc.strerror}") from exc
    if "BEGIN CERTIFICATE" not in pem:
        raise UsageError(f"--ca {path}: no PEM certificate in the file")
    return pem


def _read_trust_anchor(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--trust-anchor {path}: cannot read: {exc.strerror}") from exc
    try:
        parse_trust_anchor(text)
    except ValueError as exc:
        raise UsageError(f"--trust-anchor {path}: {exc}") from exc
    return text


def _parse_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise UsageError(f"--header {item!r}: expected 'NAME: VALUE'")
        headers[name.strip()] = value.strip()
    return headers


def _validate_target(probe: str, target: str) -> None:
    if probe in ("http", "page"):
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"target {target!r}: a {probe} check needs an http:// or https:// URL")
    elif probe == "tls" and not urlsplit("//" + target).hostname:
        raise UsageError(f"target {target!r}: a tls check needs host:port")
    elif probe in ("tcp", "grpc"):
        try:
            parts = urlsplit("//" + target)
            ok = bool(parts.hostname and parts.port)
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(f"target {target!r}: a {probe} check needs host:port")
    elif not target.strip():
        raise UsageError("target: must not be empty")


def _parse_resolve(items: Sequence[str]) -> dict[str, str]:
    resolve: dict[str, str] = {}
    for item in items:
        host, sep, ip = item.partition(":")
        port, colon, rest = ip.partition(":")
        if colon and port.isdigit():  # curl's HOST:PORT:ADDR form
            ip = rest
        ip = ip.strip("[]")
        if not sep or not host or not ip or not is_ip(ip):
            raise UsageError(f"--resolve {item!r}: expected HOST:IP")
        resolve[host] = ip
    return resolve


def format_result(result: ProbeResult, as_json: bool) -> str:
    """The result as proto3 JSON (one line), or as a readable report of everything the probe saw."""
    if as_json:
        data = json_format.MessageToDict(result, preserving_proto_field_name=True)
        return json.dumps(data, sort_keys=True)
    outcome = Outcome.Name(result.outcome).removeprefix("OUTCOME_").lower()
    lines = [f"{result.probe} {result.target}: {outcome}"]
    if result.failure_class:
        where = f" at {result.failure_host}" if result.failure_host else ""
        lines.append(f"  failure: {_class(result.failure_class)}{where}: {result.error}")
    t = result.timings
    lines.append(
        f"  timings: dns {t.dns_ms:.1f} ms, connect {t.connect_ms:.1f} ms, tls {t.tls_ms:.1f} ms, "
        f"ttfb {t.ttfb_ms:.1f} ms, transfer {t.transfer_ms:.1f} ms, total {t.total_ms:.1f} ms"
    )
    if result.HasField("dns"):
        d = result.dns
        rcode = f" ({d.rcode})" if d.rcode else ""
        lines.append(f"  dns: {', '.join(d.addresses) or '-'} via {d.resolver or 'system'}{rcode}")
    if result.HasField("http"):
        lines.extend(_http_lines(result))
    if result.HasField("tls"):
        lines.extend(_tls_lines(result))
    if result.HasField("page"):
        lines.extend(_page_lines(result))
    lines.extend(_protocol_lines(result))
    return "\n".join(lines)


def _protocol_lines(result: ProbeResult) -> list[str]:
    lines: list[str] = []
    if result.dns.dnssec:
        chain = " -> ".join(result.dns.dnssec_chain) or "-"
        ad = "set" if result.dns.authenticated_data else "not set"
        lines.append(f"  dnssec: {result.dns.dnssec} (chain {chain}; resolver AD bit {ad})")
    if result.HasField("tcp"):
        t = result.tcp
        lines.append(f"  tcp: connected to {t.remote_addr or '-'}{', tls' if t.tls else ''}")
        if t.banner:
            lines.append(f"    received: {t.banner[:300]!r}")
    if result.HasField("grpc"):
        g = result.grpc
        lines.append(
            f"  grpc: health of {g.service or '(server)'}: {g.serving_status or '-'}, "
            f"rpc {g.rpc_code or '-'} from {g.remote_addr or '-'}"
        )
    if result.HasField("icmp"):
        i = result.icmp
        lines.append(
            f"  icmp: {i.received}/{i.sent} replies from {i.remote_addr or '-'} ({i.loss_ratio:.0%} loss, "
            f"{i.socket} socket)"
        )
        if i.received:
            lines.append(
                f"    rtt min/avg/max/stddev: {i.rtt_min_ms:.3f}/{i.rtt_avg_ms:.3f}/"
                f"{i.rtt_max_ms:.3f}/{i.rtt_stddev_ms:.3f} ms"
            )
    return lines


def _class(failure_class: FailureClass.ValueType) -> str:
    return FailureClass.Name(failure_class).lower()


def _http_lines(result: ProbeResult) -> list[str]:
    h = result.http
    lines = [f"  http: {h.status_code} {h.http_version}, {h.body_bytes} bytes from {h.remote_addr or '-'}"]
    lines.extend(
        f"    redirect: {hop.status_code} {hop.url} ({hop.duration_ms:.1f} ms)" for hop in h.redirects
    )
    if h.final_url:
        lines.append(f"    final url: {h.final_url}")
    return lines


def _tls_lines(result: ProbeResult) -> list[str]:
    s = result.tls
    verdict = "verified" if s.verified else f"NOT verified: {_class(s.verify_class)}: {s.verify_error}"
    lines = [
        f"  tls: {s.version} {s.cipher}, alpn {s.alpn or '-'}, sni {s.server_name}, {verdict}",
        f"    earliest expiry: {_when(s.earliest_expiry)} ({s.days_left:.1f} days left), "
        f"ocsp stapled: {'yes' if s.ocsp_stapled else 'no'}",
    ]
    for i, cert in enumerate(s.chain):
        lines.append(f"    [{i}] {cert.subject}{'  (CA)' if cert.is_ca else ''}")
        lines.append(f"        issuer: {cert.issuer}")
        lines.append(
            f"        valid: {_when(cert.not_before)} .. {_when(cert.not_after)}, key {cert.key_type}"
        )
        if cert.sans:
            lines.append(f"        sans: {', '.join(cert.sans)}")
        lines.append(f"        serial: {cert.serial}  sha256: {cert.sha256_fingerprint}")
    return lines


def _page_lines(result: ProbeResult) -> list[str]:
    p = result.page
    cut = ", truncated by a cap or the budget" if p.truncated else ""
    lines = [
        f"  page: {p.resources_total} sub-resources, {p.resources_failed} failed, {p.bytes_total} bytes{cut}"
    ]
    for group in p.failed_hosts:
        lines.append(
            f"    {group.host}: {_class(group.failure_class)} x{group.count}, e.g. {group.sample_url}"
        )
        lines.append(f"        {group.sample_error}")
    return lines


def _when(ts: Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "trace":
            return _trace(args)
        overrides = {
            "collector": args.collector,
            "region": args.region,
            "agent_id": args.agent_id,
            "shutdown_grace": args.shutdown_grace,
        }
        config = load_config(args.config, overrides)
        run_async(run_agent(config))
    except AgentError as exc:
        print(f"probe-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
