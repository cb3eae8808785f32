"""probe-collector serve --config collector.yaml"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from collector.app import run_until_signal
from collector.config import config_from_mapping, load_config
from collector.evaluator import verdict_service  # noqa: F401 - importing it registers live verdicts


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("serve", help="run the collector")
    parser.add_argument("--config", type=Path, help="collector.yaml (default: built-in defaults, insecure)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.config:
        config = load_config(args.config)
    else:
        config = config_from_mapping({"insecure": True}, "<defaults>")
    asyncio.run(run_until_signal(config))
    return 0
