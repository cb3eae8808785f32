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

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from probe_agent.agent import run_agent
from probe_agent.config import check_from_mapping, load_config
from probe_agent.errors import AgentError, UsageError
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext, is_ip
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    check = sub.add_parser(
        "check",
        help="run one probe now and print the full result",
        description="Run one probe and print what it saw. Exit 0 on success, 1 on a failed or partial "
        "probe, 2 on a usage error.",
    )
    check.add_argument("probe", choices=sorted(PROBE_TYPES))
    check.add_argument("target", help="URL for http/page, host:port for tls, host for dns")
    check.add_argument("--json", action="store_true", help="print the result as proto3 JSON")
    check.add_argument("--ca", type=Path, help="PEM file of extra trusted CAs")
    check.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:IP",
        help="use IP for HOST (HOST:PORT:IP accepted too)",
    )
    check.add_argument("--timeout", type=float, default=10.0, metavar="S")
    check.add_argument(
        "--dns-server", default="", metavar="HOST:PORT", help="resolve through this DNS server"
    )
    check.add_argument("--ip-version", choices=["4", "6"], default="")
    check.add_argument(
        "--server-name", default="", help="TLS SNI and name to verify (default: the target host)"
    )
    check.add_argument(
        "--insecure", action="store_true", help="record TLS verification but do not fail on it"
    )
    return parser


def _check(args: argparse.Namespace) -> int:
    spec = check_from_mapping(_check_mapping(args), "<command line>", "check")
    result = run_async(run_probe(PROBE_TYPES[args.probe], spec, ProbeContext()))
    print(format_result(result, as_json=args.json))
    return EXIT_OK if result.outcome == Outcome.OUTCOME_SUCCESS else EXIT_FAILED


def _check_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """The check spec a `check` command line describes; UsageError when it cannot describe one."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be positive")
    _validate_target(args.probe, args.target)
    raw: dict[str, Any] = {
        "id": "cli",
        "probe": args.probe,
        "target": args.target,
        "timeout": args.timeout,
        "interval": max(args.timeout, 1.0),
        "dns_server": args.dns_server,
        "ip_version": args.ip_version,
        "resolve": _parse_resolve(args.resolve),
    }
    tls: dict[str, Any] = {"server_name": args.server_name, "insecure_skip_verify": args.insecure}
    if args.ca:
        try:
            tls["ca_pem"] = args.ca.read_text()
        except OSError as exc:
            raise UsageError(f"--ca {args.ca}: cannot read: {exc.strerror}") from exc
        if "BEGIN CERTIFICATE" not in tls["ca_pem"]:
            raise UsageError(f"--ca {args.ca}: no PEM certificate in the file")
    raw["tls"] = tls
    return raw


def _validate_target(probe: str, target: str) -> None:
    if probe in ("http", "page"):
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"target {target!r}: a {probe} check needs an http:// or https:// URL")
    elif probe == "tls" and not urlsplit("//" + target).hostname:
        raise UsageError(f"target {target!r}: a tls check needs host:port")
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
    return "\n".join(lines)


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
        overrides = {"collector": args.collector, "region": args.region, "agent_id": args.agent_id}
        config = load_config(args.config, overrides)
        run_async(run_agent(config))
    except AgentError as exc:
        print(f"probe-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
