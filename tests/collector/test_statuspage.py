"""The status page in a real headless chromium, loaded from a running collector with real data.

Results showing a regional outage (shop refused in `it` only) go through the agents' gRPC
stream into a collector process whose verdict engine opens the event; the test then looks at
the page the way a person would: the `it` cell of `shop` is red, the others green, and the open
event names the cause. A screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.collector.feed import feed, regional_outage
from tests.collector.test_api import get
from tests.e2e.procs import Collector, stopped_on_exit, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RED = "rgb(217, 48, 37)"
GREEN = "rgb(46, 158, 68)"
CHECKS = [
    {"id": "shop", "probe": "http", "target": "https://shop.test/", "interval": "60s"},
    {"id": "api", "probe": "http", "target": "https://api.test/", "interval": "60s"},
    {"id": "assets", "probe": "page", "target": "https://assets.test/", "interval": "60s"},
]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    now = datetime.now(UTC)
    window = {
        "name": "cdn-move",
        "checks": ["assets"],
        "start": now - timedelta(hours=1),
        "end": now + timedelta(hours=1),
    }
    running = Collector(
        tmp_path_factory.mktemp("statuspage"),
        extra={"checks": CHECKS, "evaluate_every": "1s", "maintenance": [window]},
    )
    running.start()
    with stopped_on_exit(running):
        feed(running.address, *regional_outage(time.time(), minutes=3, step=20))
        wait_until(lambda: _open_event(running.api, "shop"), 60, "the verdict engine opens the shop event")
        yield running
        assert running.stop() == 0, running.proc.output() if running.proc else ""


def _open_event(api: str, check: str) -> bool:
    with urllib.request.urlopen(f"{api}/api/v1/events?open=true&check={check}", timeout=10) as response:
        return bool(json.load(response)["events"])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    # A missing browser is a failure, not a skip: CI installs it with .ci/install-chromium.sh.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run .ci/install-chromium.sh"
    with chromium(tmp_path_factory.mktemp("chromium-profile"), height=900) as context:
        yield context


@contextlib.contextmanager
def chromium(profile: Path, height: int) -> Iterator[BrowserContext]:
    """Headless Debian chromium with a fresh user-data-dir `profile`, 1280 px wide."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    opened = browser.new_page()
    external: list[str] = []
    opened.on(
        "request",
        lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:")) else None,
    )
    yield opened
    opened.close()
    assert not external, f"the page loaded external assets: {external}"


def _cell(page: Page, check: str, region: str) -> str:
    return f'#grid .cell[data-check="{check}"][data-region="{region}"]'


def test_regional_outage_is_red_in_its_region_and_the_event_names_the_cause(
    collector: Collector, page: Page
) -> None:
    page.goto(f"{collector.api}/status/")
    page.wait_for_selector('body[data-loaded="true"]', timeout=15_000)
    page.wait_for_selector(_cell(page, "shop", "it"), timeout=15_000)

    it_cell = page.locator(_cell(page, "shop", "it"))
    assert it_cell.inner_text() == "DOWN"
    assert it_cell.evaluate("e => getComputedStyle(e).backgroundColor") == RED
    for region in ("de", "fr"):
        other = page.locator(_cell(page, "shop", region))
        assert other.inner_text() == "UP"
        assert other.evaluate("e => getComputedStyle(e).backgroundColor") == GREEN
    assert (
        page.locator(_cell(page, "api", "it")).evaluate("e => getComputedStyle(e).backgroundColor") == GREEN
    )

    event = page.locator('#open-events-list li[data-check="shop"]')
    text = event.inner_text()
    assert "shop: outage (regional in it)" in text
    assert "tcp_refused" in text
    assert "connection refused" in text
    # The whole-page partial outage of `assets` is visible too, with its sub-resource cause.
    assert "tls_cert_expired" in page.locator('#open-events-list li[data-check="assets"]').inner_text()
    # The timeline tells each event by its peak (what it ever affected).
    page.wait_for_selector("#timeline svg title", state="attached", timeout=15_000)
    tips = page.locator("#timeline svg title").all_text_contents()
    assert any(t.startswith("shop: peak outage regional it") for t in tips), tips

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "statuspage-overview.png"), full_page=True)


def test_maintenance_is_listed_and_covered_events_say_so(collector: Collector, page: Page) -> None:
    page.goto(f"{collector.api}/status/")
    page.wait_for_selector('#maintenance-list li.window[data-id="cdn-move"]', timeout=15_000)
    assert "window cdn-move: assets" in page.locator("#maintenance-list").inner_text()
    assert "(active)" in page.locator("#maintenance-list").inner_text()
    page.wait_for_selector('#open-events-list li[data-check="assets"] .maintenance', timeout=15_000)
    assert page.locator('#open-events-list li[data-check="shop"] .maintenance').count() == 0


def test_check_page_draws_latency_by_phase_and_failures_by_class_and_region(
    collector: Collector, page: Page
) -> None:
    page.goto(f"{collector.api}/status/#/check/shop")
    page.wait_for_selector('#check[data-loaded="shop"]', timeout=15_000)
    assert page.locator("#check-title").inner_text() == "shop"
    assert page.locator("#latency-chart svg polygon.phase").count() == 5
    failures = page.locator("#failures tbody tr")
    assert failures.count() == 1
    assert failures.first.inner_text().split("\t")[:2] == ["tcp_refused", "it"]
    assert "tcp_refused" in page.locator("#check-events").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "statuspage-check.png"), full_page=True)

    page.goto(f"{collector.api}/status/#/check/assets")
    page.wait_for_selector('#check[data-loaded="assets"]', timeout=15_000)
    assert "cdn.test" in page.locator("#hosts").inner_text()


def _status(api: str, query: str = "") -> dict[str, Any]:
    with urllib.request.urlopen(f"{api}/api/v1/status{query}", timeout=10) as response:
        doc: dict[str, Any] = json.load(response)
    return doc


def test_status_from_the_engine_is_sliceable_worst_first(collector: Collector) -> None:
    full = _status(collector.api)
    assert full["source"] == "engine"
    assert [c["check"] for c in full["checks"]] == ["shop", "assets", "api"]
    assert full["counts"] == {"outage": 1, "partial": 1, "ok": 1}
    first = _status(collector.api, "?limit=1")
    assert [c["check"] for c in first["checks"]] == ["shop"]
    assert (first["total"], first["next"], first["counts"]) == (3, 1, full["counts"])
    assert first["checks"][0]["region_states"] == {"de": "UP", "fr": "UP", "it": "DOWN"}
    assert first["checks"][0]["region_detail"]["it"]["failing"] == 2
    assert "region_detail" not in _status(collector.api, "?limit=1&detail=false")["checks"][0]
    assert [c["check"] for c in _status(collector.api, "?limit=1&offset=1")["checks"]] == ["assets"]
    assert [c["check"] for c in _status(collector.api, "?q=AP")["checks"]] == ["api"]
    assert [c["check"] for c in _status(collector.api, "?status=partial,ok")["checks"]] == ["assets", "api"]


def test_page_asks_for_the_token_when_the_api_needs_one_and_lists_silences(
    tmp_path: Path, page: Page
) -> None:
    guarded = Collector(tmp_path)
    guarded.extra = {"api": {"listen": f"127.0.0.1:{guarded.api_port}", "token": "page-token"}}
    guarded.start()
    with stopped_on_exit(guarded):
        end = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        silence = {
            "name": "db-failover",
            "checks": ["shop"],
            "regions": ["fr"],
            "end": end,
            "comment": "planned",
        }
        status, made, _ = get(guarded.api, "/api/v1/silences", "page-token", "POST", silence)
        assert status == 201, made
        page.goto(f"{guarded.api}/status/")
        page.wait_for_selector("#auth:not([hidden])", timeout=15_000)
        assert "token" in page.locator("#error").inner_text()
        page.fill("#auth-token", "page-token")
        page.click("#auth-form button")
        page.wait_for_selector('body[data-loaded="true"]', timeout=15_000)
        assert page.locator("#auth").is_hidden()
        assert page.locator("#summary").inner_text().startswith("0 checks")
        # A silence made through the API is listed with the windows, active, with its scope.
        page.wait_for_selector(f'#maintenance-list li.window.active[data-id="{made["id"]}"]', timeout=15_000)
        listed = page.locator("#maintenance-list").inner_text()
        assert "silence db-failover: shop in fr" in listed and "planned" in listed
        assert guarded.stop() == 0
