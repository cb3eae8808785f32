"""probe-collector ca init|issue-agent|issue-region|issue-collector — certificates for mTLS.

    probe-collector ca init --dir pki
    probe-collector ca issue-agent --dir pki --region it --agent-id it-1
    probe-collector ca issue-region --dir pki --region it
    probe-collector ca issue-collector --dir pki --host collector.example.net --host 10.0.0.5

The CA lives in --dir (ca.pem, ca-key.pem); issued files go to --out (default: --dir).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from collector import ca
from collector.errors import UsageError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("ca", help="create a CA and issue mTLS certificates")
    actions = parser.add_subparsers(dest="ca_action", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        p.add_argument("--dir", type=Path, default=Path("pki"), help="CA directory (default: ./pki)")
        p.add_argument("--out", type=Path, help="where issued files go (default: --dir)")
        p.add_argument("--days", type=float, default=397.0, help="validity in days")
        return p

    init = action("init", "create ca.pem and ca-key.pem")
    init.add_argument("--name", default="probenet CA")
    init.set_defaults(handler=run_init, days=3650.0)
    agent = action("issue-agent", "certificate naming one agent (agent id and region inside)")
    agent.add_argument("--region", required=True)
    agent.add_argument("--agent-id", required=True)
    agent.set_defaults(handler=run_issue_agent)
    region = action("issue-region", "certificate shared by a region's agents (agent id from the hello)")
    region.add_argument("--region", required=True)
    region.set_defaults(handler=run_issue_region)
    coll = action("issue-collector", "server certificate for the collector")
    coll.add_argument("--host", action="append", required=True, help="DNS name or IP (repeatable)")
    coll.set_defaults(handler=run_issue_collector)


def _ca_dir(args: argparse.Namespace) -> Path:
    directory: Path = args.dir
    if not (directory / ca.CA_CERT).is_file() or not (directory / ca.CA_KEY).is_file():
        raise UsageError(f"ca: no CA in {directory} (run `probe-collector ca init --dir {directory}` first)")
    return directory


def _print(issued: ca.Issued) -> int:
    print(f"wrote {issued.cert} and {issued.key}")
    return 0


def run_init(args: argparse.Namespace) -> int:
    try:
        return _print(ca.init_ca(args.dir, args.name, int(args.days)))
    except FileExistsError as exc:
        raise UsageError(f"ca init: {exc}") from exc


def run_issue_agent(args: argparse.Namespace) -> int:
    try:
        return _print(
            ca.issue_agent(_ca_dir(args), args.out or args.dir, args.region, args.agent_id, args.days)
        )
    except ValueError as exc:
        raise UsageError(f"ca issue-agent: {exc}") from exc


def run_issue_region(args: argparse.Namespace) -> int:
    try:
        return _print(ca.issue_region(_ca_dir(args), args.out or args.dir, args.region, args.days))
    except ValueError as exc:
        raise UsageError(f"ca issue-region: {exc}") from exc


def run_issue_collector(args: argparse.Namespace) -> int:
    try:
        return _print(ca.issue_collector(_ca_dir(args), args.out or args.dir, args.host, args.days))
    except ValueError as exc:
        raise UsageError(f"ca issue-collector: {exc}") from exc
