"""probe-collector query "SQL" [--format table|json|csv] — read-only SQL through the collector's API."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from collector.errors import CollectorError, UsageError

DEFAULT_API = "http://127.0.0.1:8080"


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("PROBENET_API", DEFAULT_API),
        help="collector API base URL (env PROBENET_API)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("PROBENET_TOKEN", ""), help="bearer token (env PROBENET_TOKEN)"
    )


def api_call(args: argparse.Namespace, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the collector API; map HTTP and network errors to CollectorError with the reason."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(args.api.rstrip("/") + path, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (json.JSONDecodeError, AttributeError):
            message = exc.reason
        raise CollectorError(f"{path}: {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CollectorError(f"cannot reach the collector API at {args.api}: {reason}") from exc


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("query", help="run read-only SQL on the store")
    parser.add_argument("sql")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    add_api_arguments(parser)
    parser.set_defaults(handler=run)


def render(columns: list[str], rows: list[list[Any]], fmt: str) -> str:
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(columns, row, strict=True))) for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.sql.strip():
        raise UsageError("query: SQL is empty")
    answer = api_call(args, "/api/v1/query", {"sql": args.sql})
    print(render(answer["columns"], answer["rows"], args.format))
    sys.stdout.flush()
    return 0
