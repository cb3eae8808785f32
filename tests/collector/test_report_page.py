"""Availability through a real collector process: `GET /api/v1/report`, `probe-collector report`
in each format, and the status page's 90-day bars, per-region availability and error-budget
gauge in a real headless chromium, over a store filled with 90 days of synthetic history.

The history goes into the store before the collector opens it (only one process may open an
embedded store): every 6-minute slot of 90 days covered for shop, api and assets in it, fr and
de, but assets sends nothing for three whole days; shop is down in it for 90 minutes 10 days ago
(tls_cert_expired) and partial in fr and de for 40 minutes 3 days ago; api is down everywhere
for an hour 60 days ago. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from collector.store import Store
from collector.store.history import day_rows_insert
from tests.collector.test_statuspage import ARTIFACTS, CHROMIUM, chromium
from tests.e2e.procs import BIN, Collector, stopped_on_exit

DAY = 86_400
CHECKS = [
    {"id": "shop", "probe": "page", "target": "https://shop.test/", "interval": "60s",
     "slo": {"target": 99.5, "window": "30d"}},
    {"id": "api", "probe": "http", "target": "https://api.test/", "interval": "60s"},
    {"id": "assets", "probe": "http", "target": "https://assets.test/", "interval": "60s"},
]  # fmt: skip
SLOTS_SQL = day_rows_insert("""
SELECT today() - d AS day, c AS check_id, r AS region, bitShiftLeft(toUInt256(1), 240) - 1 AS slots,
       240 AS results
FROM (SELECT number AS d FROM numbers(91)) AS days
CROSS JOIN (SELECT arrayJoin(['shop', 'api', 'assets']) AS c) AS checks
CROSS JOIN (SELECT arrayJoin(['it', 'fr', 'de', '']) AS r) AS regions
WHERE NOT (c = 'assets' AND d IN (40, 41, 42))
""")
EVENTS_SQL = """
INSERT INTO outage_events (event_id, version, kind, check_id, status, scope, regions, cause_class,
                           cause_host, cause_error, opened_at, updated_at, closed_at)
VALUES
 ('s1', 1, 'check', 'shop', 'outage', 'regional', ['it'], 'tls_cert_expired', 'static.shop.test',
  'certificate has expired', {s1:DateTime64(3)}, {s1:DateTime64(3)}, NULL),
 ('s1', 2, 'check', 'shop', 'outage', 'regional', ['it'], 'tls_cert_expired', 'static.shop.test',
  'certificate has expired', {s1:DateTime64(3)}, {s1_end:DateTime64(3)}, {s1_end:DateTime64(3)}),
 ('s2', 1, 'check', 'shop', 'partial', 'regional', ['de', 'fr'], 'subresource_failed', 'cdn.shop.test',
  '', {s2:DateTime64(3)}, {s2:DateTime64(3)}, NULL),
 ('s2', 2, 'check', 'shop', 'partial', 'regional', ['de', 'fr'], 'subresource_failed', 'cdn.shop.test',
  '', {s2:DateTime64(3)}, {s2_end:DateTime64(3)}, {s2_end:DateTime64(3)}),
 ('a1', 1, 'check', 'api', 'outage', 'global', ['de', 'fr', 'it'], 'tcp_refused', '',
  'connection refused', {a1:DateTime64(3)}, {a1:DateTime64(3)}, NULL),
 ('a1', 2, 'check', 'api', 'outage', 'global', ['de', 'fr', 'it'], 'tcp_refused', '',
  'connection refused', {a1:DateTime64(3)}, {a1_end:DateTime64(3)}, {a1_end:DateTime64(3)})
"""


def midnight(days_ago: int) -> float:
    return (time.time() // DAY - days_ago) * DAY


def fill(store_dir: Path) -> None:
    store = Store(f"chdb://{store_dir}")
    try:
        store.migrate()
        store.command(SLOTS_SQL)
        times = {
            "s1": midnight(10) + 2 * 3600,
            "s1_end": midnight(10) + 3.5 * 3600,
            "s2": midnight(3) + 12 * 3600,
            "s2_end": midnight(3) + 12 * 3600 + 2400,
            "a1": midnight(60) + 5 * 3600,
            "a1_end": midnight(60) + 6 * 3600,
        }
        store.command(EVENTS_SQL, {k: _dt(v) for k, v in times.items()})
    finally:
        store.close()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    workdir = tmp_path_factory.mktemp("report-page")
    fill(workdir / "store")
    # The verdict engine's first tick is at the next whole day: the stored history is all there is.
    running = Collector(workdir, extra={"checks": CHECKS, "evaluate_every": "24h"})
    running.start()
    with stopped_on_exit(running):
        yield running
        assert running.stop() == 0, running.proc.output() if running.proc else ""


def get(api: str, path: str) -> Any:
    with urllib.request.urlopen(f"{api}{path}", timeout=60) as response:
        return json.load(response)


def by_check(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in answer["checks"]}


def test_report_over_90_days(collector: Collector) -> None:
    answer = get(collector.api, "/api/v1/report?since=90d&regions=all")
    checks = by_check(answer)
    shop, api, assets = checks["shop"], checks["api"], checks["assets"]
    assert (shop["down_s"], shop["degraded_s"], shop["no_data_s"]) == (5400.0, 2400.0, 0.0)
    assert shop["availability"] == round(100 * (1 - (5400 + 0.5 * 2400) / (90 * DAY)), 4)
    assert (shop["incidents"], shop["mttr_s"]) == (2, (5400 + 2400) / 2)
    assert {r["region"]: r["down_s"] for r in shop["regions"]} == {"it": 5400.0, "fr": 0.0, "de": 0.0}
    assert assets["no_data_s"] == 3 * DAY
    assert assets["availability"] == 100.0  # no data is not up, and not down either
    assert api["down_s"] == 3600.0
    assert [c["check"] for c in answer["checks"]] == ["shop", "api", "assets"]
    assert [c["class"] for c in answer["top_causes"]] == [
        "tls_cert_expired",
        "tcp_refused",
        "subresource_failed",
    ]
    # shop's SLO (99.5 % over 30 days): 6,600 bad seconds of 2,592,000 against 0.5 % allowed.
    assert shop["slo"]["budget_left"] == round(1 - (6600 / (30 * DAY)) / 0.005, 4)
    assert api["slo"] is None


def test_report_answers_bad_parameters_with_400(collector: Collector) -> None:
    for query in ("since=forever", "since=900d", "regions=some"):
        with pytest.raises(urllib.error.HTTPError) as error:
            get(collector.api, f"/api/v1/report?{query}")
        assert error.value.code == 400
        assert json.load(error.value)["error"].split(":")[0] in ("since", "regions")


def cli(collector: Collector, *args: str) -> str:
    out = subprocess.run(
        [str(BIN / "probe-collector"), "report", "--api", collector.api, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_cli_in_every_format(collector: Collector) -> None:
    as_json = json.loads(cli(collector, "--since", "90d", "--format", "json"))
    assert by_check(as_json)["shop"]["incidents"] == 2
    rows = list(csv.DictReader(io.StringIO(cli(collector, "--since", "90d", "--format", "csv"))))
    shop = next(r for r in rows if r["check"] == "shop")
    assert (shop["down_s"], shop["slo_target"]) == ("5400.0", "99.5")
    assert shop["worst_region"].startswith("it ")
    assert shop["top_cause"] == "tls_cert_expired"
    table = cli(collector, "--since", "90d", "--check", "sh*")
    assert table.splitlines()[0].split()[:2] == ["check", "availability"]
    assert "top causes: tls_cert_expired@static.shop.test (1)" in table
    assert "api" not in table.split("\n\n")[0]
    page = cli(collector, "--since", "30d", "--format", "html")
    assert page.startswith("<!doctype html>") and "<td>shop</td>" in page


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run .ci/install-chromium.sh"
    with chromium(tmp_path_factory.mktemp("chromium-profile"), height=1000) as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    opened = browser.new_page()
    yield opened
    opened.close()


def day_of(days_ago: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(midnight(days_ago)))


def test_the_90_day_bars_and_the_hover(collector: Collector, page: Page) -> None:
    page.goto(f"{collector.api}/status/")
    page.wait_for_selector('#history[data-loaded="true"]', timeout=30_000)
    for check in ("shop", "api", "assets"):
        assert page.locator(f'.bar[data-check="{check}"] .day').count() == 90
    shop = page.locator('.bar[data-check="shop"]')
    outage_day = shop.locator(f'.day[data-day="{day_of(10)}"]')
    assert "avail-bad" in (outage_day.get_attribute("class") or "")  # 93.75 % that day
    assert "avail-good" in (shop.locator(f'.day[data-day="{day_of(20)}"]').get_attribute("class") or "")
    # 40 minutes partial weigh 20: 98.6 % that day.
    assert "avail-poor" in (shop.locator(f'.day[data-day="{day_of(3)}"]').get_attribute("class") or "")
    silent = page.locator(f'.bar[data-check="assets"] .day[data-day="{day_of(41)}"]')
    assert "avail-none" in (silent.get_attribute("class") or "")
    outage_day.hover()
    tip = page.locator("#day-tip")
    tip.wait_for(state="visible", timeout=5_000)
    text = tip.inner_text()
    assert f"shop, {day_of(10)}: 93.75 %" in text
    assert "outage: tls_cert_expired on static.shop.test in it" in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "statuspage-history.png"), full_page=True)


def test_the_check_page_shows_availability_per_region_and_the_budget(
    collector: Collector, page: Page
) -> None:
    page.goto(f"{collector.api}/status/#/check/shop")
    page.wait_for_selector('#check-availability[data-loaded="shop"]', timeout=30_000)
    rows = [r.split("\t") for r in page.locator("#availability tbody tr").all_inner_texts()]
    assert [r[0] for r in rows] == ["all regions", "it", "de", "fr"]
    assert rows[1][2] == "1.5 h"  # it's 90 minutes down
    gauge = page.locator("#budget-gauge")
    assert float(gauge.get_attribute("data-left") or "nan") == round(1 - (6600 / (30 * DAY)) / 0.005, 4)
    assert "SLO 99.5 % over 30 days" in page.locator("#budget").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "statuspage-check-availability.png"), full_page=True)
