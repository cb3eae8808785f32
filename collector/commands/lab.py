"""probe-collector lab [SCENARIO.yaml] [--json] [--speed FACTOR]: a whole probe network on this machine."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from collector.errors import UsageError

EXIT_OK, EXIT_UNMET, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "lab", help="run a scenario: collector, agents, targets and faults on this machine"
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default=None,
        help="scenario file or built-in name (default: shop-assets-cert-expired, the 23 April 2020 replay)",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of the live view"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="divide every scenario time by FACTOR (default 1)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (agent and collector logs, the store)"
    )
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="TYPE=URL",
        help="send the lab's events to a sink as well (repeatable): webhook, slack, alertmanager, "
        "pagerduty or opsgenie; the last two read their key from PROBENET_PAGERDUTY_KEY / "
        "PROBENET_OPSGENIE_KEY",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from collector.lab.scenario import builtin_names, load_scenario, resolve_scenario_path

    if args.list:
        for name in builtin_names():
            print(name)
        return EXIT_OK
    if not 0.1 <= args.speed <= 20:
        raise UsageError(f"--speed {args.speed:g}: expected a factor between 0.1 and 20")
    scenario = load_scenario(resolve_scenario_path(args.scenario)).scaled(args.speed)
    notify = notify_sinks(args.notify)
    from collector.lab.runner import Lab
    from collector.lab.view import JsonObserver, LiveObserver, PlainObserver

    if args.json:
        observer: Any = JsonObserver()
    elif sys.stdout.isatty():
        observer = LiveObserver()
    else:
        observer = PlainObserver()
    try:
        report = asyncio.run(_run(Lab(scenario, observer, keep_workdir=args.keep, notify=notify)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        observer.close()
        print("probe-collector lab: interrupted; everything the lab started is stopped", file=sys.stderr)
        return EXIT_UNMET
    finally:
        observer.close()
    return EXIT_OK if report.expect_met else EXIT_UNMET


def notify_sinks(flags: list[str]) -> tuple[dict[str, Any], ...]:
    """`--notify TYPE=URL` flags as collector.yaml `notify:` entries, checked as the collector
    would check them (so a typo stops the lab before anything starts)."""
    from collector.config import NOTIFY_TYPES, SECRET_SINKS, config_from_mapping

    sinks = []
    for flag in flags:
        kind, sep, url = flag.partition("=")
        if not sep or kind not in NOTIFY_TYPES or not url:
            raise UsageError(f"--notify {flag}: expected TYPE=URL with TYPE one of {', '.join(NOTIFY_TYPES)}")
        sink: dict[str, Any] = {"type": kind, "url": url}
        if kind in SECRET_SINKS:
            sink["key_env"] = f"PROBENET_{kind.upper()}_KEY"
        sinks.append(sink)
    config_from_mapping({"insecure": True, "notify": sinks}, "--notify")
    return tuple(sinks)


async def _run(lab: Any) -> Any:
    """Run the lab; Ctrl-C and SIGTERM cancel it, so the teardown always runs, and an
    interrupted run never reports success even if the cancellation landed in the teardown."""
    task = asyncio.current_task()
    assert task is not None
    interrupted: list[int] = []

    def interrupt(sig: int) -> None:
        interrupted.append(sig)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    report = await lab.run()
    if interrupted:
        raise KeyboardInterrupt
    return report
