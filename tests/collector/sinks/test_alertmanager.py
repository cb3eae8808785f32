"""The Alertmanager sink against a real Alertmanager on loopback (Debian's), whose webhook
receiver is the test's own: while an event is open the collector keeps posting it, yet the
receiver gets one grouped notification when it opens and one resolved when it closes, none in
between; the alert carries the documented labels and annotations."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.config import NotifyConfig, Seconds
from collector.store import Store
from collector.store.events import insert_events
from collector.verdicts import Cause, Event
from collector.verdicts.notify import Notifier
from tests.alerting import alertmanager
from tests.e2e.procs import free_port

RESEND_S = 1.0
QUIET_S = 5.0  # several heartbeats and group intervals with nothing to say
WAIT_S = 30.0


def _event(version: int, opened: float, closed: float | None = None) -> Event:
    return Event(
        "ev-am-1",
        version,
        "check",
        "shop",
        "outage",
        "regional",
        ("fr", "it"),
        Cause("tls_cert_expired", "static.example", "certificate has expired"),
        opened,
        closed or opened,
        closed,
    )


async def _wait_for(bodies: list[dict[str, Any]], count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(bodies) < count:
        assert time.monotonic() < deadline, f"expected {count} notifications, got {bodies}"
        await asyncio.sleep(0.1)


async def _run(store: Store, am_url: str, receiver_port: int) -> tuple[list[dict[str, Any]], list[int]]:
    bodies: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    sink = NotifyConfig(
        type="alertmanager", url=am_url, resend=Seconds(RESEND_S), link="https://status.example/"
    )
    notifier = Notifier(store, [sink], first_delay=0.05)
    task = asyncio.create_task(notifier.run())
    counts = []
    try:
        await store.run(store.migrate)
        opened = time.time()
        events = [_event(1, opened), _event(2, opened, opened + QUIET_S + 2)]
        await store.run(insert_events, store, events[:1])
        notifier.submit(events[:1])
        await _wait_for(bodies, 1)
        await asyncio.sleep(QUIET_S)  # heartbeats go out; Alertmanager has nothing new to say
        counts.append(len(bodies))
        await store.run(insert_events, store, events[1:])
        notifier.submit(events[1:])
        await _wait_for(bodies, 2)
        await asyncio.sleep(QUIET_S)
        counts.append(len(bodies))
        return bodies, counts
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()


def test_one_notification_on_open_one_on_close(store: Store, tmp_path: Path) -> None:
    receiver_port = free_port()
    with alertmanager(tmp_path / "am", f"http://127.0.0.1:{receiver_port}/hook") as am_url:
        bodies, counts = asyncio.run(_run(store, am_url, receiver_port))
    assert counts == [1, 2], bodies
    firing, resolved = bodies
    assert firing["status"] == "firing"
    assert resolved["status"] == "resolved"
    assert firing["groupLabels"] == {"alertname": "ProbenetOutage", "check": "shop"}
    (alert,) = firing["alerts"]
    assert alert["labels"] == {
        "alertname": "ProbenetOutage",
        "check": "shop",
        "status": "outage",
        "scope": "regional",
        "severity": "critical",
        "event_id": "ev-am-1",
    }
    assert {
        k: alert["annotations"][k] for k in ("regions", "cause_class", "cause_host", "error", "status_page")
    } == {
        "regions": "fr,it",
        "cause_class": "tls_cert_expired",
        "cause_host": "static.example",
        "error": "certificate has expired",
        "status_page": "https://status.example/",
    }
    assert alert["generatorURL"] == "https://status.example/"
    assert [a["status"] for a in resolved["alerts"]] == ["resolved"]
