"""Maintenance end to end, on a real collector fed through the agents' stream: a config window
(shop in it) and a silence made through the API (assets) hold both events back from the webhook
while verdicts go on; the API marks them and lists the silence; deleting the silence sends the
assets event, and ending the window by a config reload sends the shop event, still failing,
exactly once each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.alerting import post_receiver
from tests.collector.feed import feed, regional_outage
from tests.collector.test_api import get
from tests.e2e.procs import Collector, stopped_on_exit, wait_until

TOKEN = "maint-t0ken"
WAIT_S = 45.0
CHECKS = [
    {"id": "shop", "probe": "http", "target": "https://shop.test/", "interval": "10s"},
    {"id": "api", "probe": "tls", "target": "api.test:443", "interval": "10s"},
    {"id": "assets", "probe": "page", "target": "https://assets.test/", "interval": "10s"},
]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def hook() -> Iterator[tuple[str, dict[str, list[Any]]]]:
    with post_receiver() as (port, bodies):
        yield f"http://127.0.0.1:{port}/hook", bodies


def sent(bodies: dict[str, list[Any]]) -> list[tuple[str, int]]:
    return [(b["event"]["check"], b["event"]["version"]) for b in bodies.get("/hook", [])]


def held_records(collector: Collector) -> list[str]:
    sql = "SELECT error FROM event_notifications FINAL ORDER BY error"
    return [row[0] for row in get(collector.api, "/api/v1/query", TOKEN, "POST", {"sql": sql})[1]["rows"]]


def test_windows_and_silences_hold_events_until_they_end(
    tmp_path: Path, hook: tuple[str, dict[str, list[Any]]]
) -> None:
    url, bodies = hook
    now = time.time()
    collector = Collector(tmp_path)
    window = {
        "name": "shop-upgrade",
        "checks": ["shop"],
        "regions": ["it"],
        "start": iso(now - 60),
        "end": iso(now + 3600),
    }
    collector.extra = {
        "api": {"listen": f"127.0.0.1:{collector.api_port}", "token": TOKEN},
        "checks": CHECKS,
        "evaluate_every": "1s",
        "notify": [{"type": "webhook", "url": url}],
        "maintenance": [window],
    }
    collector.start()
    with stopped_on_exit(collector):
        silence = {"name": "cdn-swap", "checks": ["assets"], "end": iso(now + 3600), "comment": "CDN move"}
        assert get(collector.api, "/api/v1/silences", method="POST", body=silence)[0] == 401
        status, made, _ = get(collector.api, "/api/v1/silences", TOKEN, "POST", silence)
        assert status == 201, made
        assert (made["name"], made["active"], made["checks"]) == ("cdn-swap", True, ["assets"])
        bad = get(collector.api, "/api/v1/silences", TOKEN, "POST", {"name": "x", "checks": ["a"]})
        assert bad[:2] == (400, {"error": "silence.end: is required (or a recurring `every`)"})

        # Results up to 90 s ahead (within limits.max_future_s): the outage goes on while a busy
        # machine runs the test, as a live agent's would, instead of going stale mid-test.
        feed(collector.address, *regional_outage(time.time() + 90, minutes=2.5, step=10.0))
        events = wait_until(
            lambda: (
                {e["check"]: e for e in get(collector.api, "/api/v1/events?open=true", TOKEN)[1]["events"]}
                if len(get(collector.api, "/api/v1/events?open=true", TOKEN)[1]["events"]) == 2
                else None
            ),
            WAIT_S,
            "two open events",
        )
        assert (events["shop"]["in_maintenance"], events["shop"]["maintenance"]) == (True, "shop-upgrade")
        assert (events["assets"]["in_maintenance"], events["assets"]["maintenance"]) == (True, "cdn-swap")
        listing = get(collector.api, "/api/v1/silences", TOKEN)[1]
        assert [s["id"] for s in listing["silences"]] == [made["id"]]
        assert [(w["name"], w["active"]) for w in listing["windows"]] == [("shop-upgrade", True)]
        assert sorted(listing["in_maintenance"]) == sorted(e["id"] for e in events.values())
        # Verdicts go on, the records say why nothing went out.
        held = wait_until(
            lambda: len(held_records(collector)) == 2,
            WAIT_S,
            "held records",
        )
        assert held and held_records(collector) == [
            "in maintenance: cdn-swap",
            "in maintenance: shop-upgrade",
        ]
        time.sleep(3)  # a reconcile or two: still held
        assert sent(bodies) == []

        assert get(collector.api, f"/api/v1/silences/{made['id']}", TOKEN, "DELETE")[0] == 204
        assert get(collector.api, f"/api/v1/silences/{made['id']}", TOKEN, "DELETE")[0] == 404
        wait_until(lambda: sent(bodies), WAIT_S, "the assets event after its silence was deleted")
        assert sent(bodies) == [("assets", events["assets"]["version"])]

        collector.extra["maintenance"] = [{**window, "end": iso(time.time() + 1)}]
        collector.write_config()  # the reloaded window ends in a second, the shop outage goes on
        wait_until(lambda: len(sent(bodies)) == 2, WAIT_S, "the shop event after its window ended")
        time.sleep(3)
        assert sent(bodies) == [("assets", events["assets"]["version"]), ("shop", events["shop"]["version"])]
        assert collector.stop() == 0
