"""The README's SQL cookbook, run as written against a store filled by a real run.

A real collector process evaluates verdicts; two real agents (it, fr) probe a local HTTPS shop
whose certificate expires in 20 days; through the same gRPC stream agents use, a third agent in
`it` reports the shop refused (a regional outage that opens and then closes), a page agent in
`de` sees an asset host with an expired certificate, and an agent that went silent ten minutes
ago left its last results. Every ```sql block of the README's "SQL cookbook" section is then run
through `probe-collector query`, and each must return what that situation implies.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.collector.feed import FakeAgent, feed, feed_live
from tests.e2e.procs import Collector, start_agent, stopped_on_exit, wait_until
from tests.web import serving

README = Path(__file__).resolve().parents[2] / "README.md"
Rows = list[dict[str, Any]]


def cookbook() -> dict[str, str]:
    """Title -> SQL of every query in the README's SQL cookbook section."""
    text = README.read_text()
    section = text[text.index("\n## SQL cookbook") :]
    following = re.search(r"\n## (?!SQL cookbook)", section[1:])
    if following:
        section = section[: following.start() + 1]
    queries: dict[str, str] = {}
    for block in re.split(r"\n### ", section)[1:]:
        title = block.splitlines()[0].strip()
        sql = re.search(r"```sql\n(.*?)```", block, re.S)
        assert sql, f"no sql block under {title!r}"
        queries[title] = sql.group(1).strip()
    return queries


def _has(rows: Rows, **want: Any) -> bool:
    return any(all(row.get(k) == v for k, v in want.items()) for row in rows)


# What each query must show after the run; keyed by the start of its README title.
EXPECT: dict[str, Callable[[Rows], bool]] = {
    "Failure ratio by region": lambda rows: (
        _has(rows, region="fr", failures=0) and any(r["region"] == "it" and r["failures"] > 0 for r in rows)
    ),
    "p95 time to first byte": lambda rows: (
        {"it", "fr"} <= {r["region"] for r in rows} and all(r["p95_ttfb_ms"] > 0 for r in rows)
    ),
    "Slowest checks": lambda rows: any(r["check_id"] == "shop" and r["p95_total_ms"] > 0 for r in rows),
    "Why it fails": lambda rows: any(
        r["failure_class"] == "tcp_refused" and r["region"] == "it" and "refused" in r["sample_error"]
        for r in rows
    ),
    "What the agents saw": lambda rows: {r["agent_id"] for r in rows} >= {"it-1", "it-2"},
    "Certificates expiring within 30 days": lambda rows: any(
        r["check_id"] == "shop-tls"
        and 19 <= r["days_left"] <= 20.5
        and sorted(r["seen_from"]) == ["fr", "it"]
        for r in rows
    ),
    "Worst sub-resource hosts": lambda rows: (
        rows[0]["host"] == "cdn.test" and rows[0]["failure_class"] == "tls_cert_expired"
    ),
    "Outage history with durations": lambda rows: any(
        r["check_id"] == "shop"
        and r["regions"] == ["it"]
        and r["cause"] == "tcp_refused"
        and r["closed"] is not None
        and r["duration_s"] >= 1
        and "outage" in r["statuses"]
        and (r["peak_status"], r["peak_regions"]) == ("outage", ["it"])
        and r["peak_scope"] in r["scopes"]
        for r in rows
    ),
    "Agents that went silent": lambda rows: (
        [r["agent_id"] for r in rows] == ["de-old"] and rows[0]["silent_s"] >= 500
    ),
    "Daily availability per check": lambda rows: any(
        r["check_id"] == "shop" and 0 < r["availability_pct"] < 100 for r in rows
    ),
}


def _shop(path: str) -> tuple[int, bytes, str]:
    return 200, b"<html><body>shop</body></html>", "text/html"


@pytest.fixture
def shop() -> Iterator[tuple[int, str]]:
    """An HTTPS shop whose certificate expires in 20 days."""
    ca = trustme.CA()
    cert = ca.issue_cert("shop.test", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=20))
    with serving(_shop, cert) as port:
        yield port, ca.cert_pem.bytes().decode()


def _checks(port: int, ca_pem: str) -> list[dict[str, Any]]:
    common = {
        "interval": "1s",
        "timeout": "1s",
        "resolve": {"shop.test": "127.0.0.1"},
        "tls": {"ca_pem": ca_pem},
    }
    return [
        {"id": "shop", "probe": "http", "target": f"https://shop.test:{port}/", **common},
        {"id": "shop-tls", "probe": "tls", "target": f"shop.test:{port}", **common},
        # Only the `de` page agent below reports this one.
        {
            "id": "assets",
            "probe": "page",
            "target": "https://assets.test/",
            "interval": "1s",
            "regions": ["de"],
        },
    ]


def _events(api: str, check: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{api}/api/v1/events?check={check}", timeout=10) as response:
        events: list[dict[str, Any]] = json.load(response)["events"]
    return events


def _refused(agent: FakeAgent) -> Callable[[float], None]:
    def add(now: float) -> None:
        agent.add(
            "shop",
            now,
            failure="tcp_refused",
            host="shop.test",
            error="connect to 127.0.0.1:443: connection refused",
        )

    return add


@pytest.mark.e2e
def test_every_cookbook_query_answers_from_a_real_run(tmp_path: Path, shop: tuple[int, str]) -> None:
    queries = cookbook()
    assert 8 <= len(queries) <= 10
    assert {t for t in queries if not any(t.startswith(k) for k in EXPECT)} == set(), (
        "a query without a check"
    )

    port, ca_pem = shop
    collector = Collector(tmp_path, extra={"checks": _checks(port, ca_pem), "evaluate_every": "1s"}).start()
    agents = [start_agent(tmp_path, f"{r}-1", r, collector.address, []) for r in ("it", "fr")]
    with stopped_on_exit(collector, *agents):
        per_agent = "SELECT agent_id, check_id, count() AS n FROM probe_results GROUP BY agent_id, check_id"
        wait_until(
            lambda: len([r for r in collector.query(per_agent) if r["n"] >= 3]) == 4,
            60,
            "3 results of shop and shop-tls from it-1 and fr-1",
        )

        old = FakeAgent("de-old", "de")
        for minute in range(10, 15):
            old.add("assets", time.time() - minute * 60, probe="page", partial_hosts=("cdn.test",))
        feed(collector.address, old)

        # it-2 finds the shop refused for a few seconds: a regional outage in `it`...
        refusing = FakeAgent("it-2", "it")
        feed_live(collector.address, refusing, _refused(refusing), seconds=5)
        wait_until(lambda: _events(collector.api, "shop"), 30, "the shop event opens")
        # ...that ends when it-2 stops reporting (it-1 still sees the shop up).
        page = FakeAgent("de-1", "de")
        feed_live(
            collector.address,
            page,
            lambda now: page.add("assets", now, probe="page", partial_hosts=("cdn.test", "img.test")),
            seconds=3,
        )
        wait_until(
            lambda: all(e["closed_at"] for e in _events(collector.api, "shop")), 30, "the shop event closes"
        )

        answers = {title: collector.query(sql) for title, sql in queries.items()}
        for title, rows in answers.items():
            check = next(v for k, v in EXPECT.items() if title.startswith(k))
            assert rows, f"{title}: no rows"
            assert check(rows), f"{title}: unexpected answer:\n" + "\n".join(map(str, rows))

        for agent in agents:
            assert agent.stop() == 0, agent.output()
        assert collector.stop() == 0
