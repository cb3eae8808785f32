"""Walking skeleton: results travel from agents in two regions, over gRPC, into ClickHouse rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.e2e.procs import Collector, start_agent, stopped_on_exit, wait_until
from tests.web import serving


def _shop(path: str) -> tuple[int, bytes, str]:
    return (503, b"closed\n", "") if path.startswith("/down") else (200, b"shop is open\n", "")


@pytest.fixture
def https_target() -> Iterator[tuple[int, str]]:
    ca = trustme.CA()
    with serving(_shop, ca.issue_cert("shop.test")) as port:
        yield port, ca.cert_pem.bytes().decode()


def _checks(port: int, ca_pem: str) -> list[dict[str, object]]:
    common = {
        "probe": "http",
        "interval": "500ms",
        "timeout": "500ms",
        "resolve": {"shop.test": "127.0.0.1"},
        "tls": {"ca_pem": ca_pem},
    }
    return [
        {"id": "shop", "target": f"https://shop.test:{port}/", **common},
        {"id": "shop-down", "target": f"https://shop.test:{port}/down", **common},
    ]


def _acked_seq(spool_dir: Path) -> int:
    with sqlite3.connect(spool_dir / "spool.db") as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.e2e
def test_results_from_two_regions_become_rows_and_no_acked_row_is_lost(
    tmp_path: Path, https_target: tuple[int, str]
) -> None:
    port, ca_pem = https_target
    collector = Collector(tmp_path).start()
    agents = [
        start_agent(tmp_path, f"{r}-1", r, collector.address, _checks(port, ca_pem)) for r in ("it", "fr")
    ]
    with stopped_on_exit(collector, *agents):
        per_region = "SELECT region, check_id, count() AS n FROM probe_results GROUP BY region, check_id"
        wait_until(
            lambda: len([r for r in collector.query(per_region) if r["n"] >= 3]) == 4,
            60,
            "3 results per check in both regions",
        )
        rows = collector.query(
            "SELECT region, check_id, outcome, failure_class, http_status, dns_ms, connect_ms, tls_ms, "
            "ttfb_ms, total_ms FROM probe_results"
        )
        assert {r["region"] for r in rows} == {"it", "fr"}
        for row in rows:
            assert row["connect_ms"] > 0 and row["tls_ms"] > 0 and row["ttfb_ms"] > 0
            assert row["total_ms"] >= row["tls_ms"]
            if row["check_id"] == "shop":
                assert (row["outcome"], row["http_status"], row["failure_class"]) == ("success", 200, "")
            else:
                assert (row["outcome"], row["http_status"], row["failure_class"]) == (
                    "failed",
                    503,
                    "http_status",
                )

        for agent in agents:
            assert agent.stop() == 0, agent.output()
        assert collector.stop() == 0, collector.proc.output() if collector.proc else ""

    acked = {a.name: _acked_seq(tmp_path / f"spool-{a.name}") for a in agents}
    assert all(seq > 0 for seq in acked.values()), acked
    restarted = Collector(tmp_path, store_dir=tmp_path / "store").start()
    with stopped_on_exit(restarted):
        stored = {
            r["agent_id"]: r
            for r in restarted.query(
                "SELECT agent_id, count() AS n, uniqExact(seq) AS distinct_seq, max(seq) AS top "
                "FROM probe_results GROUP BY agent_id"
            )
        }
        for agent_id, seq in acked.items():
            row = stored[agent_id]
            assert row["n"] == row["distinct_seq"], f"duplicates for {agent_id}: {row}"
            assert row["top"] >= seq, f"{agent_id} acked {seq} but the store has only up to {row['top']}"
            have = restarted.query(
                f"SELECT count() AS n FROM probe_results WHERE agent_id = '{agent_id}' AND seq <= {seq}"
            )
            assert have[0]["n"] == seq, f"{agent_id}: acked rows missing"
        restarted.stop()
