"""probe-collector serve --config collector.yaml"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from collector.app import run_until_signal
from collector.config import config_from_mapping, load_config

# How long leftover tasks get to finish cancelling after a graceful stop.
TEARDOWN_S = 3.0


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("serve", help="run the collector")
    parser.add_argument("--config", type=Path, help="collector.yaml (default: built-in defaults, insecure)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.config:
        config = load_config(args.config)
    else:
        config = config_from_mapping({"insecure": True}, "<defaults>")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run_until_signal(config))
        _cancel_leftovers(loop)
        loop.close()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # The stop that used to hang about once in 20 was the ingest deadlock (ingest/ingestor.py):
    # ack tasks stuck re-acquiring a lock nobody would release swallow every cancellation, so
    # the teardown waited on them for ever. Nothing is left to wait for now: exit normally.
    return 0


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, timeout: float = TEARDOWN_S) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        waiter = asyncio.wait(tasks, timeout=timeout)
        with contextlib.suppress(Exception):
            loop.run_until_complete(waiter)
