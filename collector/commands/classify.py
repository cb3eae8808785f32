"""probe-collector classify --checks checks.yaml --results results.jsonl [--json]

Replays results (one ProbeResult a line, proto3 JSON, camelCase or snake_case) through the
verdict engine on ticks derived from their timestamps, and prints every event version.
Deterministic: no clock is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from collector.config import parse_checks, parse_seconds, read_yaml_mapping
from collector.errors import ConfigError, UsageError
from collector.verdicts import Result, replay
from collector.verdicts.events import describe
from probenet.v1.probe_pb2 import CheckSpec, ProbeResult


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "classify", help="replay results through the verdict engine and print the events"
    )
    parser.add_argument("--checks", type=Path, required=True, help="YAML file with a top-level checks: list")
    parser.add_argument("--results", type=Path, required=True, help="one ProbeResult per line (proto3 JSON)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event version")
    parser.add_argument(
        "--evaluate-every", default="0s", help="evaluation tick (default: the smallest check interval)"
    )
    parser.set_defaults(handler=run)


def load_checks(path: Path) -> tuple[CheckSpec, ...]:
    file = str(path)
    raw = read_yaml_mapping(path)
    if "checks" not in raw:
        raise ConfigError(file, "checks", "expected a mapping with a top-level checks: list")
    checks = parse_checks(raw["checks"], file)
    if not checks:
        raise ConfigError(file, "checks", "is empty")
    return checks


def parse_result_line(line: str, file: str, number: int) -> Result:
    key = f"line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(file, key, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise ConfigError(file, key, "expected a JSON object (a ProbeResult)")
    try:
        message = json_format.ParseDict(data, ProbeResult())
    except json_format.ParseError as exc:
        raise ConfigError(file, key, str(exc)) from exc
    for field_name in ("check_id", "agent_id", "region"):
        if not getattr(message, field_name):
            raise ConfigError(file, f"{key}.{field_name}", "is required")
    if not message.HasField("started_at"):
        raise ConfigError(file, f"{key}.started_at", "is required")
    return Result.from_proto(message)


def load_results(path: Path) -> list[Result]:
    file = str(path)
    try:
        with path.open() as handle:
            return [parse_result_line(line, file, n) for n, line in _numbered(handle) if line.strip()]
    except OSError as exc:
        raise ConfigError(file, "-", f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "-", f"not UTF-8 text: {exc.reason}") from exc


def _numbered(lines: Any) -> Iterator[tuple[int, str]]:
    return enumerate(lines, start=1)


def run(args: argparse.Namespace) -> int:
    checks = load_checks(args.checks)
    results = load_results(args.results)
    try:
        every = parse_seconds(args.evaluate_every, "--evaluate-every", "-", allow_zero=True)
    except ConfigError as exc:
        raise UsageError(f"--evaluate-every: {exc.reason}") from exc
    outcome = replay(checks, results, every)
    for event in outcome.events:
        print(json.dumps(event.to_dict(), sort_keys=True) if args.json else describe(event))
    if not args.json:
        opened = len({e.id for e in outcome.events})
        print(
            f"{len(results)} results, {outcome.evaluations} evaluations, {opened} events, "
            f"{len(outcome.events)} versions"
        )
    sys.stdout.flush()
    return 0
