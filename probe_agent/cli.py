"""probe-agent command line: `run` (the long-lived agent) and `check` (one probe, printed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format

from probe_agent.agent import run_agent
from probe_agent.config import check_from_mapping, load_config
from probe_agent.errors import AgentError
from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext
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
    check = sub.add_parser("check", help="run one probe now and print the full result")
    check.add_argument("probe", choices=sorted(PROBE_TYPES))
    check.add_argument("target", help="URL for http/page, host:port for tls, host for dns")
    check.add_argument("--json", action="store_true", help="print the result as proto3 JSON")
    check.add_argument("--ca", type=Path, help="PEM file of extra trusted CAs")
    check.add_argument("--resolve", action="append", default=[], metavar="HOST:IP")
    check.add_argument("--timeout", type=float, default=10.0, metavar="S")
    check.add_argument("--dns-server", default="", metavar="HOST:PORT")
    return parser


def _check(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {
        "id": "cli", "probe": args.probe, "target": args.target,
        "timeout": args.timeout, "interval": max(args.timeout, 1.0), "dns_server": args.dns_server,
    }
    if args.ca:
        try:
            raw["tls"] = {"ca_pem": args.ca.read_text()}
        except OSError as exc:
            raise AgentError(f"--ca {args.ca}: cannot read: {exc.strerror}") from exc
    resolve: dict[str, str] = {}
    for item in args.resolve:
        host, sep, ip = item.rpartition(":") if item.count(":") == 1 else item.partition(":")
        if not sep or not host or not ip:
            raise AgentError(f"--resolve {item!r}: expected HOST:IP")
        resolve[host] = ip
    raw["resolve"] = resolve
    spec = check_from_mapping(raw, "<command line>", "check")
    result = run_async(run_probe(PROBE_TYPES[args.probe], spec, ProbeContext()))
    print(format_result(result, as_json=args.json))
    return EXIT_OK if result.outcome == Outcome.OUTCOME_SUCCESS else EXIT_FAILED


def format_result(result: ProbeResult, as_json: bool) -> str:
    data = json_format.MessageToDict(result, preserving_proto_field_name=True)
    if as_json:
        import json

        return json.dumps(data, sort_keys=True)
    outcome = Outcome.Name(result.outcome).removeprefix("OUTCOME_").lower()
    lines = [f"{result.probe} {result.target}: {outcome}"]
    if result.failure_class:
        lines.append(f"  failure: {FailureClass.Name(result.failure_class).lower()} - {result.error}")
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"  {section}:")
            lines.extend(f"    {k}: {v}" for k, v in values.items())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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


