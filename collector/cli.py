"""probe-collector command line. Each subcommand lives in collector/commands/<name>.py and
exposes `register(subparsers)`; exit codes: 0 success, 1 runtime failure, 2 usage/config error."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from collector.errors import CollectorError, ConfigError, UsageError

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

# Subcommand modules, in help order.
COMMANDS = ["serve", "query", "ca", "lab", "classify", "status", "events", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-collector", description="probenet collector")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"collector.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.handler(args)
    except (ConfigError, UsageError) as exc:
        print(f"probe-collector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CollectorError as exc:
        print(f"probe-collector: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    return code
